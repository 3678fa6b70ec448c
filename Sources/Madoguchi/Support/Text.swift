/// Text bound for PostgreSQL, which refuses NUL in `text` and `jsonb`.
enum Text {
    static func clean(_ text: String) -> String {
        text.contains("\u{0}") ? text.replacingOccurrences(of: "\u{0}", with: "") : text
    }

    static func limit(_ text: String, _ characters: Int) -> String {
        String(clean(text).prefix(characters))
    }
}
