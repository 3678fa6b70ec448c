import Crypto
import Foundation
import Logging
import NIOHTTP1
import PostgresNIO

/// Replies by SMS (Twilio's Messages resource or Vonage's SMS API), by LINE (the push API) and to
/// any other chat through the gateway that pushed it in, one request per recipient.
///
/// What each can promise: LINE deduplicates a push on its `X-Line-Retry-Key`, which we fix per row,
/// so a push that got no answer is simply sent again — exactly once. Twilio and Vonage offer no such
/// key: a request that got no answer, or an answer that may come after the text was made (a 500, a
/// gateway's 502 or 504, a 200 we cannot read), is held for a person (at most once, never a second
/// text); a request turned away before processing (429, 503, our credentials) is retried, one the
/// number refused is failed. The chat gateway gets an `Idempotency-Key` fixed per row and recipient,
/// as LINE's retry key is: posts are retried until one is answered, so a gateway that keeps the key
/// makes it exactly once, and one that does not, at least once.
struct ProviderDelivery: Sendable {
    let logger: Logger
    let settings: DeliverySettings
    let http: ProviderHTTPClient
    let publicURL: String?

    func deliver(_ item: OutboxItem, handover: @escaping @Sendable () async throws -> Void) async -> DeliveryAttempt {
        guard let text = item.source?.body else { return .deferred(item, "the reply of outbox row \(item.id) was not found") }
        // SMS has no way to undo or deduplicate a text, so its handover is the point of no return;
        // LINE's retry key makes a repeated push harmless, so a crash there needs no person.
        if item.channel == .sms {
            do {
                try await handover()
            } catch {
                return DeliveryAttempt(kind: .abandoned)
            }
        }
        var results: [String: RecipientResult] = [:]
        var provider: String?
        var providerIDs: [String] = []
        for recipient in item.pendingRecipients {
            let outcome: Outcome
            switch item.channel {
            case .sms:
                if let twilio = settings.twilio { outcome = await sendTwilio(text, to: recipient, item: item, twilio) }
                else if let vonage = settings.vonage { outcome = await sendVonage(text, to: recipient, item: item, vonage) }
                else { outcome = .result(.pending("SMS sending is not configured")) }
            case .chat:
                if let line = settings.line, let to = Self.linePushTarget(recipient) {
                    if item.attempts > 1 && Date().timeIntervalSince(item.firstAttemptAt) > Self.lineRetryWindow {
                        outcome = .uncertain("LINE honours a retry key for 24 hours after the first push and this retry comes later; "
                                             + "an earlier push may have been accepted, so a person decides")
                    } else {
                        outcome = await sendLine(text, to: to, recipient: recipient, item: item, line)
                    }
                }
                else if let gateway = settings.chatGateway { outcome = await sendToGateway(text, recipient: recipient, item: item, gateway) }
                else {
                    outcome = .result(.failed(
                        "no sending integration for the chat identity \(recipient): answer in the provider's console, or set MADOGUCHI_CHAT_GATEWAY_URL"))
                }
            case .email, .webform:
                outcome = .result(.failed("not a provider channel"))
            }
            switch outcome {
            case .result(let result):
                results[recipient] = result
            case .sent(let name, let id, let reply):
                results[recipient] = .sent(String(reply.prefix(500)))
                provider = name
                if let id = id.flatMap(Self.storableID) { providerIDs.append(id) }
            case .uncertain(let reason):
                // What was settled so far stays settled; the rest waits for a person.
                return .uncertain("\(recipient): \(reason)", settled: results)
            }
        }
        let firstError = results.values.first { $0.status != .sent }?.reply
        return .answered(results, response: providerIDs.first, provider: provider, providerMessageID: providerIDs.first, error: firstError)
    }

    /// A provider's id for what it accepted, when it is one that can be kept: a few characters to 200
    /// (the longest any provider's reports name, as `sms_parts` keeps them). A gateway answering 4,000
    /// characters as its `id` had every attempt's result refused by the message's CHECK, and the
    /// push was sent again at every lease.
    static func storableID(_ id: String) -> String? {
        let trimmed = id.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty || trimmed.count > 200 ? nil : trimmed
    }

    /// How long after a row's first push its retry key still protects a retry: LINE's 24 hours, less
    /// an hour for the attempt itself and clocks that disagree.
    static let lineRetryWindow: TimeInterval = 23 * 3600

    private enum Outcome {
        case result(RecipientResult)
        case sent(provider: String, id: String?, reply: String)
        case uncertain(String)
    }

    // MARK: - Twilio

