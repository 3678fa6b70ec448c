/// An `If-Match` field value (RFC 9110 §13.1.1): `*`, or a list of entity tags. Writes compare
/// strongly, so a weak tag (`W/"3"`) never matches; a tag that does not match is a `412`, not a
/// malformed request. Only a value that is not entity-tag syntax at all is refused as invalid.
struct IfMatch: Equatable {
    struct EntityTag: Equatable {
        var weak: Bool
        var opaque: String
    }

    /// nil for `*`: any current representation matches.
    var tags: [EntityTag]?

    init?(_ value: String) {
        let text = Array(value.utf8)
        if value.trimmingCharacters(in: .whitespaces) == "*" {
            tags = nil
            return
        }
        var tags: [EntityTag] = []
        var index = 0
        func skipSeparators() {
            while index < text.count, text[index] == UInt8(ascii: " ") || text[index] == UInt8(ascii: "\t") || text[index] == UInt8(ascii: ",") {
                index += 1
            }
        }
        skipSeparators()
        while index < text.count {
            var weak = false
            if text[index...].starts(with: Array("W/".utf8)) {
                weak = true
                index += 2
            }
            guard index < text.count, text[index] == UInt8(ascii: "\"") else { return nil }
            index += 1
            let start = index
            // etagc: %x21 / %x23-7E / obs-text
            while index < text.count, text[index] != UInt8(ascii: "\""), text[index] >= 0x21, text[index] != 0x7F { index += 1 }
            guard index < text.count, text[index] == UInt8(ascii: "\"") else { return nil }
            tags.append(EntityTag(weak: weak, opaque: String(decoding: text[start..<index], as: UTF8.self)))
            index += 1
            let before = index
            skipSeparators()
            // Tags are separated by a comma, not merely juxtaposed.
            guard index == text.count || text[before..<index].contains(UInt8(ascii: ",")) else { return nil }
        }
        guard !tags.isEmpty else { return nil }
        self.tags = tags
    }

    /// Whether a resource whose current strong tag is `"\(opaque)"` satisfies the condition.
    func matches(_ opaque: String) -> Bool {
        guard let tags else { return true }
        return tags.contains { !$0.weak && $0.opaque == opaque }
    }

    /// Whether a resource at `version` satisfies the condition, for a tag of the version followed by
    /// what the representation derives from the clock (a ticket's `"3.breached"`, `Ticket.entityTag`):
    /// `"3"`, `"3.ok"` and `"3.breached"` all name version 3.
    func matches(version: Int64) -> Bool {
        guard let tags else { return true }
        let exact = String(version)
        return tags.contains { !$0.weak && ($0.opaque == exact || $0.opaque.hasPrefix(exact + ".")) }
    }

    /// The tags as sent, for a 412's detail.
    var description: String {
        guard let tags else { return "*" }
        return tags.map { ($0.weak ? "W/" : "") + "\"\($0.opaque)\"" }.joined(separator: ", ")
    }
}
