import Foundation

/// A `messages` row about to be written, whoever writes it: every channel's ingest, a reply going
/// out, an internal note. Unset fields take the column's default.
struct NewMessage: Sendable {
    var ticketID: UUID
    var direction: Message.Direction
    var channel: Channel
    var classification: Message.Classification = .customer
    /// Required for inbound messages (a CHECK holds it).
    var customerID: UUID? = nil
    /// Required for outbound messages and notes.
    var authorAgentID: UUID? = nil
    var inboundPayloadID: UUID? = nil
    /// The sending system and its id for the message: one inbound message per (channel, provider, id).
    var provider: String = ""
    var providerMessageID: String? = nil
    var from: String? = nil
    var to: [String] = []
    var subject: String? = nil
    var bodyText: String = ""
    var bodyHTML: String? = nil
    var quotedText: String? = nil
    /// The new writing, without quoted history or signature.
    var visibleText: String? = nil
    var emailMessageID: String? = nil
    var inReplyTo: String? = nil
    var references: [String] = []
    var threadingReason: String? = nil
    /// A JSON object: what a channel keeps that has no column (names, links, form fields…).
    var metadata: String = "{}"
    /// When the sender says it was sent (a mail's Date, a provider's timestamp); stored only when
    /// plausible (`storedSentAt`).
    var sentAt: Date? = nil
    var attachments: [NewAttachment] = []

    /// `sentAt` within the years 1000–9999, else none. Outside them it is no time anyone meant, and
    /// PostgresNIO traps on an instant beyond ±292,277 years rather than throwing: the server stopped
    /// mid-request, and the relay's retry stopped the next one.
    var storedSentAt: Date? { sentAt.flatMap { Date.fourDigitYears.contains($0) ? $0 : nil } }
}

/// A file on a message, in the order the sender gave it.
struct NewAttachment: Sendable {
    /// The decoded name as the sender gave it: data to show, never a path.
    var filename: String
    var mediaType: String
    var content: [UInt8]
    var contentID: String? = nil
    var isInline: Bool = false
    /// For an attached message: the files inside it (name, type, size), kept as JSON beside it.
    var contained: [ContainedFileRecord] = []
}

extension NewMessage {
    /// Metadata JSON for `object`, with `embedded` members spliced in as the JSON texts they already
    /// are (a gateway's own fields, kept exactly as sent rather than re-encoded through Foundation).
    static func metadata(_ object: [String: Any], embedding embedded: [String: String] = [:]) throws -> String {
        var json = try JSONSerialization.text(object)
        for (key, value) in embedded.sorted(by: { $0.key < $1.key }) {
            let name = String(decoding: try JSONSerialization.data(withJSONObject: key, options: [.fragmentsAllowed]), as: UTF8.self)
            json = String(json.dropLast()) + (json == "{}" ? "" : ",") + "\(name):\(value)}"
        }
        return json
    }
}

/// A file inside an attached message, as `attachments.contained` keeps it.
struct ContainedFileRecord: Codable, Sendable, Equatable {
    var filename: String
    var mediaType: String
    var size: Int64

    enum CodingKeys: String, CodingKey {
        case filename, size
        case mediaType = "media_type"
    }
}
