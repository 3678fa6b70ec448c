import PostgresNIO

/// SQLSTATE codes we react to. Constraints settle races; these let callers answer them properly.
enum SQLState: String {
    case uniqueViolation = "23505"
    case foreignKeyViolation = "23503"
    case checkViolation = "23514"
    /// A NUL character in text: PostgreSQL cannot store U+0000 in `text`.
    case characterNotInRepertoire = "22021"
    case lockNotAvailable = "55P03"
    case serializationFailure = "40001"
    case deadlockDetected = "40P01"
}

extension Error {
    /// The SQLSTATE of a PostgreSQL server error, nil for anything else.
    var sqlState: SQLState? {
        guard let error = self as? PSQLError, let code = error.serverInfo?[.sqlState] else { return nil }
        return SQLState(rawValue: code)
    }

    /// The constraint a server error names, if any (for telling one unique violation from another).
    var violatedConstraint: String? {
        (self as? PSQLError)?.serverInfo?[.constraintName]
    }
}
