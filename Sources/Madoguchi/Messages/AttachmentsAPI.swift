import Foundation
import HTTPTypes
import MadoguchiAPI
import OpenAPIRuntime

/// Files for download: a message's attachment, and a reply's file before (and after) it goes out.
extension APIHandler {
    func getAttachment(_ input: Operations.GetAttachment.Input) async throws -> Operations.GetAttachment.Output {
        let id = input.path.attachmentId.uuid
        guard let file = try await database.withConnection({ try await StoredFile.find(id, of: .message, withFirstSlice: input.headers.ifNoneMatch == nil, on: $0, logger: logger) }) else {
            throw Problem.notFound("There is no attachment \(id.lowercased).")
        }
        guard let body = try serve(file, ifNoneMatch: input.headers.ifNoneMatch) else { return .notModified(.init()) }
        return .ok(.init(body: .any(body)))
    }

    func getReplyAttachment(_ input: Operations.GetReplyAttachment.Input) async throws -> Operations.GetReplyAttachment.Output {
        let (id, replyID) = (input.path.attachmentId.uuid, input.path.replyId.uuid)
        guard let file = try await database.withConnection({ try await StoredFile.find(id, of: .reply(replyID), withFirstSlice: input.headers.ifNoneMatch == nil, on: $0, logger: logger) }) else {
            throw Problem.notFound("Reply \(replyID.lowercased) has no file \(id.lowercased).")
        }
        guard let body = try serve(file, ifNoneMatch: input.headers.ifNoneMatch) else { return .notModified(.init()) }
        return .ok(.init(body: .any(body)))
    }

    /// The file's body with the headers that keep a customer's file from acting as part of this
    /// origin (a page or an SVG with a script, opened from an agent's browser, would run with the
    /// agent's access); nil when `If-None-Match` names it (`304`).
    private func serve(_ file: StoredFile, ifNoneMatch: String?) throws -> HTTPBody? {
        let scope = RequestScope.current
        // The contract offers any type, so the check the contract makes for other operations is made
        // here, against the type this file has; before If-None-Match, which only turns an answer
        // that would be 200 into 304 (RFC 9110 §13.2.1).
        if let accept = scope?.requestHeaders[.accept], !AcceptHeader(accept).allows(file.mediaType) {
            throw Problem.notAcceptable(offered: [file.mediaType])
        }
        scope?.setResponseHeader(.eTag, file.entityTag)
        scope?.setResponseHeader(.cacheControl, "private, no-cache")
        if let ifNoneMatch, Self.entityTags(ifNoneMatch, match: file.entityTag) { return nil }
        scope?.setResponseHeader(.contentType, file.mediaType)
        scope?.setResponseHeader(.contentDisposition, file.contentDisposition)
        scope?.setResponseHeader(.xContentTypeOptions, "nosniff")
        scope?.setResponseHeader(.contentSecurityPolicy, "sandbox; default-src 'none'")
        return HTTPBody(file.bytes(database: database, logger: logger), length: .known(file.size), iterationBehavior: .single)
    }
}
