/// An optional `If-Match` on a resource that supervisors edit now and then (a business calendar, an
/// SLA policy, a template, an agent, a queue). Sent with the `ETag` of the version read, a change
/// someone made since is `412` instead of being overwritten: two supervisors editing the year-end
/// closures at once no longer lose one's days without a word. Not sent, the write goes ahead as
/// before (tickets, edited all day by many, require it instead).
struct VersionPrecondition {
    private let condition: IfMatch?

    init(_ header: String?) throws {
        guard let header else {
            condition = nil
            return
        }
        guard let parsed = IfMatch(header) else {
            throw Problem.invalidParameter("If-Match", "'\(header)' is not an entity tag, a list of them, or * (an ETag here looks like \"3\")")
        }
        condition = parsed
    }

    /// Checks the version `lock` locks in the caller's transaction (called only when there is a
    /// condition: an unconditional write takes no lock beyond its own); nil (no such resource) is
    /// left to the write, whose `404` names what is missing.
    func check(_ resource: String, lockingWith lock: () async throws -> Int64?) async throws {
        guard let condition, let lockedVersion = try await lock(), !condition.matches(String(lockedVersion)) else { return }
        throw Problem(
            .preconditionFailed, status: .preconditionFailed, title: "Precondition failed",
            detail: "\(resource) is at version \(lockedVersion) (ETag \(Self.entityTag(lockedVersion))), not \(condition.description): "
                + (condition.tags?.contains { $0.weak && $0.opaque == String(lockedVersion) } == true
                    ? "a weak tag (W/) never matches, as If-Match compares strongly; send the ETag as read, without W/. Nothing was changed."
                    : "someone changed it since you read it. Nothing was changed; read it again and make your change to what is there."))
    }

    /// A version as a strong entity tag.
    static func entityTag(_ version: Int64) -> String { "\"\(version)\"" }
}

extension APIHandler {
    /// Sends `version` as the answer's `ETag`, to come back in `If-Match`.
    func tagVersion(_ version: Int64) {
        RequestScope.current?.setResponseHeader(.eTag, VersionPrecondition.entityTag(version))
    }
}