    private func sendTwilio(_ text: String, to recipient: String, item: OutboxItem, _ twilio: DeliverySettings.TwilioSending) async -> Outcome {
        var form: [(String, String)] = [("To", recipient), ("Body", text)]
        form.append(twilio.from.hasPrefix("MG") ? ("MessagingServiceSid", twilio.from) : ("From", twilio.from))
        if let publicURL { form.append(("StatusCallback", publicURL + "/v1/inbound/sms/twilio/status")) }
        let credentials = Data("\(twilio.accountSID):\(twilio.authToken)".utf8).base64EncodedString()
        let url = "\(twilio.apiURL)/2010-04-01/Accounts/\(twilio.accountSID)/Messages.json"
        do {
            let response = try await http.send(.POST, url, headers: [
                ("Authorization", "Basic \(credentials)"), ("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json"),
            ], body: Array(Self.formEncoded(form).utf8))
            let json = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
            switch response.status {
            case 200..<300:
                let sid = json["sid"] as? String
                return .sent(provider: "twilio", id: sid, reply: "twilio \(response.status) \(sid ?? "") \(json["status"] as? String ?? "")")
            case 300..<400, 401, 403, 429, 503:
                // 401/403: our credentials or account (20003), which a person fixes: every reply would
                // otherwise fail at once, so they wait and are tried again, as a relay's refusal of our
                // session is (RUNBOOK, "Outbound mail"). So does a redirect, never followed: our API URL
                // is wrong (http:// for https://). 429 and 503 are Twilio turning the request away
                // before it is processed: no message was made.
                return .result(.pending("twilio \(response.status): \(json["message"] as? String ?? response.text.prefix(200).description)"))
            case 500...599:
                // An internal error or a gateway's timeout may come after the message was made.
                return .uncertain("twilio \(response.status) after the request was sent: \(json["message"] as? String ?? response.text.prefix(200).description)")
            default:
                let code = json["code"] as? Int
                let reason = "twilio \(response.status) \(code.map(String.init) ?? ""): \(json["message"] as? String ?? response.text.prefix(200).description)"
                // Our sender or account, not the customer's number (RUNBOOK, "SMS and LINE"): a wrong
                // MADOGUCHI_TWILIO_FROM or account failed every text for good and flagged every ticket.
                if response.status == 404 || Self.twilioOwnSideCodes.contains(code ?? 0) { return .result(.pending(reason)) }
                // 21211 invalid number, 21610 the recipient replied STOP, 21614 not a mobile number: the
                // number's own doing. (21612, "cannot route between these numbers", depends on our sender.)
                return .result(.failed(reason, undeliverable: [21211, 21610, 21614].contains(code ?? 0)))
            }
        } catch ProviderHTTPError.notSent(let reason) {
            return .result(.pending("twilio: \(reason)"))
        } catch {
            return .uncertain("twilio: \(error)")
        }
    }

    // MARK: - Vonage

    private func sendVonage(_ text: String, to recipient: String, item: OutboxItem, _ vonage: DeliverySettings.VonageSending) async -> Outcome {
        let to = recipient.hasPrefix("+") ? String(recipient.dropFirst()) : recipient
        let form: [(String, String)] = [
            ("api_key", vonage.apiKey), ("api_secret", vonage.apiSecret), ("from", vonage.from), ("to", to), ("text", text),
            ("type", text.allSatisfy(\.isASCII) ? "text" : "unicode"), ("client-ref", item.id.lowercased),
        ]
        do {
            let response = try await http.send(.POST, "\(vonage.apiURL)/sms/json", headers: [
                ("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json"),
            ], body: Array(Self.formEncoded(form).utf8))
            guard response.status == 200,
                  let json = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
                  let parts = json["messages"] as? [[String: Any]], let first = parts.first
            else {
                // Turned away before processing (throttled, unavailable, our credentials): no text was
                // made. Any other answer, a 200 we cannot read included, may come after one was.
                if (400..<500).contains(response.status) || response.status == 503 {
                    return .result(.pending("vonage \(response.status): \(response.text.prefix(200))"))
                }
                return .uncertain("vonage \(response.status) after the request was sent: \(response.text.prefix(200))")
            }
            // A long text goes as several parts, each with its own status and message-id. One part
            // accepted means the customer gets text: sending again would send those parts twice, so
            // the reply counts as sent (the first accepted part's id is kept), whatever the others say.
            if let accepted = parts.first(where: { $0["status"] as? String == "0" }) {
                let id = accepted["message-id"] as? String
                let refused = parts.filter { $0["status"] as? String != "0" }
                    .map { "part refused, status \($0["status"] as? String ?? ""): \($0["error-text"] as? String ?? "")" }
                return .sent(provider: "vonage", id: id, reply: (["vonage accepted \(id ?? "") (\(parts.count) part(s))"] + refused).joined(separator: "; "))
            }
            let status = first["status"] as? String ?? ""
            let detail = first["error-text"] as? String ?? ""
            switch status {
            case "1", "5", "4", "8", "9", "10", "11", "15", "29", "32":
                // Throttled, or an internal error before sending; or our account, which a person
                // fixes: 4 bad credentials, 8 account barred, 9 out of credit, 10 too many binds,
                // 11 the account not enabled for this API, 15 a sender id not allowed (our `from`),
                // 29 not on the trial allow-list, 32 the account wants signed requests. Tried again
                // with backoff, rather than failing every reply at once.
                return .result(.pending("vonage status \(status): \(detail)"))
            default:
                // 6 unroutable, 7 a barred number, 33 a deactivated one: the number's own doing.
                return .result(.failed("vonage status \(status): \(detail)", undeliverable: ["6", "7", "33"].contains(status)))
            }
        } catch ProviderHTTPError.notSent(let reason) {
            return .result(.pending("vonage: \(reason)"))
        } catch {
            return .uncertain("vonage: \(error)")
        }
    }

