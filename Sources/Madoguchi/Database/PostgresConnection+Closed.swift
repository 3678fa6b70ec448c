import Logging
import PostgresNIO

/// A statement refused because its connection had already closed (a server restart, a terminated
/// backend, the pool stopping): the request changed nothing and can be retried.
public struct ConnectionLost: Error, CustomStringConvertible {
    public var description: String { "the database connection closed before the statement was sent" }
}

/// A COMMIT that PostgreSQL answered by rolling the transaction back (see `commit`): nothing of the
/// transaction was kept.
public struct TransactionRolledBack: Error, CustomStringConvertible {
    var tag: String
    public var description: String { "PostgreSQL answered COMMIT with \(tag): an earlier statement of the transaction had failed" }
}

extension PostgresConnection {
    /// `query`, refused at once on a connection that has closed.
    ///
    /// PostgresNIO 1.33.2 hands a statement to its channel without a promise. Once the channel has
    /// closed and its handlers are gone, nothing ever answers: the caller waits forever, holding its
    /// lease, and a pool that stops waits for that lease forever too. A backend terminated between
    /// two statements of one lease did exactly that (ConnectionPoolTests). Every statement the
    /// service sends goes through here; only the moment between this check and the send is left.
    ///
    /// The rows must be read to their end (or the statement run with `perform`): PostgresNIO hands
    /// the rows over once PostgreSQL has described them, so an error while the statement runs (a
    /// deadlock, a constraint, a cancelled lock wait) arrives with the rows, and nobody sees it when
    /// nobody reads them. In a transaction that is worse than a lost error: PostgreSQL has aborted
    /// it, and the COMMIT that follows answers as a ROLLBACK would, without an error, so a caller
    /// would report success for writes that were thrown away (StatementErrorTests).
    func run(_ query: PostgresQuery, logger: Logger, file: String = #fileID, line: Int = #line) async throws -> PostgresRowSequence {
        guard !isClosed else { throw ConnectionLost() }
        return try await self.query(query, logger: logger, file: file, line: line)
    }

    /// Runs a statement whose rows, if it returns any, are not needed, to its end: an error it
    /// meets on the way is thrown here (see `run`).
    package func perform(_ query: PostgresQuery, logger: Logger, file: String = #fileID, line: Int = #line) async throws {
        for try await _ in try await run(query, logger: logger, file: file, line: line) {}
    }

    /// Commits the open transaction, or throws `TransactionRolledBack` when PostgreSQL rolled it
    /// back instead: it does so, answering COMMIT with a ROLLBACK tag and no error, when a statement
    /// of the transaction failed and that error was never read (see `run`). `perform` reads such
    /// errors where they happen; this is the net under any statement whose rows were left unread,
    /// so that no caller ever answers success for writes PostgreSQL threw away.
    package func commit(logger: Logger) async throws {
        guard !isClosed else { throw ConnectionLost() }
        // The command tag is only in the result of this older interface.
        let result = try await query("COMMIT", []).get()
        guard result.metadata.command == "COMMIT" else { throw TransactionRolledBack(tag: result.metadata.command) }
    }

    /// A prepared statement, refused the same way.
    func run<Statement: PostgresPreparedStatement, Row>(
        _ statement: Statement, logger: Logger, file: String = #fileID, line: Int = #line
    ) async throws -> AsyncThrowingMapSequence<PostgresRowSequence, Row> where Row == Statement.Row {
        guard !isClosed else { throw ConnectionLost() }
        return try await execute(statement, logger: logger, file: file, line: line)
    }

    /// `listen`, refused the same way: its request goes to the channel without a promise too.
    func listenUnlessClosed<Value>(
        on channel: String, consume: (PostgresNotificationSequence) async throws -> Value
    ) async throws -> Value {
        guard !isClosed else { throw ConnectionLost() }
        return try await listen(on: channel, consume: consume)
    }
}
