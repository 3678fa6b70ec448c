import Foundation
import MadoguchiMail

/// The parts of LINE's webhook body this service reads; everything else stays in the stored payload.
extension LineWebhook {
    struct Payload: Decodable {
        var destination: String?
        var events: [Event]
    }

    struct Event: Decodable {
        var type: String
        var mode: String?
        var timestamp: Int64?
        var webhookEventId: String?
        var source: Source?
        var message: Message?
        var postback: Postback?
        var unsend: Unsend?
    }

    struct Source: Decodable {
        var type: String
        var userId: String?
        var groupId: String?
        var roomId: String?
    }

    struct Message: Decodable {
        var id: String
        var type: String
        var text: String?
        var fileName: String?
        var title: String?
        var address: String?
        var latitude: Double?
        var longitude: Double?
        var packageId: String?
        var stickerId: String?
        var keywords: [String]?
        var contentProvider: ContentProvider?
    }

    struct ContentProvider: Decodable {
        var type: String
        var originalContentUrl: String?
    }

    struct Postback: Decodable {
        var data: String
    }

    struct Unsend: Decodable {
        var messageId: String
    }
}

extension LineWebhook.Event {
    /// A message event as the chat ingest takes it: text as text; stickers and locations described;
    /// media kept as references to LINE's content, which only the channel access token can fetch.
    func inboundChat(_ message: LineWebhook.Message) -> InboundChat {
        let source = self.source
        let conversation = source?.groupId ?? source?.roomId ?? source?.userId ?? "unknown"
        var details: [String: String] = ["line_message_type": message.type, "source_type": source?.type ?? ""]
        if let mode { details["mode"] = mode }
        var links: [[String: String]] = []
        let text: String
        switch message.type {
        case "text":
            text = message.text ?? ""
        case "sticker":
            text = "[sticker" + (message.keywords.map { ": " + $0.prefix(3).joined(separator: ", ") } ?? "") + "]"
            details["sticker"] = "\(message.packageId ?? "")/\(message.stickerId ?? "")"
        case "location":
            text = [message.title, message.address, message.latitude.flatMap { lat in message.longitude.map { "(\(lat), \($0))" } }]
                .compactMap { $0 }.joined(separator: "\n")
        case "image", "video", "audio", "file":
            let fileName = message.fileName.map(SafeFileName.clean)
            text = "[\(message.type)" + (fileName.map { ": \($0)" } ?? "") + "]"
            details["line_content_id"] = message.id
            if let url = message.contentProvider?.originalContentUrl {
                links.append(["url": url, "media_type": message.type, "filename": fileName ?? message.type])
            }
        default:
            text = "[\(message.type)]"
        }
        // A group member who has not consented to share their id is known only by the group: the group
        // then stands for the customer, rather than a new anonymous customer per message.
        let contacts: [(kind: Customer.Identity.Kind, value: String)] =
            if let userID = source?.userId { [(.line, userID)] } else if source?.type == "group" || source?.type == "room" { [(.chat, "line:\(conversation)")] } else { [] }
        return InboundChat(
            provider: "line", conversationID: conversation, providerMessageID: message.id, senderUserID: source?.userId ?? "",
            contacts: contacts, name: nil, text: Text.limit(text, 20_000), links: links,
            sentAt: timestamp.map { Date(timeIntervalSince1970: Double($0) / 1000) }, details: details)
    }
}
