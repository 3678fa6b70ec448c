import Foundation

/// The shared mail corpus (`../shared/corpus`: real mails from other projects' test suites, with what
/// those projects expect) and the comparison its README prescribes. Used by the parser's own test and
/// by the end-to-end test through `POST /v1/inbound/email`, which observe the same fields two ways.
public enum Corpus {
    /// `../shared/corpus` beside the clone. A checkout without it fails the corpus tests with this
    /// error rather than letting them pass having read nothing.
    public static var directory: URL {
        get throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            let corpus = root.deletingLastPathComponent().appendingPathComponent("shared/corpus")
            guard FileManager.default.fileExists(atPath: corpus.appendingPathComponent("expectations.jsonl").path) else {
                throw Missing(description: """
                    the shared mail corpus is not beside this checkout: expected \(corpus.path)/expectations.jsonl. \
                    The corpus tests read it from ../shared/corpus; put the shared folder there (a symlink will do).
                    """)
            }
            return corpus
        }
    }

    public struct Missing: Error, CustomStringConvertible {
        public let description: String
    }

    public struct Entry: Sendable {
        public let source: String
        public let path: String
        public let isBodyOnly: Bool
        public let fields: [String: JSONValue]
        public let derived: Set<String>
        public var isJapanese: Bool { fields["japanese"]?.bool == true }

        /// The bytes to post: the file itself, or a body-only file wrapped as the README says.
        public func mailBytes(in directory: URL) throws -> [UInt8] {
            let bytes = try [UInt8](Data(contentsOf: directory.appendingPathComponent(path)))
            guard isBodyOnly else { return bytes }
            let header = "From: Customer <customer@example.com>\r\nTo: support@example.com\r\nSubject: Re: test\r\n"
                + "Message-ID: <corpus.\(path.replacingOccurrences(of: "/", with: "."))@example.com>\r\nMIME-Version: 1.0\r\n"
                + "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            return Array(header.utf8) + bytes
        }
    }

    public static func entries(in directory: URL) throws -> [Entry] {
        let text = try String(contentsOf: directory.appendingPathComponent("expectations.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let object = try JSONDecoder().decode([String: JSONValue?].self, from: Data(line.utf8)).compactMapValues { $0 }
            return Entry(
                source: object["source"]?.string ?? "", path: object["mail_path"]?.string ?? "",
                isBodyOnly: object["kind"]?.string == "body-only", fields: object,
                derived: Set(object["derived_fields"]?.strings ?? []))
        }
    }
}

/// What a reader of the mail observed, however it was read.
public struct Observation: Sendable {
    public var fromEmail: String?
    public var fromName: String?
    public var subject: String?
    /// The whole plain text: visible and quoted together.
    public var body: String
    public var visible: String
    public var quoted: String
    public var html: String?
    public var attachmentNames: [String?]
    public var isBounce: Bool
    public var isAutoReply: Bool
    public var bounceRecipients: [String]
    public var bounceReasons: [String]
    public var bounceStatuses: [String]
    public var messageID: String?
    public var inReplyTo: String?
    public var references: [String]

    public init(fromEmail: String?, fromName: String?, subject: String?, body: String, visible: String, quoted: String, html: String?,
                attachmentNames: [String?], isBounce: Bool, isAutoReply: Bool, bounceRecipients: [String], bounceReasons: [String],
                bounceStatuses: [String], messageID: String?, inReplyTo: String?, references: [String]) {
        self.fromEmail = fromEmail; self.fromName = fromName; self.subject = subject; self.body = body; self.visible = visible
        self.quoted = quoted; self.html = html; self.attachmentNames = attachmentNames; self.isBounce = isBounce
        self.isAutoReply = isAutoReply; self.bounceRecipients = bounceRecipients; self.bounceReasons = bounceReasons
        self.bounceStatuses = bounceStatuses; self.messageID = messageID; self.inReplyTo = inReplyTo; self.references = references
    }
}

public struct Mismatch: Sendable, CustomStringConvertible {
    public let path: String
    public let field: String
    public let expected: String
    public let actual: String
    /// Derived by the corpus's authors, not asserted by the upstream project: a warning, not a failure.
    public let isDerived: Bool
    public var description: String { "\(path) \(field): expected \(expected), got \(actual)\(isDerived ? " (derived)" : "")" }
}

