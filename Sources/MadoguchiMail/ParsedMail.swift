import Foundation

/// A raw message read into what a support desk needs: who, what, the text, the files, how it threads
/// and what kind of mail it is. Parsing never fails and never loops; what was malformed is listed in
/// `defects`, and `isUnreadable` says when there was nothing recognisable as a mail at all.
public struct ParsedMail: Sendable {
    public var from: MailAddress?
    public var to: [MailAddress] = []
    public var cc: [MailAddress] = []
    public var replyTo: [MailAddress] = []
    public var subject: String?
    public var date: Date?
    /// Without angle brackets.
    public var messageID: String?
    public var inReplyTo: [String] = []
    public var references: [String] = []
    /// How many of `References`' ids are kept: the last, newest ones.
    public static let maximumReferences = 100
    public var autoSubmitted: String?
    public var precedence: String?
    public var listID: String?

    /// The whole plain-text body (rendered from HTML when the mail has no plain text), LF line ends.
    public var text: String = ""
    /// `text` split into the new writing and the quoted history or signature below it.
    public var visibleText: String = ""
    public var quotedText: String = ""
    public var html: String?
    public var attachments: [MailAttachment] = []
    public var classification: MailClassification = .customer
    /// Filled for bounces and delivery reports.
    public var deliveryReport: DeliveryReport?
    public var defects: [String] = []

    public let root: MIMEPart

    /// True when the bytes hold no header field at all: not a mail, whatever else they are.
    public var isUnreadable: Bool { root.headers.fields.isEmpty }

    public init(_ bytes: [UInt8]) {
        self.init(bytes[...])
    }

    public init(_ bytes: ArraySlice<UInt8>) {
        var parser = MIMEParser()
        root = parser.parseMessage(bytes)
        defects = parser.defects
        let headers = root.headers

        // A From with a name and no address (`From: Taro Yamada`) keeps the name; the address then
        // comes from Sender, if there is one.
        let author = headers.field("From").flatMap { MailAddress.list($0.rawValue, keepingNamesWithoutAddress: true).first }
        let sender = headers.field("Sender").flatMap { MailAddress.list($0.rawValue).first }
        if let author, author.address.isEmpty, let sender {
            from = MailAddress(name: author.name ?? sender.name, address: sender.address)
        } else {
            from = author ?? sender
        }
        to = headers.all("To").flatMap { MailAddress.list($0.rawValue) }
        cc = headers.all("Cc").flatMap { MailAddress.list($0.rawValue) }
        replyTo = headers.field("Reply-To").map { MailAddress.list($0.rawValue) } ?? []
        subject = headers["Subject"]
        date = headers["Date"].flatMap(MailDate.parse)
        messageID = headers.field("Message-ID").flatMap { MessageIDs.parse($0.rawValue).first }
        inReplyTo = headers.field("In-Reply-To").map { MessageIDs.parse($0.rawValue) } ?? []
        // References may appear once (RFC 5322 §3.6); a second one is a broken relay's, not the thread.
        // The newest end of a thread is what finds its ticket; a field of a hundred thousand ids
        // (within a 25 MB mail) would otherwise go whole into every lookup and the stored row.
        references = Array((headers.field("References").map { MessageIDs.parse($0.rawValue) } ?? []).suffix(Self.maximumReferences))
        autoSubmitted = headers["Auto-Submitted"]
        precedence = headers["Precedence"]
        listID = headers["List-Id"]

        var collector = BodyCollector()
        collector.collect(root, isRoot: true)
        html = collector.html
        attachments = collector.attachments
        text = collector.plainTexts.isEmpty
            ? (collector.html.map(HTMLText.render) ?? "")
            : collector.plainTexts.joined(separator: "\n")
        defects += collector.defects
        let split = ReplySplitter.split(text)
        visibleText = split.visible
        quotedText = split.quoted
        (classification, deliveryReport) = MailClassifier.classify(self)
    }
}

/// A file carried by the mail, decoded.
public struct MailAttachment: Sendable {
    /// The sender's name for it, decoded: data to show, never a path to write to.
    public var filename: String?
    public var mediaType: String
    public var contentID: String?
    /// Shown in the body (an image referenced by `cid:`) rather than offered as a download.
    public var isInline: Bool
    public var content: [UInt8]
    /// For an attached message: the files inside it, listed under it rather than beside it (their
    /// bytes are part of `content`, the message itself), including those of messages nested in it.
    public var contained: [ContainedFile] = []
}

/// A file inside an attached message: named and measured, not stored a second time.
public struct ContainedFile: Sendable, Equatable {
    public var filename: String?
    public var mediaType: String
    public var size: Int
}

/// Walks the MIME tree choosing the body: inline text parts in order, the plain alternative of each
/// `multipart/alternative` (its HTML kept as `html`), and everything else as attachments.
struct BodyCollector {
    var plainTexts: [String] = []
    var html: String?
    var attachments: [MailAttachment] = []
    var defects: [String] = []
    /// False inside an attached message: only its files are wanted, named and measured in
    /// `containedFiles`, their text not decoded and their bytes not kept.
    var readsText = true
    var containedFiles: [ContainedFile] = []

