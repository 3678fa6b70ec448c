import Foundation

/// Amazon SES notifications that arrive as mail: an SNS topic's email subscription delivers the SES
/// notification as JSON (bare, or wrapped in the SNS envelope whose `Message` is the notification
/// encoded once more). `Bounce` lists the failed recipients with their own status and diagnostic,
/// `Complaint` is a feedback report, `Delivery` a delivery report. The `mail` object describes the
/// original message — its `destination` and `source` are everyone it went to and us, never the
/// failed recipients — so only `bouncedRecipients`, `complainedRecipients` and `recipients` count.
enum ESPNotification {
    /// Only mail from SNS (or an SES address) whose text is the notification itself: JSON pasted
    /// into a customer's question is the customer's question.
    static func read(_ mail: ParsedMail) -> (MailClassification, DeliveryReport)? {
        let text = mail.text
        guard text.containsUTF8("notificationType") || text.containsUTF8("eventType") else { return nil }
        let from = (mail.root.headers["From"] ?? "").lowercased()
        let fromAWS = from.containsUTF8("@sns.amazonaws.com") || from.containsUTF8("amazonses.com") || mail.root.headers.field("x-amz-sns-message-id") != nil
        guard fromAWS, !BounceSignatures.isForwardOrReply(mail.subject ?? ""),
              text.drop(while: { $0.isWhitespace }).first == "{", let notification = notification(in: text) else { return nil }
        let type = (notification["notificationType"] as? String) ?? (notification["eventType"] as? String) ?? ""
        let mail = notification["mail"] as? [String: Any]
        let originalID = (mail?["commonHeaders"] as? [String: Any])?["messageId"] as? String
        let messageID = originalID.flatMap { MessageIDs.parse(Array($0.utf8)).first }
        switch type {
        case "Bounce":
            guard let bounce = notification["bounce"] as? [String: Any], let listed = bounce["bouncedRecipients"] as? [[String: Any]] else { return nil }
            let recipients = listed.prefix(500).compactMap { bounced(from: $0, bounce: bounce) }
            return (.bounce, DeliveryReport(recipients: recipients, originalMessageID: messageID))
        case "Complaint":
            let listed = ((notification["complaint"] as? [String: Any])?["complainedRecipients"] as? [[String: Any]]) ?? []
            let recipients = listed.prefix(500).compactMap { $0["emailAddress"] as? String }.map {
                DeliveryReport.Recipient(address: MailAddress.normalize($0), action: "complained", status: nil, reason: "feedback", diagnostic: nil)
            }
            return (.feedbackReport, DeliveryReport(recipients: recipients, originalMessageID: messageID))
        case "Delivery":
            let delivery = notification["delivery"] as? [String: Any]
            let response = delivery?["smtpResponse"] as? String
            let listed = (delivery?["recipients"] as? [String]) ?? []
            guard !listed.isEmpty else { return nil }
            let recipients = listed.prefix(500).map {
                DeliveryReport.Recipient(address: MailAddress.normalize($0), action: "delivered", status: response.flatMap(BounceText.statusCode) ?? "2.0.0",
                                         reason: "delivered", diagnostic: response)
            }
            return (.deliveryReport, DeliveryReport(recipients: recipients, originalMessageID: messageID))
        default:
            return nil
        }
    }

    private static func bounced(from entry: [String: Any], bounce: [String: Any]) -> DeliveryReport.Recipient? {
        guard let address = entry["emailAddress"] as? String, address.contains("@") else { return nil }
        let diagnostic = (entry["diagnosticCode"] as? String).map { code in
            // "smtp; 550 5.1.1 user unknown": the type before the first "; ", the remote server's words after it.
            code.range(of: "; ").map { String(code[$0.upperBound...]) } ?? code
        }
        // SES may give no status at all: then the remote server's reply says it.
        let status = BounceText.refine((entry["status"] as? String).flatMap(BounceText.statusCode), by: diagnostic)
            ?? diagnostic.flatMap(BounceText.mostSpecificStatus)
        let transient = (bounce["bounceType"] as? String) == "Transient"
        let subType = bounce["bounceSubType"] as? String ?? ""
        let reason = subTypeReasons[subType] ?? BounceText.reason(status: status, diagnostic: diagnostic, text: diagnostic ?? "")
        // A transient bounce is SES giving up after its retries: failed, but for a reason that may pass.
        let action = (entry["action"] as? String)?.lowercased() ?? "failed"
        return .init(address: MailAddress.normalize(address), action: action,
                     status: status ?? (transient ? "4.0.0" : nil), reason: reason, diagnostic: diagnostic)
    }

    /// SES's own words for why, where they say more than the status code.
    private static let subTypeReasons = [
        "Suppressed": "suppressed", "OnAccountSuppressionList": "suppressed", "MailboxFull": "mailboxfull",
        "MessageTooLarge": "mesgtoobig", "ContentRejected": "contenterror", "AttachmentRejected": "securityerror",
    ]

    /// The JSON object in the body, unwrapped from the SNS envelope when there is one. The body ends
    /// with SNS's unsubscribe footer after a `--` line, and some relays fold long lines.
    private static func notification(in text: String) -> [String: Any]? {
        var body = text
        if let footer = body.range(of: "\n--\n") { body = String(body[..<footer.lowerBound]) }
        for candidate in [body, body.replacingOccurrences(of: "!\n ", with: ""), body.replacingOccurrences(of: "\n", with: "")] {
            guard let start = candidate.firstIndex(of: "{"), let end = candidate.lastIndex(of: "}"), start < end,
                  let object = try? JSONSerialization.jsonObject(with: Data(candidate[start...end].utf8)) as? [String: Any]
            else { continue }
            if let message = object["Message"] as? String,
               let inner = try? JSONSerialization.jsonObject(with: Data(message.utf8)) as? [String: Any] {
                return inner
            }
            return object
        }
        return nil
    }
}