    // MARK: - LINE

    /// `to`: a user, group or room id; `recipient`: the identity as stored, which keys the retry.
    private func sendLine(_ text: String, to: String, recipient: String, item: OutboxItem, _ line: DeliverySettings.LineSending) async -> Outcome {
        let body: [String: Any] = ["to": to, "messages": Self.lineTexts(text).map { ["type": "text", "text": $0] }]
        let retryKey = Self.retryKey(item.retryKey, recipient: recipient)
        do {
            let response = try await http.send(.POST, "\(line.apiURL)/v2/bot/message/push", headers: [
                ("Authorization", "Bearer \(line.channelAccessToken)"), ("Content-Type", "application/json"), ("X-Line-Retry-Key", retryKey),
            ], body: Array(try JSONSerialization.text(body).utf8))
            let requestID = response.headers.first(name: "x-line-request-id")
            switch response.status {
            case 200:
                let sent = ((try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any])?["sentMessages"] as? [[String: Any]]
                let id = sent?.first?["id"] as? String ?? requestID
                return .sent(provider: "line", id: id, reply: "line 200 \(id ?? "")")
            case 409 where response.headers.first(name: "x-line-accepted-request-id") != nil:
                // A retry of a push LINE already accepted: it was sent, once.
                let accepted = response.headers.first(name: "x-line-accepted-request-id")
                return .sent(provider: "line", id: accepted, reply: "line: already accepted as \(accepted ?? "")")
            case 300..<400, 401, 403, 429, 500...599:
                // 401/403: the channel access token expired or was revoked (ours to fix): wait, as above;
                // a redirect is our API URL's doing.
                return .result(.pending("line \(response.status): \(response.text.prefix(200))"))
            default:
                return .result(.failed("line \(response.status): \(response.text.prefix(200))"))
            }
        } catch {
            // The retry key makes sending again harmless, whatever happened to this request.
            return .result(.pending("line: \(error)"))
        }
    }

    // MARK: - Chat gateway

    /// One signed JSON POST (Standard Webhooks headers, as outgoing webhooks have): the recipient as
    /// stored and split into the provider and the user id the gateway pushed in, the conversation the
    /// customer last wrote in on the ticket, the text, and the ticket's number. A 2xx is sent (its `id`, if any, kept as the provider's message id); 401 and
    /// 403 (our secret), 408, 409 (the same key still in flight), 425, 429 and 5xx are retried with
    /// the same key; any other answer fails the reply with what the gateway said.
    private func sendToGateway(_ text: String, recipient: String, item: OutboxItem, _ gateway: DeliverySettings.ChatGatewaySending) async -> Outcome {
        let key = Self.retryKey(item.retryKey, recipient: recipient)
        let (provider, user) = Self.chatAddress(recipient)
        var post: [String: Any] = [
            "type": "reply", "id": key, "reply_id": item.replyID.lowercased, "recipient": recipient, "provider": provider, "user_id": user, "text": text,
        ]
        if let number = item.source?.ticketNumber { post["ticket_number"] = number }
        if let conversation = item.source?.conversationID { post["conversation_id"] = conversation }
        do {
            let body = Array(try JSONSerialization.text(post).utf8)
            let signed = StandardWebhooks.headers(id: key, timestamp: Int(Date().timeIntervalSince1970), body: body, secrets: [gateway.secret])
            let response = try await http.send(.POST, gateway.url, headers: [
                ("Content-Type", "application/json"), ("Accept", "application/json"), ("Idempotency-Key", key),
            ] + signed, body: body)
            let said = response.text.prefix(200)
            switch response.status {
            case 200..<300:
                let json = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
                let id = (json?["id"] as? String) ?? (json?["message_id"] as? String)
                return .sent(provider: provider, id: id, reply: "chat gateway \(response.status) \(id ?? "")")
            case 300..<400, 401, 403, 408, 409, 425, 429, 500...599:
                // A redirect (never followed) is MADOGUCHI_CHAT_GATEWAY_URL's doing: waits until it is set right.
                return .result(.pending("chat gateway \(response.status): \(said)"))
            default:
                return .result(.failed("chat gateway \(response.status): \(said)"))
            }
        } catch {
            // The key makes posting again harmless to a gateway that keeps it.
            return .result(.pending("chat gateway: \(error)"))
        }
    }

