import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One MIME entity ready to write: its Content-* fields (folded, without CRLF) and its encoded body,
/// without a final CRLF: inside a multipart that line break belongs to the next boundary (RFC 2046
/// §5.1.1).
struct MIMEEntity {
    var headerLines: [String]
    var body: [UInt8]

    var bytes: [UInt8] { Array((headerLines.joined(separator: "\r\n") + "\r\n\r\n").utf8) + body }
}

extension MailComposer {
    /// The text, then `multipart/alternative` when there is HTML, then `multipart/mixed` when there are
    /// files.
    static func bodyEntity(_ mail: OutgoingMail, charset: TextCharset) -> MIMEEntity {
        var entity = textEntity(mail.text, charset: charset)
        if let html = mail.html {
            entity = multipart("alternative", [entity, htmlEntity(html)])
        }
        if !mail.attachments.isEmpty {
            entity = multipart("mixed", [entity] + mail.attachments.map(attachmentEntity))
        }
        return entity
    }

    private static func textEntity(_ text: String, charset: TextCharset) -> MIMEEntity {
        let lines = BodyLines.split(text, endingWithBreak: true)
        if case .iso2022JP(let encoder) = charset, let bytes = encoder.body(lines: lines) {
            return MIMEEntity(headerLines: ["Content-Type: text/plain; charset=ISO-2022-JP", "Content-Transfer-Encoding: 7bit"], body: bytes)
        }
        return textLeaf("text/plain", lines: lines, asciiLabel: charset.label == "US-ASCII" ? "US-ASCII" : "UTF-8")
    }

    /// HTML is UTF-8 even beside ISO-2022-JP text: phones that want ISO-2022-JP show the plain part.
    private static func htmlEntity(_ html: String) -> MIMEEntity {
        textLeaf("text/html", lines: BodyLines.split(html, endingWithBreak: false), asciiLabel: "UTF-8")
    }

    /// 7bit when every line is printable ASCII within SMTP's 998 octets, else base64 of the UTF-8,
    /// which keeps every character and line exactly (CRLF line ends, RFC 2045 §6.8's canonical form).
    private static func textLeaf(_ type: String, lines: [Substring], asciiLabel: String) -> MIMEEntity {
        let bytes = Array(lines.joined(separator: "\r\n").utf8)
        let isPlain = lines.allSatisfy { line in
            line.utf8.count <= 998 && line.utf8.allSatisfy { $0 == 0x09 || (0x20...0x7E).contains($0) }
        }
        if isPlain {
            return MIMEEntity(headerLines: ["Content-Type: \(type); charset=\(asciiLabel)", "Content-Transfer-Encoding: 7bit"], body: bytes)
        }
        return MIMEEntity(headerLines: ["Content-Type: \(type); charset=UTF-8", "Content-Transfer-Encoding: base64"], body: base64Lines(bytes))
    }

    private static func attachmentEntity(_ attachment: OutgoingMail.Attachment) -> MIMEEntity {
        var type = [attachment.mediaType.lowercased()]
        var disposition = ["attachment"]
        if !attachment.filename.isEmpty {
            type[0] += ";"
            type += FileNameParameters.name(attachment.filename)
            disposition[0] += ";"
            disposition += FileNameParameters.filename(attachment.filename)
        }
        return MIMEEntity(
            headerLines: [
                HeaderWriter.fold("Content-Type", type),
                HeaderWriter.fold("Content-Disposition", disposition),
                "Content-Transfer-Encoding: base64",
            ],
            body: base64Lines(attachment.content))
    }

    private static func multipart(_ subtype: String, _ parts: [MIMEEntity]) -> MIMEEntity {
        let contents = parts.map(\.bytes)
        let boundary = uniqueBoundary(avoiding: contents)
        let delimiter = Array("--\(boundary)".utf8)
        var body: [UInt8] = []
        for content in contents {
            body += delimiter + [0x0D, 0x0A] + content + [0x0D, 0x0A]
        }
        body += delimiter + Array("--".utf8)
        return MIMEEntity(headerLines: [HeaderWriter.fold("Content-Type", ["multipart/\(subtype);", "boundary=\"\(boundary)\""])], body: body)
    }

    /// `=_` cannot occur in base64 (RFC 2045 §6.7 notes the same of quoted-printable), and the random
    /// tail makes a clash with 7bit text all but impossible; the loop makes it impossible.
    private static func uniqueBoundary(avoiding contents: [[UInt8]]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        while true {
            let boundary = "=_mdg_" + String((0..<24).map { _ in alphabet.randomElement()! })
            let bytes = Array(boundary.utf8)
            if !contents.contains(where: { occurs(bytes, in: $0) }) { return boundary }
        }
    }

