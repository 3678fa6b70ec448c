/// A statement that must return a row returned none (`INSERT … RETURNING`, or an `UPDATE` of a row
/// the caller holds locked). It means a bug or a schema out of step with this binary, never bad
/// input, so it surfaces as a 500 and is logged with the statement's purpose.
struct RowNotFound: Error, CustomStringConvertible {
    let description: String

    init(_ statement: String) {
        description = "\(statement) returned no row"
    }
}

/// A stored value a CHECK constraint should have kept out (an unknown status or role): the database
/// and this binary disagree about an enumeration.
struct UnexpectedStoredValue: Error, CustomStringConvertible {
    let description: String

    init(_ raw: String, for type: Any.Type) {
        description = "unexpected stored value '\(raw)' for \(type)"
    }
}
