import Foundation
import PostgresNIO
import Synchronization

/// The events a transaction records, held back and written by one statement just before it commits
/// (`Database.withTransaction`). Taking a message in records two or three (customer, ticket,
/// message): one round trip each otherwise. Nothing changes for a reader: the events still commit
/// with the change they record, in the order they were recorded, and the feed sees them only then.
final class EventBatch: Sendable {
    @TaskLocal static var current: EventBatch?

    /// The transaction's connection: an event recorded on another connection is not part of it.
    private let connection: ObjectIdentifier
    private let rows = Mutex<[Row]>([])
    /// Closed once its transaction ended: a task started inside the transaction inherits the task
    /// local, and must never hold an event back in a batch nobody will write (nor in one whose
    /// connection's identity a later connection happens to reuse).
    private let open = Atomic<Bool>(true)

    struct Row: Sendable {
        var type: String
        var ticketID: UUID?
        var customerID: UUID?
        var messageID: UUID?
        var actorKeyID: UUID?
        var actorAgentID: UUID?
        var data: String
    }

    init(for connection: PostgresConnection) {
        self.connection = ObjectIdentifier(connection)
    }

    /// The batch of the transaction running on `connection`, if any.
    static func of(_ connection: PostgresConnection) -> EventBatch? {
        guard let batch = current, batch.open.load(ordering: .acquiring), batch.connection == ObjectIdentifier(connection) else { return nil }
        return batch
    }

    /// Its transaction ended (committed or not): from now on events are written at once.
    func close() {
        open.store(false, ordering: .releasing)
    }

    func append(_ row: Row) {
        rows.withLock { $0.append(row) }
    }

    /// The events held so far, in order; the batch is empty after.
    func take() -> [Row] {
        rows.withLock { rows in
            defer { rows.removeAll() }
            return rows
        }
    }
}
