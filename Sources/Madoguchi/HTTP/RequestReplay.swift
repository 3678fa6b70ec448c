import Crypto
import Foundation
import Logging
import PostgresNIO

/// `Idempotency-Key` on the API's own writes that must not happen twice (creating a reply, sending
/// it): the only owner of `request_replays` (migration 0076).
///
/// In the write's own transaction, before anything is written, `earlier` takes the key's lock (a
/// second request with the key waits for the first to commit or roll back) and answers with the
/// resource the key made before, for the same request; the same key with another request is a 422,
/// as it is on the inbound endpoints. After the write, `record` keeps what it made. A write that
/// fails leaves no row, so its retry is judged afresh. A key is the API key's own, and kept a day.
struct RequestReplay: Sendable {
    let key: String
    let apiKeyID: UUID
    let operation: String
    let fingerprint: [UInt8]
    let logger: Logger

    /// The `target` of a request whose path names no resource (creating one at the top level).
    static let noTarget = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))

    /// nil without an `Idempotency-Key`. `target`: the resource in the path; `body`: the request as
    /// decoded, its members sorted, so a retry that orders them otherwise is the same request.
    init?(_ key: String?, principal: Principal, operation: String, target: UUID, body: some Encodable, logger: Logger) throws {
        guard let key else { return nil }
        guard !key.isEmpty, key.utf8.count <= 255, key.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) else {
            throw Problem.invalidParameter("Idempotency-Key", "must be 1 to 255 printable ASCII characters")
        }
        self.key = key
        apiKeyID = principal.keyID
        self.operation = operation
        let request = Array("\(operation)\n\(target.lowercased)\n".utf8) + Array(try JSONEncoder.sorted.encode(body))
        fingerprint = Array(SHA256.hash(data: request))
        self.logger = logger
    }

    /// The resource this key made for this same request before; nil when the key is new.
    func earlier(on connection: PostgresConnection) async throws -> UUID? {
        try await AdvisoryLock.take("idempotency:\(apiKeyID.lowercased):\(key)", on: connection, logger: logger)
        let rows = try await connection.run("""
            SELECT operation, fingerprint, resource_id FROM request_replays
            WHERE api_key_id = \(apiKeyID) AND idempotency_key = \(key) AND created_at > now() - interval '1 day'
            """, logger: logger)
        for try await (operation, fingerprint, resource) in rows.decode((String, ByteBuffer, UUID).self) {
            guard operation == self.operation, Array(buffer: fingerprint) == self.fingerprint else {
                throw Problem(.idempotencyKeyReused, status: .unprocessableContent, title: "Idempotency key reused",
                              detail: "Idempotency-Key \(key) was used for another request (\(operation)) in the last day; use a new key for a new request.")
            }
            return resource
        }
        return nil
    }

    /// What the request made, kept for its retries; and a few rows past their day removed.
    func record(_ resource: UUID, on connection: PostgresConnection) async throws {
        try await connection.perform("""
            INSERT INTO request_replays (api_key_id, idempotency_key, operation, fingerprint, resource_id)
            VALUES (\(apiKeyID), \(key), \(operation), \(ByteBuffer(bytes: fingerprint)), \(resource))
            ON CONFLICT (api_key_id, idempotency_key)
            DO UPDATE SET operation = EXCLUDED.operation, fingerprint = EXCLUDED.fingerprint, resource_id = EXCLUDED.resource_id,
                          created_at = EXCLUDED.created_at
            """, logger: logger)
        try await connection.perform("""
            DELETE FROM request_replays
            WHERE ctid IN (SELECT ctid FROM request_replays WHERE created_at < now() - interval '1 day' ORDER BY created_at LIMIT 20)
            """, logger: logger)
    }
}
