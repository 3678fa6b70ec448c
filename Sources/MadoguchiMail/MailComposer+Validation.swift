import Foundation

extension MailComposer {
    /// Every field the mail will put in a header, checked before anything is written. A CR or LF in a
    /// recipient, name or subject would let whoever typed it add header fields (Bcc, a second body), so
    /// it fails the whole mail rather than being cleaned up.
    static func validate(_ mail: OutgoingMail) throws {
        guard !(mail.to.isEmpty && mail.cc.isEmpty) else { throw Failure.noRecipients }
        try checkMailbox(mail.from, field: "From")
        for address in mail.to { try checkMailbox(address, field: "To") }
        for address in mail.cc { try checkMailbox(address, field: "Cc") }
        if let replyTo = mail.replyTo { try checkMailbox(replyTo, field: "Reply-To") }
        try checkNoLineBreaks(mail.subject, field: "Subject")
        try checkMessageID(mail.messageID, field: "Message-ID")
        if let inReplyTo = mail.inReplyTo { try checkMessageID(inReplyTo, field: "In-Reply-To") }
        for id in mail.references { try checkMessageID(id, field: "References") }
        if let autoSubmitted = mail.autoSubmitted { try checkASCIIValue(autoSubmitted, field: "Auto-Submitted") }
        for (name, value) in mail.extraHeaders { try checkExtraHeader(name: name, value: value) }
        for attachment in mail.attachments { try checkAttachment(attachment) }
    }

    /// Checked on bytes: in a Swift string "\r\n" is one Character, which `contains("\n")` would miss.
    private static func checkNoLineBreaks(_ value: String, field: String) throws {
        if value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }) { throw Failure.headerInjection(field: field) }
    }

    /// `local@domain`, at most 254 octets (RFC 5321 §4.5.3.1.3), with nothing that would end the
    /// address or the list inside a header. Dots are not judged: carrier addresses break RFC 5322 and
    /// are real. A local part may be a quoted string (`"john doe"@example.jp`, `"a,b"@example.jp`):
    /// written as it is, it ends nothing; refused, one such recipient failed the whole reply, its
    /// other recipients with it.
    private static func checkMailbox(_ mailbox: MailAddress, field: String) throws {
        try checkNoLineBreaks(mailbox.address, field: field)
        if let name = mailbox.name { try checkNoLineBreaks(name, field: field) }
        let address = mailbox.address
        let forbidden = Set("<>,;()\"\\".unicodeScalars)
        let plain = { (part: Substring) in
            part.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value != 0x7F && !$0.properties.isWhitespace && !forbidden.contains($0) }
        }
        guard let at = address.lastIndex(of: "@"), at != address.startIndex, address.index(after: at) != address.endIndex,
              address.utf8.count <= 254, plain(address[address.index(after: at)...]),
              plain(address[..<at]) || isQuotedString(address[..<at])
        else { throw Failure.invalidAddress(field: field) }
    }

    /// `"…"` holding printable characters and spaces, its `"` and `\` escaped (RFC 5322 §3.2.4).
    private static func isQuotedString(_ text: Substring) -> Bool {
        let scalars = Array(text.unicodeScalars)
        guard scalars.count >= 3, scalars.first == "\"", scalars.last == "\"" else { return false }
        var escaped = false
        for scalar in scalars.dropFirst().dropLast() {
            if scalar.value < 0x20 || scalar.value == 0x7F { return false }
            if escaped { escaped = false; continue }
            if scalar == "\\" { escaped = true; continue }
            if scalar == "\"" { return false }
        }
        return !escaped
    }

    /// Can this id go in Message-ID, In-Reply-To or References? Bare (the brackets are added when
    /// writing), printable ASCII without white space or angle brackets, at most 900 octets so its line
    /// stays within 998. Ids read from inbound mail can fail this (a mailer that put UTF-8 or a stray
    /// `<` in one): leave those out of `references` rather than fail the whole reply.
    public static func isWritableMessageID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 900
            && id.utf8.allSatisfy { (0x21...0x7E).contains($0) && $0 != UInt8(ascii: "<") && $0 != UInt8(ascii: ">") }
    }

    private static func checkMessageID(_ id: String, field: String) throws {
        try checkNoLineBreaks(id, field: field)
        guard id.utf8.allSatisfy({ $0 < 0x80 }) else { throw Failure.nonASCII(field: field) }
        guard isWritableMessageID(id) else { throw Failure.invalidMessageID(field: field) }
    }

    private static func checkASCIIValue(_ value: String, field: String) throws {
        try checkNoLineBreaks(value, field: field)
        guard value.utf8.allSatisfy({ $0 == 0x09 || (0x20...0x7E).contains($0) }) else { throw Failure.nonASCII(field: field) }
        guard HeaderWriter.words(value).allSatisfy({ $0.utf8.count <= 900 }) else { throw Failure.overlongHeader(field: field) }
    }

    /// Fields the composer writes; an extra one of the same name would contradict it.
    private static let composerFields: Set<String> = [
        "date", "from", "sender", "to", "cc", "bcc", "reply-to", "subject", "message-id", "in-reply-to", "references",
        "mime-version", "auto-submitted", "content-type", "content-transfer-encoding", "content-disposition",
    ]

    private static func checkExtraHeader(name: String, value: String) throws {
        try checkNoLineBreaks(name, field: "an extra header name")
        guard !name.isEmpty, name.utf8.count <= 76, name.utf8.allSatisfy({ (0x21...0x7E).contains($0) && $0 != UInt8(ascii: ":") })
        else { throw Failure.invalidHeaderName(name) }
        guard !composerFields.contains(name.lowercased()) else { throw Failure.reservedHeader(name) }
        try checkASCIIValue(value, field: name)
    }

    private static func checkAttachment(_ attachment: OutgoingMail.Attachment) throws {
        try checkNoLineBreaks(attachment.filename, field: "Content-Disposition")
        try checkNoLineBreaks(attachment.mediaType, field: "Content-Type")
        guard isMediaType(attachment.mediaType) else { throw Failure.invalidMediaType(attachment.mediaType) }
    }

    /// `type/subtype`, both RFC 2045 tokens, no parameters.
    private static func isMediaType(_ value: String) -> Bool {
        let tspecials = Set("()<>@,;:\\\"/[]?=".utf8)
        let parts = value.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { part in
            !part.isEmpty && part.utf8.allSatisfy { (0x21...0x7E).contains($0) && !tspecials.contains($0) }
        }
    }
}