    mutating func collect(_ part: MIMEPart, isRoot: Bool = false) {
        switch part.content {
        case .multipart(let children):
            if part.mediaType == "multipart/alternative" {
                collectAlternative(children)
            } else {
                for child in children { collect(child) }
            }
        case .message(let inner):
            if isRoot { collect(inner, isRoot: true); return }
            attach(part, defaultName: inner.headers["Subject"].map { Self.safeName($0) + ".eml" })
        case .leaf:
            let type = part.mediaType
            let isBody = !part.isAttachmentDisposition && part.filename == nil
            if type == "text/plain" && isBody {
                plainTexts.append(decodeText(part))
            } else if type == "text/plain" && part.disposition?.value == "inline" {
                // Shown in the body by mail clients, and still a file the sender attached.
                plainTexts.append(decodeText(part))
                attach(part, defaultName: nil)
            } else if type == "text/html" && isBody {
                if html == nil { html = decodeText(part) } else { attach(part, defaultName: nil) }
            } else if isRoot && type.hasPrefix("text/") && part.disposition == nil && part.filename == nil {
                plainTexts.append(decodeText(part))
            } else {
                // Files, and report parts (delivery-status, feedback-report), which the classifier reads.
                attach(part, defaultName: nil)
            }
        }
    }

    /// The last alternative is the richest; the plain one is what we index and show.
    private mutating func collectAlternative(_ children: [MIMEPart]) {
        var plain: String?
        var richHTML: String?
        for child in children {
            var nested = BodyCollector(readsText: readsText)
            nested.collect(child)
            if plain == nil, !nested.plainTexts.isEmpty { plain = nested.plainTexts.joined(separator: "\n") }
            if let html = nested.html { richHTML = html }
            attachments += nested.attachments
            containedFiles += nested.containedFiles
            defects += nested.defects
        }
        if let plain { plainTexts.append(plain) }
        if html == nil { html = richHTML }
        if plain == nil, let richHTML { plainTexts.append(HTMLText.render(richHTML)) }
    }

    private mutating func attach(_ part: MIMEPart, defaultName: String?) {
        if case .message(let inner) = part.content {
            var nested = BodyCollector(readsText: false)
            nested.collect(inner, isRoot: true)
            defects += nested.defects
            let contained = Array(nested.containedFiles.prefix(1000))
            guard readsText else {
                // A message inside the attached one is a container: its files are listed instead
                // (the message itself, when it holds none).
                containedFiles += contained.isEmpty
                    ? [ContainedFile(filename: part.filename ?? defaultName, mediaType: part.mediaType, size: inner.sourceBytes.count)]
                    : contained
                return
            }
            // An attached message is kept as the bytes of that message, its own files listed under it.
            attachments.append(MailAttachment(
                filename: part.filename ?? defaultName, mediaType: part.mediaType, contentID: part.contentID,
                isInline: false, content: Array(inner.sourceBytes), contained: contained))
            return
        }
        guard readsText else {
            containedFiles.append(ContainedFile(filename: part.filename ?? defaultName, mediaType: part.mediaType, size: part.decodedBody.count))
            return
        }
        let inline = part.disposition?.value == "inline" || (part.disposition == nil && part.contentID != nil)
        attachments.append(MailAttachment(
            filename: part.filename ?? defaultName, mediaType: part.mediaType, contentID: part.contentID,
            isInline: inline && part.contentID != nil, content: part.decodedBody))
    }

    private func decodeText(_ part: MIMEPart) -> String {
        guard readsText else { return "" }
        let bytes = part.decodedBody
        var label = part.contentType["charset"]
        if label == nil || label?.isEmpty == true, part.mediaType == "text/html" { label = HTMLText.declaredCharset(bytes) }
        let decoded = Charset.decode(bytes, label: label)
        let text = Self.withLineFeeds(decoded.text)
        guard part.mediaType == "text/plain", part.contentType["format"]?.lowercased() == "flowed" else { return text }
        return Self.unflowed(text, deleteSpace: part.contentType["delsp"]?.lowercased() == "yes")
    }