    /// A chat identity's provider and user id: `intercom:u-42` is (intercom, u-42); a bare LINE
    /// user id (`U…`, as LINE's own webhook stores it) is LINE's.
    static func chatAddress(_ recipient: String) -> (provider: String, user: String) {
        guard let colon = recipient.firstIndex(of: ":") else { return ("line", recipient) }
        return (String(recipient[..<colon]), String(recipient[recipient.index(after: colon)...]))
    }

    /// Where a push to a chat identity goes: a LINE user id as it is (`U…`); a group or room known only
    /// as the conversation (`line:C…`, `line:R…`, when its members have not shared their ids) to that
    /// group or room, as the push API accepts. Any other chat identity has no sending integration.
    static func linePushTarget(_ recipient: String) -> String? {
        if !recipient.contains(":") { return recipient }
        guard recipient.hasPrefix("line:") else { return nil }
        let id = recipient.dropFirst("line:".count)
        return (id.hasPrefix("C") || id.hasPrefix("R")) && !id.contains(":") ? String(id) : nil
    }

    /// The text as LINE text messages: each at most 5,000 characters as LINE counts them (UTF-16
    /// units: 𠮷 or an emoji is two), cut at a line break where one is near, at most five (a push's
    /// limit); what would not fit in five is cut, said so at its end.
    static func lineTexts(_ text: String) -> [String] {
        let limit = 5000
        var parts: [String] = []
        var rest = Substring(text)
        while !rest.isEmpty && parts.count < 5 {
            if rest.utf16.count <= limit { parts.append(String(rest)); rest = ""; break }
            var end = rest.startIndex
            var units = 0
            for index in rest.indices {
                let width = rest[index].utf16.count
                if units + width > limit { break }
                units += width
                end = rest.index(after: index)
            }
            // A single character longer than the limit (only crafted text has one) goes whole: LINE
            // refuses it, rather than a run of empty messages being pushed.
            if end == rest.startIndex { end = rest.index(after: end) }
            // Cut after the last line break in the part's final fifth, if there is one.
            let tail = rest[rest.index(end, offsetBy: -min(1000, rest.distance(from: rest.startIndex, to: end)))..<end]
            if let lineBreak = tail.lastIndex(where: \.isNewline) { end = rest.index(after: lineBreak) }
            parts.append(String(rest[..<end]))
            rest = rest[end...]
        }
        if !rest.isEmpty, var last = parts.popLast() {
            let marker = "…(以下省略)"
            while last.utf16.count + marker.utf16.count > limit { last.removeLast() }
            parts.append(last + marker)
        }
        return parts
    }

    /// One stable key per (row, recipient), so a retried push is recognised by LINE.
    static func retryKey(_ key: UUID, recipient: String) -> String {
        var bytes = Array(SHA256.hash(data: Array("\(key.lowercased):\(recipient)".utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let uuid = UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                               bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
        return uuid.lowercased
    }

    /// Twilio's errors about our side, which a person fixes or which pass (so the text waits and is
    /// tried again): 20404 the account or API URL is wrong (HTTP 404), 21212 / 21606 / 21659 the
    /// `From` is no number of ours that sends SMS, 21608 a trial account's unverified recipient,
    /// 21611 the `From`'s queue is full, 21408 the account may not send to the recipient's country
    /// (sending to Japan is switched off until the account's geographic permissions allow it).
    static let twilioOwnSideCodes: Set<Int> = [20404, 21212, 21408, 21606, 21608, 21611, 21659]

    /// `application/x-www-form-urlencoded`: everything but ASCII letters, digits and `-._*` is
    /// percent-encoded as UTF-8 (Foundation's `alphanumerics` holds every script's letters, which
    /// went out as raw bytes).
    static func formEncoded(_ pairs: [(String, String)]) -> String {
        var allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        allowed.insert(charactersIn: "-._*")
        return pairs.map { "\($0.0.addingPercentEncoding(withAllowedCharacters: allowed)!)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed)!)" }
            .joined(separator: "&")
    }
}
