import Foundation
import HTTPTypes
import MadoguchiAPI
import OpenAPIRuntime

/// Files for download: a message's attachment, and a reply's file before (and after) it goes out.
extension APIHandler {
    func getAttachment(_ input: Operations.GetAttachment.Input) async throws -> Operations.GetAttachment.Output {
        let id = input.path.attachmentId.uuid
        guard let body = try await serve(id, of: .message, ifNoneMatch: input.headers.ifNoneMatch,
                                         missing: "There is no attachment \(id.lowercased).") else { return .notModified(.init()) }
        return .ok(.init(body: .any(body)))
    }

    func getReplyAttachment(_ input: Operations.GetReplyAttachment.Input) async throws -> Operations.GetReplyAttachment.Output {
        let (id, replyID) = (input.path.attachmentId.uuid, input.path.replyId.uuid)
        guard let body = try await serve(id, of: .reply(replyID), ifNoneMatch: input.headers.ifNoneMatch,
                                         missing: "Reply \(replyID.lowercased) has no file \(id.lowercased).") else { return .notModified(.init()) }
        return .ok(.init(body: .any(body)))
    }

    /// The file's body with the headers that keep a customer's file from acting as part of this
    /// origin (a page or an SVG with a script, opened from an agent's browser, would run with the
    /// agent's access); nil when `If-None-Match` names it (`304`), which then reads none of its bytes.
    private func serve(_ id: UUID, of owner: StoredFile.Owner, ifNoneMatch: String?, missing: String) async throws -> HTTPBody? {
        guard let file = try await database.withConnection({
            try await StoredFile.find(id, of: owner, withFirstSlice: ifNoneMatch == nil, on: $0, logger: logger)
        }) else { throw Problem.notFound(missing) }
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