    /// `memchr` for the first byte, then `memcmp`: the standard library's generic `contains(_:)`
    /// takes seconds over a 10 MB file.
    private static func occurs(_ needle: [UInt8], in haystack: [UInt8]) -> Bool {
        haystack.withUnsafeBufferPointer { haystack in
            needle.withUnsafeBufferPointer { needle in
                guard let start = haystack.baseAddress, let pattern = needle.baseAddress, needle.count <= haystack.count else { return false }
                let last = haystack.count - needle.count
                var index = 0
                while index <= last {
                    guard let found = memchr(start + index, Int32(pattern.pointee), last - index + 1) else { return false }
                    index = start.distance(to: found.assumingMemoryBound(to: UInt8.self))
                    if memcmp(start + index, pattern, needle.count) == 0 { return true }
                    index += 1
                }
                return false
            }
        }
    }

    /// Base64 in lines of 76 characters (RFC 2045 §6.8), joined by CRLF.
    static func base64Lines(_ bytes: [UInt8]) -> [UInt8] {
        let encoded = Array(Data(bytes).base64EncodedString().utf8)
        var output: [UInt8] = []
        output.reserveCapacity(encoded.count + encoded.count / 38 + 2)
        for start in stride(from: 0, to: encoded.count, by: 76) {
            if start > 0 { output += [0x0D, 0x0A] }
            output += encoded[start..<min(start + 76, encoded.count)]
        }
        return output
    }
}

/// Body text as lines, whatever line ends it came with (CRLF, LF, or a lone CR).
enum BodyLines {
    /// With `endingWithBreak`, a non-empty text whose last line has no line end gets one (an empty
    /// last element), so that the body reads back the same however it is sent.
    static func split(_ text: String, endingWithBreak: Bool) -> [Substring] {
        guard !text.isEmpty else { return [] }
        let scalars = text.unicodeScalars
        var lines: [Substring] = []
        var start = scalars.startIndex
        var index = start
        while index < scalars.endIndex {
            let scalar = scalars[index]
            guard scalar == "\n" || scalar == "\r" else {
                index = scalars.index(after: index)
                continue
            }
            lines.append(Substring(scalars[start..<index]))
            index = scalars.index(after: index)
            if scalar == "\r", index < scalars.endIndex, scalars[index] == "\n" { index = scalars.index(after: index) }
            start = index
        }
        lines.append(Substring(scalars[start...]))
        if endingWithBreak, let last = lines.last, !last.isEmpty { lines.append("") }
        return lines
    }
}

/// The file name of an attachment, twice: RFC 2231 `filename*` in Content-Disposition, which current
/// readers (this module, Python's `email`, Thunderbird, Gmail) use, and an RFC 2047 encoded `name` in
/// Content-Type for readers that predate RFC 2231 (old Outlook, Japanese feature phones).
enum FileNameParameters {
    /// A name needing no encoding: short printable ASCII with nothing a quoted string must escape.
    private static func isPlain(_ name: String) -> Bool {
        name.utf8.count <= 60 && !name.contains("=?") && name.utf8.allSatisfy { (0x20...0x7E).contains($0) && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
    }

    static func name(_ name: String) -> [String] {
        if isPlain(name) { return ["name=\"\(name)\""] }
        var words = EncodedWordWriter.utf8(name)
        words[0] = "name=\"" + words[0]
        words[words.count - 1] += "\""
        return words
    }

    /// `filename*=UTF-8''…`, or numbered sections `filename*0*=UTF-8''…; filename*1*=…` of at most 60
    /// characters each when long (RFC 2231 §3–4). Sections split between characters, so each one is
    /// also readable on its own.
    static func filename(_ name: String) -> [String] {
        if isPlain(name) { return ["filename=\"\(name)\""] }
        var sections: [String] = []
        var current = "UTF-8''"
        for scalar in name.unicodeScalars {
            let encoded = percentEncoded(scalar)
            if current.count + encoded.count > 60, !current.hasSuffix("''") {
                sections.append(current)
                current = ""
            }
            current += encoded
        }
        sections.append(current)
        if sections.count == 1 { return ["filename*=" + current] }
        return sections.enumerated().map { index, section in
            "filename*\(index)*=\(section)" + (index < sections.count - 1 ? ";" : "")
        }
    }

    /// RFC 2231 attribute-char stays, everything else is %XX.
    private static func percentEncoded(_ scalar: Unicode.Scalar) -> String {
        String(scalar).utf8.map { byte in
            let isAttributeChar = (0x21...0x7E).contains(byte) && !"*'%()<>@,;:\\\"/[]?=".utf8.contains(byte)
            return isAttributeChar ? String(UnicodeScalar(byte)) : String(format: "%%%02X", byte)
        }.joined()
    }
}
