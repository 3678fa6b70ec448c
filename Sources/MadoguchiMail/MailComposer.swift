import Foundation

/// Writes an `OutgoingMail` as RFC 5322 / MIME bytes that this module's own `ParsedMail` and ordinary
/// mail readers read back to the same subject, addresses, threading, text, HTML and files.
///
/// The one choice that is not mechanical is the charset. Feature phones on Japanese carrier mail read
/// ISO-2022-JP best, so mail to a carrier address goes out in it whenever that loses nothing; all
/// other mail, and carrier mail with characters JIS X 0208 lacks, is UTF-8.
public enum MailComposer {
    /// Japanese mobile-carrier mail domains; subdomains count too (`isCarrier`). NTT docomo, au
    /// (`ezweb.ne.jp`, `au.com` since 2021), SoftBank (`softbank.ne.jp` with its `d.`/`t.`/`h.`…
    /// subdomains, `i.softbank.jp` for iPhone, Disney Mobile), Y!mobile, and the legacy networks still
    /// found in customer records: Vodafone KK (`d.vodafone.ne.jp`…, before SoftBank), WILLCOM
    /// (`pdx.ne.jp` and its subdomains, `willcom.com`) and EMOBILE (`emnet.ne.jp`).
    public static let carrierDomains: Set<String> = [
        "docomo.ne.jp", "ezweb.ne.jp", "au.com", "softbank.ne.jp", "i.softbank.jp", "ymobile.ne.jp", "disney.ne.jp",
        "vodafone.ne.jp", "pdx.ne.jp", "willcom.com", "emnet.ne.jp",
    ]

    public enum Failure: Error, CustomStringConvertible, Equatable {
        /// CR, LF or NUL in a header value, display name, address, message id or file name: an attempt
        /// to add header fields of one's own, or a bug upstream. Nothing is written.
        case headerInjection(field: String)
        /// A character other than printable ASCII where only that may go (message ids, extra headers).
        case nonASCII(field: String)
        case invalidAddress(field: String)
        case invalidMessageID(field: String)
        /// An extra header name that is not printable ASCII without a colon.
        case invalidHeaderName(String)
        /// An extra header the composer writes itself (`Content-Type`, `From`…): two would contradict.
        case reservedHeader(String)
        case invalidMediaType(String)
        /// A word longer than any header line may be.
        case overlongHeader(field: String)
        case noRecipients

        public var description: String {
            switch self {
            case .headerInjection(let field): "\(field) holds a CR, LF or NUL character"
            case .nonASCII(let field): "\(field) may hold only printable ASCII"
            case .invalidAddress(let field): "\(field) holds an address that is not local@domain"
            case .invalidMessageID(let field): "\(field) holds an id that is empty, too long or has white space or angle brackets"
            case .invalidHeaderName(let name): "'\(name)' is not a header field name"
            case .reservedHeader(let name): "\(name) is written by the composer and cannot be an extra header"
            case .invalidMediaType(let type): "'\(type)' is not a type/subtype media type"
            case .overlongHeader(let field): "\(field) has a word too long for a header line"
            case .noRecipients: "the mail has no To or Cc recipient"
            }
        }
    }

    /// The whole message, or a `Failure` before any byte is written.
    public static func compose(_ given: OutgoingMail, carrierDomains: Set<String> = MailComposer.carrierDomains) throws -> ComposedMail {
        // Domains as A-labels: with an ASCII local part, the mail then needs no SMTPUTF8.
        var addressed = given
        func ascii(_ address: MailAddress) -> MailAddress { MailAddress(name: address.name, address: IDNA.asciiAddress(address.address)) }
        addressed.from = ascii(given.from)
        addressed.to = given.to.map(ascii)
        addressed.cc = given.cc.map(ascii)
        addressed.replyTo = given.replyTo.map(ascii)
        try validate(addressed)
        let toCarrier = (addressed.to + addressed.cc).contains { isCarrier($0.address, carrierDomains: carrierDomains) }
        let (charset, mail) = chooseCharset(addressed, toCarrier: toCarrier)

        let body = bodyEntity(mail, charset: charset)
        var header = HeaderWriter(charset: charset)
        addEnvelopeHeaders(mail, to: &header)
        let headerText = (header.lines + body.headerLines).joined(separator: "\r\n") + "\r\n\r\n"
        var bytes = Array(headerText.utf8) + body.body
        // SMTP DATA ends on a line end (RFC 5321 §4.1.1.4); a multipart's close delimiter has none.
        if !body.body.isEmpty, body.body.suffix(2) != [0x0D, 0x0A] { bytes += [0x0D, 0x0A] }

        let addresses = [mail.from] + mail.to + mail.cc + (mail.replyTo.map { [$0] } ?? [])
        return ComposedMail(bytes: bytes, charset: charset.label, needsSMTPUTF8: addresses.contains { !$0.address.utf8.allSatisfy { $0 < 0x80 } })
    }

