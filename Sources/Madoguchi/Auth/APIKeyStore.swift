import Foundation
import Logging
import NIOCore
import PostgresNIO

/// A stored key as listed to admins: never the secret.
public struct APIKeyRecord: Sendable, Equatable {
    public var id: UUID
    public var name: String
    public var role: Role
    public var prefix: String
    public var agentID: UUID?
    public var createdAt: Date
    public var lastUsedAt: Date?
    public var revokedAt: Date?
}

/// The SQL behind API keys. Shared by the HTTP API and the `madoguchi keys` command.
public struct APIKeyStore: Sendable {
    let logger: Logger
    /// Valid keys for a second (see `APIKeyCache`): the service passes its one cache to every store
    /// it makes, so a revocation here reaches its authentication at once.
    let cache: APIKeyCache

    public init(logger: Logger) { self.init(logger: logger, cache: APIKeyCache()) }

    init(logger: Logger, cache: APIKeyCache) {
        self.logger = logger
        self.cache = cache
    }

    private static let columns = "id, name, role, prefix, agent_id, created_at, last_used_at, revoked_at"

    /// Creates a key (and, for an agent or supervisor given no `agentID`, the agent it acts for).
    /// Returns the record and the secret, which exists nowhere else afterwards.
    /// Runs inside the caller's transaction.
    public func create(name: String, role: Role, agentID: UUID?, on connection: PostgresConnection) async throws -> (APIKeyRecord, APIKeySecret) {
        var agentID = agentID
        if role.actsAsAgent, agentID == nil {
            let rows = try await connection.run("INSERT INTO agents (display_name) VALUES (\(name)) RETURNING id", logger: logger)
            for try await id in rows.decode(UUID.self) { agentID = id }
        } else if !role.actsAsAgent, agentID != nil {
            throw Problem.validationFailed([.init(pointer: "/agent_id", message: "only agent and supervisor keys act for an agent")])
        } else if let agentID {
            // A key for a deactivated agent would let them claim and answer again (and deactivating once
            // more revokes nothing: it already happened); the automatic agent writes only acknowledgements.
            // Share-locked, so a deactivation cannot commit between this look and the key. An unknown
            // agent is the foreign key's to refuse, below.
            guard agentID != AutomaticReply.agentID else {
                throw Problem.validationFailed([.init(pointer: "/agent_id", message: "is the automatic agent, which no key acts for")])
            }
            let rows = try await connection.run("SELECT active FROM agents WHERE id = \(agentID) FOR SHARE", logger: logger)
            var active = true
            for try await value in rows.decode(Bool.self) { active = value }
            guard active else {
                throw Problem.validationFailed([.init(pointer: "/agent_id", message: "agent \(agentID.uuidString.lowercased()) was deactivated; no new key acts for it")])
            }
        }
        let secret = APIKeySecret.generate()
        do {
            let rows = try await connection.run("""
                INSERT INTO api_keys (name, role, prefix, secret_hash, agent_id)
                VALUES (\(name), \(role.rawValue), \(secret.prefix), \(ByteBuffer(bytes: secret.hash)), \(agentID))
                RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await record in rows.decode(Row.self) { return (try Self.record(record), secret) }
        } catch where error.sqlState == .foreignKeyViolation {
            throw Problem.validationFailed([.init(pointer: "/agent_id", message: "there is no agent \(agentID?.uuidString.lowercased() ?? "")")])
        }
        throw RowNotFound("INSERT INTO api_keys … RETURNING")
    }

    public func list(on connection: PostgresConnection) async throws -> [APIKeyRecord] {
        let rows = try await connection.run(
            "SELECT \(unescaped: Self.columns) FROM api_keys ORDER BY created_at DESC, id", logger: logger)
        var records: [APIKeyRecord] = []
        for try await row in rows.decode(Row.self) { records.append(try Self.record(row)) }
        return records
    }

    /// Marks the key revoked (keeping the first revocation time). nil when there is no such key.
    /// The caller forgets it in the cache (`APIKeyCache.forget(keyID:)`) once this has committed.
    public func revoke(id: UUID, on connection: PostgresConnection) async throws -> APIKeyRecord? {
        let rows = try await connection.run("""
            UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = \(id)
            RETURNING \(unescaped: Self.columns)
            """, logger: logger)
        for try await row in rows.decode(Row.self) { return try Self.record(row) }
        return nil
    }

    /// The principal a presented key stands for, or nil if it is unknown or revoked.
    /// The row is found by the public prefix; the secret is checked by comparing hashes in constant time.
    public func authenticate(_ secret: APIKeySecret, on connection: PostgresConnection) async throws -> Principal? {
        let rows = try await connection.run("""
            SELECT id, name, role, agent_id, secret_hash, last_used_at < now() - interval '1 minute' OR last_used_at IS NULL
            FROM api_keys WHERE prefix = \(secret.prefix) AND revoked_at IS NULL
            """, logger: logger)
        var found: (Principal, Bool)?
        for try await (id, name, role, agentID, storedHash, stale) in rows.decode((UUID, String, String, UUID?, ByteBuffer, Bool).self) {
            guard APIKeySecret.constantTimeEquals(Array(buffer: storedHash), secret.hash), let role = Role(rawValue: role) else { continue }
            found = (Principal(keyID: id, name: name, role: role, agentID: agentID), stale)
        }
        guard let (principal, stale) = found else { return nil }
        if stale {
            // Coarse on purpose: one write a minute per key, not one per request. A revocation that
            // committed while this waited for its row lock (deactivating an agent revokes its keys
            // first) is seen here: the key is refused, not let through once more.
            let rows = try await connection.run(
                "UPDATE api_keys SET last_used_at = now() WHERE id = \(principal.keyID) AND revoked_at IS NULL RETURNING 1", logger: logger)
            var inForce = false
            for try await _ in rows { inForce = true }
            guard inForce else { return nil }
        }
        return principal
    }

    /// Whether the key is still in force (not revoked; deactivating an agent revokes its keys): for a
    /// response that outlives its request's check, such as the event stream.
    func isInForce(_ keyID: UUID, on connection: PostgresConnection) async throws -> Bool {
        let rows = try await connection.run("SELECT EXISTS (SELECT FROM api_keys WHERE id = \(keyID) AND revoked_at IS NULL)", logger: logger)
        for try await inForce in rows.decode(Bool.self) { return inForce }
        return false
    }

    private typealias Row = (UUID, String, String, String, UUID?, Date, Date?, Date?)

    private static func record(_ row: Row) throws -> APIKeyRecord {
        guard let role = Role(rawValue: row.2) else { throw UnexpectedStoredValue(row.2, for: Role.self) }
        return APIKeyRecord(id: row.0, name: row.1, role: role, prefix: row.3, agentID: row.4, createdAt: row.5, lastUsedAt: row.6, revokedAt: row.7)
    }
}