    /// RFC 3676 `format=flowed`: a line ending in a space goes on in the next line of the same quote
    /// depth, without that space when `DelSp=yes` (as Thunderbird sends Japanese text, which has no
    /// spaces between words: read as sent, "届いていま \nせん" broke words every 36 characters and
    /// every search for them). Space-stuffing is undone; the signature separator `-- ` stays a line.
    static func unflowed(_ text: String, deleteSpace: Bool) -> String {
        var output: [String] = []
        var paragraph = ""
        var paragraphDepth: Int?
        func finish() {
            guard let depth = paragraphDepth else { return }
            output.append(depth == 0 ? paragraph : String(repeating: ">", count: depth) + " " + paragraph)
            paragraph = ""
            paragraphDepth = nil
        }
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = Substring(raw)
            let depth = line.prefix { $0 == ">" }.count
            line = line.dropFirst(depth)
            if line.first == " " { line = line.dropFirst() }
            // A flowed line never continues into another quote depth (§4.5), nor into the signature
            // separator, which stays a line of its own (§4.3).
            let isSeparator = line == "-- "
            if let open = paragraphDepth, open != depth || isSeparator { finish() }
            let flowed = line.last == " " && !isSeparator
            paragraph += flowed && deleteSpace ? line.dropLast() : line
            paragraphDepth = depth
            if !flowed { finish() }
        }
        finish()
        return output.joined(separator: "\n")
    }

    /// CRLF to LF on the bytes (a Swift String holds "\r\n" as one Character, and Foundation's
    /// replacingOccurrences was an eighth of parsing time).
    static func withLineFeeds(_ text: String) -> String {
        guard text.utf8.contains(0x0D) else { return text }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var previous: UInt8 = 0
        for byte in text.utf8 {
            if byte == 0x0A, previous == 0x0D { bytes.removeLast() }
            bytes.append(byte)
            previous = byte
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A forwarded mail's subject as its file name: what `SafeFileName` makes harmless, and the
    /// characters Windows refuses in a name.
    static func safeName(_ subject: String) -> String {
        let cleaned = SafeFileName.clean(subject).map { ":*?\"<>|".contains($0) || $0.isNewline ? "_" : $0 }
        let name = String(cleaned).trimmingWhitespace()
        return name.isEmpty ? "message" : String(name.prefix(200))
    }
}

/// Message-IDs (RFC 5322 §3.6.4) from `Message-ID`, `In-Reply-To` and `References`, without the
/// angle brackets. Ids written without brackets (some old mailers) are taken whole.
public enum MessageIDs {
    public static func parse(_ raw: [UInt8]) -> [String] {
        let text = String(decoding: raw, as: UTF8.self)
        var ids: [String] = []
        var remainder = Substring(text)
        while let open = remainder.firstIndex(of: "<") {
            let after = remainder[remainder.index(after: open)...]
            guard let close = after.firstIndex(of: ">") else { break }
            let id = after[..<close].filter { !$0.isWhitespace && $0 != "\0" }
            // Counted in code points, as the schema's CHECKs count: 600 decomposed é are 1,200 of them.
            if !id.isEmpty, id.unicodeScalars.count <= 998 { ids.append(String(id)) }
            remainder = after[after.index(after: close)...]
        }
        if ids.isEmpty {
            let bare = text.trimmingWhitespaceAndNewlines().filter { $0 != "\0" }
            if !bare.isEmpty, bare.contains("@"), !bare.contains(" "), bare.unicodeScalars.count <= 998 { ids.append(bare) }
        }
        return ids
    }
}

/// RFC 5322 dates (`Fri, 21 Nov 1997 09:55:06 -0600`), with the obsolete forms (two-digit years,
/// `GMT`/`EST`-style zones, comments) and the sloppiness real mailers add. Hand-parsed: a
/// DateFormatter per mail costs more than the rest of the header section.
enum MailDate {
    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    private static let zones: [String: Int] = ["ut": 0, "utc": 0, "gmt": 0, "z": 0, "est": -5, "edt": -4, "cst": -6, "cdt": -5,
                                               "mst": -7, "mdt": -6, "pst": -8, "pdt": -7, "jst": 9]
    private static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    static func parse(_ text: String) -> Date? {
        var value = Substring(text)
        if let comma = value.firstIndex(of: ",") { value = value[value.index(after: comma)...] }
        if let paren = value.firstIndex(of: "(") { value = value[..<paren] }
        let tokens = value.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard tokens.count >= 4, let day = Int(tokens[0]), (1...31).contains(day),
              let month = months.firstIndex(of: tokens[1].prefix(3).lowercased()),
              tokens[2].utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }), var year = Int(tokens[2])
        else { return nil }
        if year < 50 { year += 2000 } else if year < 1000 { year += 1900 }
        // Digits only, at most four, as RFC 5322 writes them: a year like 300000 (or -300000) is no date
        // a mailer meant, and past year ±292277 the instant does not fit PostgresNIO's microseconds (it
        // traps, stopping the server).
        guard year <= 9999 else { return nil }
        let time = tokens[3].split(separator: ":").compactMap { Int($0) }
        guard time.count >= 2, (0...23).contains(time[0]), (0...59).contains(time[1]) else { return nil }
        var offsetMinutes = 0
        if tokens.count >= 5 {
            let zone = tokens[4]
            if let sign = zone.first, sign == "+" || sign == "-", zone.count == 5, let hhmm = Int(zone.dropFirst()) {
                offsetMinutes = (hhmm / 100 * 60 + hhmm % 100) * (sign == "-" ? -1 : 1)
            } else if let hours = zones[zone.lowercased()] {
                offsetMinutes = hours * 60
            }
        }
        let components = DateComponents(year: year, month: month + 1, day: day, hour: time[0], minute: time[1], second: time.count > 2 ? min(time[2], 59) : 0)
        return calendar.date(from: components).map { $0.addingTimeInterval(TimeInterval(-offsetMinutes * 60)) }
    }
}
