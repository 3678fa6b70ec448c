import Foundation

/// A mail to send, before encoding. `MailComposer.compose` turns it into bytes.
public struct OutgoingMail: Sendable {
    public struct Attachment: Sendable {
        /// Shown to the reader; any script, encoded for the header by the composer.
        public var filename: String
        /// `type/subtype` only, e.g. `application/pdf`.
        public var mediaType: String
        public var content: [UInt8]

        public init(filename: String, mediaType: String, content: [UInt8]) {
            self.filename = filename
            self.mediaType = mediaType
            self.content = content
        }
    }

    public var from: MailAddress
    public var to: [MailAddress]
    public var cc: [MailAddress]
    public var replyTo: MailAddress?
    public var subject: String
    /// Bare, no angle brackets: `reply-…@shop.example`.
    public var messageID: String
    /// Bare.
    public var inReplyTo: String?
    /// Bare, oldest first.
    public var references: [String]
    public var date: Date
    /// The plain-text body. LF, CRLF or CR line ends in, CRLF out; a text that does not end in a line
    /// break gets one, because SMTP cannot carry a last line without its CRLF (RFC 5321 §4.1.1.4).
    public var text: String
    /// When set, the body is `multipart/alternative`: the text first, then this.
    public var html: String?
    /// When any, `multipart/mixed` wraps the body and these follow it.
    public var attachments: [Attachment]
    /// RFC 3834 `Auto-Submitted` value (`auto-replied`): only on mail the service sends by itself, nil
    /// for an agent's reply.
    public var autoSubmitted: String?
    /// Extra ASCII header fields (`X-Madoguchi-Ticket`), written after the standard ones in this order.
    public var extraHeaders: [(name: String, value: String)]

    public init(
        from: MailAddress, to: [MailAddress], cc: [MailAddress] = [], replyTo: MailAddress? = nil, subject: String,
        messageID: String, inReplyTo: String? = nil, references: [String] = [], date: Date, text: String, html: String? = nil,
        attachments: [Attachment] = [], autoSubmitted: String? = nil, extraHeaders: [(name: String, value: String)] = []
    ) {
        self.from = from
        self.to = to
        self.cc = cc
        self.replyTo = replyTo
        self.subject = subject
        self.messageID = messageID
        self.inReplyTo = inReplyTo
        self.references = references
        self.date = date
        self.text = text
        self.html = html
        self.attachments = attachments
        self.autoSubmitted = autoSubmitted
        self.extraHeaders = extraHeaders
    }
}

/// A composed message.
public struct ComposedMail: Sendable {
    /// The whole message with CRLF line ends, ready for SMTP DATA. Not dot-stuffed: that belongs to
    /// the SMTP client, and DKIM signs the message before it.
    public var bytes: [UInt8]
    /// What the text parts and the encoded words were written in: `ISO-2022-JP`, `UTF-8` or `US-ASCII`.
    public var charset: String
    /// An address (local part or domain) is not ASCII and is written raw (RFC 6532), so the relay must
    /// offer SMTPUTF8 (RFC 6531) or the mail cannot go.
    public var needsSMTPUTF8: Bool
}
