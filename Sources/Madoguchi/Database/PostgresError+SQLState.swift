import PostgresNIO

/// SQLSTATE codes we react to. Constraints settle races; these let callers answer them properly.
enum SQLState: String {
    case uniqueViolation = "23505"
    case foreignKeyViolation = "23503"
    case checkViolation = "23514"
    /// A NUL character in text: PostgreSQL cannot store U+0000 in `text`.
    case characterNotInRepertoire = "22021"
    /// A NUL character (`\u0000`) cast to `jsonb`, which cannot hold it either.
    case untranslatableCharacter = "22P05"
    case lockNotAvailable = "55P03"
    /// Raised by the events table's append-only trigger.
    case insufficientPrivilege = "42501"
    /// Two transactions waited on each other; PostgreSQL rolled one back.
    case deadlockDetected = "40P01"
    case serializationFailure = "40001"
    /// A statement stopped by `statement_timeout` (or cancelled).
    case queryCanceled = "57014"
    /// A statement sent in a transaction an earlier error aborted.
    case inFailedTransaction = "25P02"

    /// The transaction was rolled back whole and running it again is expected to work.
    var isTransient: Bool { self == .deadlockDetected || self == .serializationFailure }
}

extension Error {
    /// The SQLSTATE of a PostgreSQL server error, nil for anything else.
    var sqlState: SQLState? {
        guard let error = self as? PSQLError, let code = error.serverInfo?[.sqlState] else { return nil }
        return SQLState(rawValue: code)
    }

    /// A server error that preparing a statement can raise too: any but a data exception (class 22),
    /// an integrity constraint (23) or a transaction rollback (40), which only executing it raises.
    /// See `PostgresConnection.rows(_:preparedAs:)`.
    var mayComeFromPreparing: Bool {
        guard let error = self as? PSQLError, let code = error.serverInfo?[.sqlState] else { return false }
        return !["22", "23", "40"].contains(code.prefix(2))
    }
}
