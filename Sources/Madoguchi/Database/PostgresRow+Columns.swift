import PostgresNIO

extension PostgresRandomAccessRow {
    /// The column `name` decoded as `T`; a missing column or a type mismatch is a programming error
    /// surfaced as a thrown decoding error, not a crash.
    func value<T: PostgresDecodable>(_ name: String, as type: T.Type = T.self) throws -> T {
        try self[name].decode(T.self, context: .default)
    }
}