/// Compares one observation with one entry, field by field, as the corpus README says: text after
/// NFC and white-space collapsing, domains case-insensitively, null meaning "not asserted".
public func compare(_ observation: Observation, with entry: Corpus.Entry) -> [Mismatch] {
    var mismatches: [Mismatch] = []
    func check(_ field: String, _ ok: Bool, _ expected: Any, _ actual: Any) {
        if !ok {
            mismatches.append(Mismatch(path: entry.path, field: field, expected: "\(expected)", actual: "\(actual)",
                                       isDerived: entry.derived.contains(field)))
        }
    }
    let f = entry.fields
    if let expected = f["from_email"]?.string {
        check("from_email", sameAddress(expected, observation.fromEmail), expected, observation.fromEmail ?? "nil")
    }
    if let expected = f["from_name"]?.string { check("from_name", norm(expected) == norm(observation.fromName ?? ""), expected, observation.fromName ?? "nil") }
    if let expected = f["subject"]?.string { check("subject", norm(expected) == norm(observation.subject ?? ""), expected, observation.subject ?? "nil") }
    for piece in f["subject_contains"]?.strings ?? [] {
        check("subject_contains", norm(observation.subject ?? "").contains(norm(piece)), piece, observation.subject ?? "nil")
    }
    let body = norm(observation.body + "\n" + observation.quoted)
    for piece in f["body_contains"]?.strings ?? [] { check("body_contains", body.contains(norm(piece)), piece, String(observation.body.prefix(300))) }
    if let expected = f["body_exact"]?.string {
        check("body_exact", norm(expected) == norm(observation.body), expected, observation.body)
    }
    for piece in f["html_contains"]?.strings ?? [] { check("html_contains", norm(observation.html ?? "").contains(norm(piece)), piece, String((observation.html ?? "nil").prefix(300))) }
    if case .array(let names)? = f["attachments"] {
        let expected: [String?] = names.map { $0?.string }
        check("attachments", expected.map { $0.map(norm) } == observation.attachmentNames.map { $0.map(norm) }, expected, observation.attachmentNames)
    }
    if let count = f["attachment_count"]?.int { check("attachment_count", count == observation.attachmentNames.count, count, observation.attachmentNames.count) }
    if let expected = f["is_bounce"]?.bool { check("is_bounce", expected == observation.isBounce, expected, observation.isBounce) }
    if let expected = f["is_auto_reply"]?.bool { check("is_auto_reply", expected == observation.isAutoReply, expected, observation.isAutoReply) }
    if let expected = f["bounce_recipient"]?.string {
        check("bounce_recipient", observation.bounceRecipients.contains { sameAddress(expected, $0) }, expected, observation.bounceRecipients)
    }
    if let expected = f["bounce_recipients"]?.strings {
        check("bounce_recipients", Set(expected.map { $0.lowercased() }) == Set(observation.bounceRecipients.map { $0.lowercased() }), expected, observation.bounceRecipients)
    }
    if let expected = f["bounce_reasons"]?.strings, observation.isBounce || !expected.allSatisfy({ ["feedback", "delivered", "vacation"].contains($0) }) {
        check("bounce_reasons", Set(expected) == Set(observation.bounceReasons), expected, observation.bounceReasons)
    }
    if let expected = f["bounce_status"]?.string {
        check("bounce_status", observation.bounceStatuses.contains(expected), expected, observation.bounceStatuses)
    }
    if let expected = f["visible_text"]?.string { check("visible_text", norm(expected) == norm(observation.visible), expected, observation.visible) }
    for piece in f["visible_contains"]?.strings ?? [] { check("visible_contains", norm(observation.visible).contains(norm(piece)), piece, observation.visible) }
    for piece in f["hidden_contains"]?.strings ?? [] {
        check("hidden_contains", !norm(observation.visible).contains(norm(piece)) && norm(observation.quoted).contains(norm(piece)), piece, observation.visible)
    }
    if let expected = f["message_id"]?.string { check("message_id", stripAngles(expected) == observation.messageID, expected, observation.messageID ?? "nil") }
    if let expected = f["in_reply_to"]?.string { check("in_reply_to", stripAngles(expected) == observation.inReplyTo, expected, observation.inReplyTo ?? "nil") }
    if let expected = f["references"]?.strings { check("references", expected.map(stripAngles) == observation.references, expected, observation.references) }
    return mismatches
}

/// The README's rules for every Japanese text: no undecoded encoded word, no U+FFFD.
public func mojibakeFindings(_ observation: Observation, in entry: Corpus.Entry) -> [Mismatch] {
    guard entry.isJapanese else { return [] }
    var findings: [Mismatch] = []
    for (name, text) in [("subject", observation.subject ?? ""), ("body", observation.body)] {
        if text.contains("\u{FFFD}") {
            findings.append(Mismatch(path: entry.path, field: "mojibake", expected: "no U+FFFD", actual: "\(name) contains U+FFFD", isDerived: false))
        }
        if text.range(of: #"=\?[^?\s]+\?[BbQq]\?[^?\s]*\?="#, options: .regularExpression) != nil {
            findings.append(Mismatch(path: entry.path, field: "mojibake", expected: "no encoded word", actual: "\(name) has an undecoded encoded word", isDerived: false))
        }
    }
    return findings
}

func norm(_ text: String) -> String {
    text.precomposedStringWithCanonicalMapping.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
}

func sameAddress(_ expected: String, _ actual: String?) -> Bool {
    guard let actual else { return false }
    let split = { (address: String) -> (String, String) in
        guard let at = address.lastIndex(of: "@") else { return (address, "") }
        return (String(address[..<at]), address[address.index(after: at)...].lowercased())
    }
    return split(expected) == split(actual)
}

func stripAngles(_ id: String) -> String { id.trimmingCharacters(in: CharacterSet(charactersIn: "<> ")) }

/// JSON as read from the expectations, just enough of it.
public indirect enum JSONValue: Sendable, Decodable {
    case string(String), bool(Bool), int(Int), array([JSONValue?]), other

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int.self) { self = .int(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue?].self) { self = .array(value) }
        else { self = .other }
    }

    var string: String? { if case .string(let value) = self { value } else { nil } }
    var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
    var int: Int? { if case .int(let value) = self { value } else { nil } }
    var strings: [String]? { if case .array(let values) = self { values.compactMap { $0?.string } } else { nil } }
}
