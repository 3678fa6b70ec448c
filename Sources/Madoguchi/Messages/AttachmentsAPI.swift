import Foundation
import HTTPTypes
import MadoguchiAPI
import OpenAPIRuntime

/// Files for download: a message's attachment, and a reply's file before (and after) it goes out.
extension APIHandler {
    func getAttachment(_ input: Operations.GetAttachment.Input) async throws -> Operations.GetAttachment.Output {
        let id = input.path.attachmentId.uuid
        let headers = input.headers
        switch try await serve(id, of: .message, ifNoneMatch: headers.ifNoneMatch, range: headers.range, ifRange: headers.ifRange,
                               missing: "There is no attachment \(id.lowercased).") {
        case .notModified: return .notModified(.init())
        case .whole(let body): return .ok(.init(body: .any(body)))
        case .part(let body): return .partialContent(.init(body: .any(body)))
        }
    }

    func getReplyAttachment(_ input: Operations.GetReplyAttachment.Input) async throws -> Operations.GetReplyAttachment.Output {
        let (id, replyID) = (input.path.attachmentId.uuid, input.path.replyId.uuid)
        let headers = input.headers
        switch try await serve(id, of: .reply(replyID), ifNoneMatch: headers.ifNoneMatch, range: headers.range, ifRange: headers.ifRange,
                               missing: "Reply \(replyID.lowercased) has no file \(id.lowercased).") {
        case .notModified: return .notModified(.init())
        case .whole(let body): return .ok(.init(body: .any(body)))
        case .part(let body): return .partialContent(.init(body: .any(body)))
        }
    }

    /// What a file download answers.
    private enum FileAnswer {
        /// `If-None-Match` names it: `304`, none of its bytes read.
        case notModified
        case whole(HTTPBody)
        /// One range of it (`Content-Range` set): `206`.
        case part(HTTPBody)
    }

    /// The file's body with the headers that keep a customer's file from acting as part of this
    /// origin (a page or an SVG with a script, opened from an agent's browser, would run with the
    /// agent's access), or one range of it (`Range`, honoured when `If-Range`, if sent, still names
    /// this file), or nothing (`If-None-Match`). A range starting past the end is `416`.
    private func serve(_ id: UUID, of owner: StoredFile.Owner, ifNoneMatch: String?, range: String?, ifRange: String?,
                       missing: String) async throws -> FileAnswer {
        // Range is for GET alone (RFC 9110 §14.2): a HEAD, answered by this handler, describes the whole file.
        let rangeHeader = RequestScope.current?.requestMethod == .head ? nil : range
        // A plain download reads the file's facts and its first slice in one round trip. A range is
        // worked out from the size those facts give; its bytes are then read a slice at a time.
        guard let file = try await database.withConnection({
            try await StoredFile.find(id, of: owner, withFirstSlice: ifNoneMatch == nil && rangeHeader == nil, on: $0, logger: logger)
        }) else { throw Problem.notFound(missing) }
        let range: ByteRange = if let ifRange, ifRange != file.entityTag { .whole } else { ByteRange(header: rangeHeader, size: file.size) }
        let scope = RequestScope.current
        // The contract offers any type, so the check the contract makes for other operations is made
        // here, against the type this file has; before If-None-Match, which only turns an answer
        // that would be 200 into 304 (RFC 9110 §13.2.1).
        if let accept = scope?.requestHeaders[.accept], !AcceptHeader(accept).allows(file.mediaType) {
            throw Problem.notAcceptable(offered: [file.mediaType])
        }
        scope?.setResponseHeader(.eTag, file.entityTag)
        scope?.setResponseHeader(.cacheControl, "private, no-cache")
        if let ifNoneMatch, Self.entityTags(ifNoneMatch, match: file.entityTag) { return .notModified }
        if case .unsatisfiable = range {
            throw Problem(.rangeNotSatisfiable, status: .rangeNotSatisfiable, title: "Range not satisfiable",
                          detail: "The file has \(file.size) bytes; the range asked for starts past its end.",
                          headers: [.contentRange: "bytes */\(file.size)"])
        }
        scope?.setResponseHeader(.contentType, file.mediaType)
        scope?.setResponseHeader(.contentDisposition, file.contentDisposition)
        scope?.setResponseHeader(.xContentTypeOptions, "nosniff")
        scope?.setResponseHeader(.contentSecurityPolicy, "sandbox; default-src 'none'")
        scope?.setResponseHeader(.acceptRanges, "bytes")
        // `ByteRange` ends a part within the file, whose bytes never change once stored.
        guard case .part(let bytes) = range else {
            return .whole(HTTPBody(file.bytes(database: database, logger: logger), length: .known(file.size), iterationBehavior: .single))
        }
        scope?.setResponseHeader(.contentRange, "bytes \(bytes.lowerBound)-\(bytes.upperBound)/\(file.size)")
        let length = bytes.upperBound - bytes.lowerBound + 1
        return .part(HTTPBody(file.bytes(bytes, database: database, logger: logger), length: .known(length), iterationBehavior: .single))
    }
}