    /// Is this address at a carrier domain, or a subdomain of one (`taro@d.vodafone.ne.jp`)?
    public static func isCarrier(_ address: String, carrierDomains: Set<String> = MailComposer.carrierDomains) -> Bool {
        guard let at = address.lastIndex(of: "@") else { return false }
        var domain = Substring(address[address.index(after: at)...].trimmingCharacters(in: CharacterSet(charactersIn: " \t>.")).lowercased())
        while !domain.isEmpty {
            if carrierDomains.contains(String(domain)) { return true }
            guard let dot = domain.firstIndex(of: ".") else { return false }
            domain = domain[domain.index(after: dot)...]
        }
        return false
    }

    /// Date, From, To, Cc, Reply-To, Subject, the threading ids, MIME-Version, Auto-Submitted, extras.
    private static func addEnvelopeHeaders(_ mail: OutgoingMail, to header: inout HeaderWriter) {
        header.add("Date", [HeaderWriter.date(mail.date)])
        header.addAddresses("From", [mail.from])
        if !mail.to.isEmpty { header.addAddresses("To", mail.to) }
        if !mail.cc.isEmpty { header.addAddresses("Cc", mail.cc) }
        if let replyTo = mail.replyTo { header.addAddresses("Reply-To", [replyTo]) }
        header.addText("Subject", mail.subject)
        header.add("Message-ID", ["<\(mail.messageID)>"])
        if let inReplyTo = mail.inReplyTo { header.add("In-Reply-To", ["<\(inReplyTo)>"]) }
        if !mail.references.isEmpty { header.add("References", mail.references.map { "<\($0)>" }) }
        header.add("MIME-Version", ["1.0"])
        if let autoSubmitted = mail.autoSubmitted { header.add("Auto-Submitted", HeaderWriter.words(autoSubmitted)) }
        for (name, value) in mail.extraHeaders { header.add(name, HeaderWriter.words(value)) }
    }
}

/// The charset of a mail's text parts and encoded words.
enum TextCharset {
    case usASCII
    case utf8
    case iso2022JP(ISO2022JPEncoder)

    var label: String {
        switch self {
        case .usASCII: "US-ASCII"
        case .utf8: "UTF-8"
        case .iso2022JP: "ISO-2022-JP"
        }
    }

    /// Encoded words for header text. ASCII mail needs them only for odd text (a control character,
    /// something that looks like an encoded word), and UTF-8 carries that.
    func encodedWords(_ text: String) -> [String] {
        if case .iso2022JP(let encoder) = self, let words = encoder.encodedWords(text, maximumLength: EncodedWordWriter.maximumLength) {
            return words
        }
        return EncodedWordWriter.utf8(text)
    }
}

extension MailComposer {
    /// US-ASCII when every text is; ISO-2022-JP for a carrier recipient when the whole text, normalized,
    /// can be written in it, every body line within SMTP's 998 octets; otherwise UTF-8 with the text
    /// exactly as given, because the reader should get what the agent wrote rather than a partial
    /// rewrite.
    static func chooseCharset(_ mail: OutgoingMail, toCarrier: Bool) -> (TextCharset, OutgoingMail) {
        if mail.charsetTexts.allSatisfy({ $0.utf8.allSatisfy { $0 < 0x80 } }) { return (.usASCII, mail) }
        if toCarrier, let encoder = ISO2022JPEncoder() {
            let normalized = mail.mappingTexts(ISO2022JPEncoder.normalize)
            if normalized.charsetTexts.allSatisfy(encoder.canEncode),
               encoder.body(lines: BodyLines.split(normalized.text, endingWithBreak: true)) != nil {
                return (.iso2022JP(encoder), normalized)
            }
        }
        return (.utf8, mail)
    }
}

extension OutgoingMail {
    /// The texts the charset is chosen for. HTML is always UTF-8 and file names are always UTF-8
    /// encoded words, so they do not count.
    fileprivate var charsetTexts: [String] {
        let names = ([from] + to + cc + (replyTo.map { [$0] } ?? [])).compactMap(\.name)
        return [subject] + names + BodyLines.split(text, endingWithBreak: false).map(String.init)
    }

    fileprivate func mappingTexts(_ transform: (String) -> String) -> OutgoingMail {
        func renamed(_ address: MailAddress) -> MailAddress {
            var address = address
            address.name = address.name.map(transform)
            return address
        }
        var mail = self
        mail.subject = transform(subject)
        mail.text = transform(text)
        mail.from = renamed(from)
        mail.to = to.map(renamed)
        mail.cc = cc.map(renamed)
        mail.replyTo = replyTo.map(renamed)
        return mail
    }
}
