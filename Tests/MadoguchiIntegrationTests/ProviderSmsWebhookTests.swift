import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing
@testable import Madoguchi

/// Requests as Twilio and Vonage send them, signed here from the providers' documented algorithms
/// (not with the code under test).
enum ProviderRequests {
    static let publicURL = "https://support.example.jp"

    static func form(_ pairs: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._*")
        return pairs.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(separator: "&")
    }

    /// Twilio: Base64(HMAC-SHA1(token, URL + each parameter's name and value, sorted by name)).
    static func twilioSignature(path: String, _ pairs: [(String, String)], token: String, base: String = publicURL) -> String {
        let signed = base + path + pairs.sorted { $0.0 < $1.0 }.map { $0.0 + $0.1 }.joined()
        return Data(HMAC<Insecure.SHA1>.authenticationCode(for: Data(signed.utf8), using: SymmetricKey(data: Data(token.utf8)))).base64EncodedString()
    }

    static func twilioMessage(_ sid: String, from: String = "+819012345678", body: String = "荷物が届きません") -> [(String, String)] {
        [("ToCountry", "JP"), ("SmsMessageSid", sid), ("NumMedia", "0"), ("SmsSid", sid), ("SmsStatus", "received"), ("Body", body),
         ("To", "+815012345678"), ("NumSegments", "1"), ("MessageSid", sid), ("AccountSid", "AC0123"), ("From", from), ("ApiVersion", "2010-04-01")]
    }

    @discardableResult
    static func postTwilio(
        _ app: TestApp, _ pairs: [(String, String)], path: String = "/v1/inbound/sms/twilio", token: String?, json: Bool = true,
        base: String = publicURL, tamper: ((String) -> String)? = nil
    ) async throws -> TestClient.Response {
        var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded; charset=utf-8"]
        if let token { headers[HTTPField.Name("X-Twilio-Signature")!] = twilioSignature(path: path, pairs, token: token, base: base) }
        if json { headers[.accept] = "application/json" }
        let body = form(pairs)
        return try await app.patiently(path, method: .post, headers: headers, body: ByteBuffer(string: tamper?(body) ?? body))
    }

    /// Vonage `md5hash`/HMAC: `&name=value` for every parameter but `sig`, sorted, `&`/`=` in values as `_`.
    static func vonageSigned(_ fields: [String: String], secret: String) -> [String: String] {
        let signed = fields.keys.sorted().map { "&\($0)=\(fields[$0]!.replacingOccurrences(of: "&", with: "_").replacingOccurrences(of: "=", with: "_"))" }.joined()
        let mac = HMAC<SHA256>.authenticationCode(for: Data(signed.utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return fields.merging(["sig": mac.map { String(format: "%02X", $0) }.joined()]) { $1 }
    }

    static func vonageInbound(_ id: String, text: String, concat: (ref: String, part: Int, total: Int)? = nil) -> [String: String] {
        var fields = ["msisdn": "819012345678", "to": "815012345678", "messageId": id, "text": text, "type": "unicode",
                      "keyword": "TEST", "message-timestamp": "2026-11-25 03:04:05", "timestamp": "1795575845", "nonce": UUID().uuidString]
        if let concat {
            fields.merge(["concat": "true", "concat-ref": concat.ref, "concat-part": String(concat.part), "concat-total": String(concat.total)]) { $1 }
        }
        return fields
    }

    @discardableResult
    static func postVonage(_ app: TestApp, _ fields: [String: String], path: String = "/v1/inbound/sms/vonage", asForm: Bool = false) async throws -> TestClient.Response {
        if asForm {
            return try await app.patiently(path, method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                           body: ByteBuffer(string: form(fields.sorted { $0.key < $1.key })))
        }
        let data = try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
        return try await app.patiently(path, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(data: data))
    }
}

@Suite("SMS providers' own webhooks: Twilio and Vonage, signed, never doubled", .timeLimit(.minutes(15)))
struct ProviderSmsWebhookTests {
    static func twilioConfigured(_ configuration: inout Configuration) {
        configuration.providers.publicURL = ProviderRequests.publicURL
        configuration.providers.twilioAuthTokens = ["new-token", "old-token"]
    }

    @Test("Twilio: valid, rotated, retired, missing and tampered signatures; TwiML by default; a redelivery is one message")
    func twilioSignatures() async throws {
        try await TestApp.run(configure: Self.twilioConfigured) { app in
            let first = try await ProviderRequests.postTwilio(app, ProviderRequests.twilioMessage("SM001"), token: "new-token", json: false)
            #expect(first.status == .ok, "\(first.text)")
            #expect(first.headers[.contentType]?.hasPrefix("text/xml") == true)
            #expect(first.text.contains("<Response/>"))

            // Twilio still signing with the token being rotated out.
            let rotated = try await ProviderRequests.postTwilio(app, ProviderRequests.twilioMessage("SM002", body: "続きです"), token: "old-token")
            let event = try #require((try rotated.json["events"] as? [[String: Any]])?.first)
            #expect(event["result"] as? String == "taken")
            let inbound = try #require(event["inbound"] as? [String: Any])
            #expect(inbound["threading_reason"] as? String == "sms-conversation")

            let redelivered = try await ProviderRequests.postTwilio(app, ProviderRequests.twilioMessage("SM002", body: "続きです"), token: "new-token")
            #expect((try redelivered.json["events"] as? [[String: Any]])?.first?["result"] as? String == "duplicate")

            let before = try await app.count("SELECT count(*) FROM inbound_payloads")
            for (token, tamper) in [("retired-token", nil), (nil, nil), ("new-token", { (body: String) in body.replacingOccurrences(of: "SM003", with: "SM004") })]
                as [(String?, ((String) -> String)?)] {
                let refused = try await ProviderRequests.postTwilio(app, ProviderRequests.twilioMessage("SM003"), token: token, tamper: tamper)
                try expectProblem(refused, .forbidden, "signature-invalid")
            }
            // The request with no signature header was refused before its body was read, so it left no row.
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == before + 2)
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE parse_status = 'rejected' AND provider = 'twilio'") == 2)
            #expect(try await app.count("SELECT count(*) FROM messages") == 2)
            #expect(try await app.count("SELECT count(*) FROM customers") == 1)

            // A provider nobody wrote a reader for is a clear 404, and writes nothing.
            let unknown = try await app.client.execute(uri: "/v1/inbound/sms/nexmo-classic", method: .post,
                                                       headers: [.contentType: "application/json"], body: ByteBuffer(string: "{}"))
            try expectProblem(unknown, .notFound, "unknown-provider")
            #expect(unknown.text.contains("twilio, vonage"))
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == before + 2)

            // Signed, but not a message: kept as failed, the missing field named, and answered 200
            // (no redelivery could mend it); as TwiML when Twilio asks, as it does.
            let incomplete = try await ProviderRequests.postTwilio(app, [("AccountSid", "AC0123")], token: "new-token")
            #expect(incomplete.status == .ok, "\(incomplete.text)")
            let failed = try #require((try incomplete.json["events"] as? [[String: Any]])?.first)
            #expect(failed["result"] as? String == "failed")
            #expect((failed["detail"] as? String)?.contains("MessageSid") == true)
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE parse_status = 'failed'") == 1)
            let asTwilioAsks = try await ProviderRequests.postTwilio(app, [("AccountSid", "AC0124")], token: "new-token", json: false)
            #expect(asTwilioAsks.status == .ok && asTwilioAsks.text.contains("<Response/>"), "\(asTwilioAsks.text)")
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE parse_status = 'failed'") == 2)
        }
    }

    @Test("the same Twilio message delivered 10 times at once is one message")
    func twilioConcurrentRedelivery() async throws {
        try await TestApp.run(configure: Self.twilioConfigured) { app in
            let pairs = ProviderRequests.twilioMessage("SM900")
            let headers: HTTPFields = [
                .contentType: "application/x-www-form-urlencoded", .accept: "application/json",
                HTTPField.Name("X-Twilio-Signature")!: ProviderRequests.twilioSignature(path: "/v1/inbound/sms/twilio", pairs, token: "new-token"),
            ]
            let statuses = try await app.postConcurrently("/v1/inbound/sms/twilio", headers: headers,
                                                          bodies: Array(repeating: ByteBuffer(string: ProviderRequests.form(pairs)), count: 10))
            #expect(statuses == Array(repeating: .ok, count: 10))
            #expect(try await app.count("SELECT count(*) FROM messages") == 1)
            #expect(try await app.count("SELECT count(*) FROM tickets") == 1)
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE provider = 'twilio'") == 10)
        }
    }

    @Test("bad input: invalid UTF-8, a body over the limit, a field too long; each kept or refused, nothing half-written")
    func badInput() async throws {
        try await TestApp.run(configure: {
            Self.twilioConfigured(&$0)
            Self.vonageConfigured(&$0)
        }) { app in
            let signature = HTTPField.Name("X-Twilio-Signature")!
            // A form that does not decode to text cannot be signature-checked: refused, kept.
            let notUTF8 = try await app.client.execute(
                uri: "/v1/inbound/sms/twilio", method: .post,
                headers: [.contentType: "application/x-www-form-urlencoded", signature: "AAAA"], body: ByteBuffer(string: "MessageSid=SM1&Body=%FF%FE"))
            try expectProblem(notUTF8, .forbidden, "signature-invalid")
            // Over MADOGUCHI_MAX_BODY_BYTES: 413 before anything is read or stored.
            let huge = ProviderRequests.twilioMessage("SM2", body: String(repeating: "長", count: 400_000))
            try expectProblem(try await ProviderRequests.postTwilio(app, huge, token: "new-token"), .contentTooLarge, "payload-too-large")
            // Vonage signs inside the body: bytes that are neither a JSON object nor a form cannot be
            // verified, so they are refused as an unsigned request is, and only their first 4 KiB kept
            // (not the whole body, as for a verified request that failed).
            var bytes = ByteBuffer(string: #"{"msisdn":"819012345678","text":""#)
            bytes.writeBytes([0xFF, 0xFE])
            bytes.writeString(#""}"#)
            let vonage = try await app.client.execute(uri: "/v1/inbound/sms/vonage", method: .post, headers: [.contentType: "application/json"], body: bytes)
            try expectProblem(vonage, .forbidden, "signature-invalid")
            let junk = try await app.client.execute(uri: "/v1/inbound/sms/vonage", method: .post, headers: [.contentType: "application/json"],
                                                    body: ByteBuffer(string: String(repeating: "x", count: 200_000)))
            try expectProblem(junk, .forbidden, "signature-invalid")
            #expect(try await app.count("SELECT max(octet_length(body)) FROM inbound_payloads WHERE provider = 'vonage'") <= 4096)
            // Signed, but with a field of the wrong kind: the text too long for an SMS is named.
            let long = ProviderRequests.vonageSigned(ProviderRequests.vonageInbound("V9", text: String(repeating: "a", count: 10_001)), secret: "vonage-new")
            let tooLong = try await ProviderRequests.postVonage(app, long)
            #expect(tooLong.status == .ok, "\(tooLong.text)")
            #expect((try tooLong.json["events"] as? [[String: Any]])?.first?["result"] as? String == "failed")
            #expect(tooLong.text.contains("/body"))

            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE parse_status = 'rejected'") == 3)
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE parse_status = 'failed'") == 1)
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == 4)
            #expect(try await app.count("SELECT count(*) FROM messages") == 0)
            #expect(try await app.count("SELECT count(*) FROM customers") == 0)
        }
    }

    @Test("Twilio without a configured auth token refuses every request before reading it")
    func twilioUnconfigured() async throws {
        try await TestApp.run { app in
            let refused = try await ProviderRequests.postTwilio(app, ProviderRequests.twilioMessage("SM001"), token: "any")
            try expectProblem(refused, .forbidden, "signature-invalid")
            #expect(refused.text.contains("MADOGUCHI_TWILIO_AUTH_TOKENS"))
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads") == 0)
            #expect(try await app.count("SELECT count(*) FROM messages") == 0)
        }
    }

    @Test("Twilio without MADOGUCHI_PUBLIC_URL: the URL it signed is rebuilt from the Host it called, query included")
    func twilioHostURL() async throws {
        try await TestApp.run(configure: { $0.providers.twilioAuthTokens = ["token"] }) { app in
            // HummingbirdTesting's client sends `Host: localhost`, without the port.
            let path = "/v1/inbound/sms/twilio?shop=tokyo"
            let response = try await ProviderRequests.postTwilio(app, ProviderRequests.twilioMessage("SM100"), path: path, token: "token",
                                                                 base: "http://localhost")
            #expect(response.status == .ok, "\(response.text)")
            let proxied = try await ProviderRequests.postTwilio(app, ProviderRequests.twilioMessage("SM101"), path: path, token: "token",
                                                                base: "https://localhost")
            #expect(proxied.status == .ok, "\(proxied.text)")
            let elsewhere = try await ProviderRequests.postTwilio(app, ProviderRequests.twilioMessage("SM102"), path: path, token: "token",
                                                                  base: "https://attacker.example")
            try expectProblem(elsewhere, .forbidden, "signature-invalid")
            #expect(elsewhere.text.contains("https://localhost/v1/inbound/sms/twilio?shop=tokyo"), "\(elsewhere.text)")
        }
    }

    @Test("Twilio MMS: the media are kept as links on the message; a negative count is none")
    func twilioMedia() async throws {
        try await TestApp.run(configure: Self.twilioConfigured) { app in
            var pairs = ProviderRequests.twilioMessage("MM001", body: "")
            pairs.removeAll { $0.0 == "NumMedia" }
            pairs += [("NumMedia", "1"), ("MediaUrl0", "https://api.twilio.com/2010-04-01/Accounts/AC0123/Messages/MM001/Media/ME1"),
                      ("MediaContentType0", "image/jpeg")]
            let response = try await ProviderRequests.postTwilio(app, pairs, token: "new-token")
            #expect((try response.json["events"] as? [[String: Any]])?.first?["result"] as? String == "taken", "\(response.text)")
            #expect(try await app.count("""
                SELECT count(*) FROM messages WHERE metadata->'links'->0->>'media_type' = 'image/jpeg' AND metadata->>'account_sid' = 'AC0123'
                """) == 1)
            let ticket = try #require(((try response.json["events"] as? [[String: Any]])?.first?["inbound"] as? [String: Any])?["ticket_id"] as? String)
            let timeline = try await app.request(.get, "/v1/tickets/\(ticket)/messages", key: try await app.keySecret(.supervisor))
            let links = ((try timeline.json["items"] as? [[String: Any]])?.first?["links"] as? [[String: Any]]) ?? []
            #expect(links.first?["url"] as? String == "https://api.twilio.com/2010-04-01/Accounts/AC0123/Messages/MM001/Media/ME1", "\(timeline.text)")

            // A negative count, signed: taken as none (the range it made trapped, and the server exited).
            var negative = ProviderRequests.twilioMessage("MM002", body: "x")
            negative.removeAll { $0.0 == "NumMedia" }
            negative.append(("NumMedia", "-1"))
            let taken = try await ProviderRequests.postTwilio(app, negative, token: "new-token")
            #expect((try taken.json["events"] as? [[String: Any]])?.first?["result"] as? String == "taken", "\(taken.text)")
        }
    }

    @Test("status callbacks move our outbound message forward only; failures are events; unknown ids are kept")
    func deliveryReports() async throws {
        try await TestApp.run(configure: Self.twilioConfigured) { app in
            let agent = try await app.key(.agent)
            let customer = try await app.customer()
            let ticket = try await app.ticket(customer: customer)
            for sid in ["SMout1", "SMout2"] {
                try await app.execute("""
                    INSERT INTO messages (ticket_id, direction, channel, author_agent_id, provider, provider_message_id, body_text, to_addresses)
                    VALUES (\(ticket), 'outbound', 'sms', \(agent.record.agentID), 'twilio', \(sid), 'お届け日のご案内', '{+819012345678}')
                    """)
            }
            func report(_ sid: String, _ status: String, error: String? = nil) async throws -> [String: Any] {
                var pairs = [("MessageSid", sid), ("MessageStatus", status), ("To", "+819012345678"), ("AccountSid", "AC0123")]
                if let error { pairs.append(("ErrorCode", error)) }
                let response = try await ProviderRequests.postTwilio(app, pairs, path: "/v1/inbound/sms/twilio/status", token: "new-token", json: false)
                #expect(response.status == .ok, "\(response.text)")
                return try #require((try response.json["events"] as? [[String: Any]])?.first)
            }
            func status(_ sid: String) async throws -> String? {
                try await app.database.withConnection { connection in
                    let rows = try await connection.query("SELECT metadata->'delivery'->>'status' FROM messages WHERE provider_message_id = \(sid)",
                                                          logger: TestCluster.logger)
                    for try await value in rows.decode(String?.self) { return value }
                    return nil
                }
            }
            #expect(try await report("SMout1", "sent")["result"] as? String == "recorded")
            #expect(try await report("SMout1", "delivered")["result"] as? String == "recorded")
            let late = try await report("SMout1", "sent")
            #expect((late["detail"] as? String)?.contains("Kept 'delivered'") == true, "\(late)")
            #expect(try await status("SMout1") == "delivered")

            try await app.execute("UPDATE tickets SET status = 'solved', solved_at = now() WHERE id = \(ticket)")
            _ = try await report("SMout2", "undelivered", error: "30006")
            #expect(try await status("SMout2") == "undelivered")
            // The customer never got it: the ticket is flagged and back in the queue, as for a bounced mail.
            #expect(try await app.strings("SELECT status || ' ' || array_to_string(tags, ',') FROM tickets WHERE id = \(ticket)") == ["open delivery-failed"])
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'message.delivery_failed' AND data->>'error_code' = '30006'") == 1)
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'message.delivery_updated'") == 2)

            // What the agent sees on the ticket.
            let timeline = try await app.request(.get, "/v1/tickets/\(ticket)/messages", key: agent.secret)
            let deliveries = ((try timeline.json["items"] as? [[String: Any]]) ?? []).compactMap { $0["delivery"] as? [String: Any] }
            #expect(deliveries.compactMap { $0["status"] as? String } == ["delivered", "undelivered"], "\(timeline.text)")
            #expect(deliveries.last?["error_code"] as? String == "30006")

            #expect(try await report("SMnever", "delivered")["result"] as? String == "no-matching-message")
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE provider = 'twilio'") == 5)
        }
    }

    static func vonageConfigured(_ configuration: inout Configuration) {
        configuration.providers.vonageSignatureSecrets = ["vonage-new", "vonage-old"]
        configuration.providers.vonageSignatureMethod = .sha256
    }

    @Test("Vonage: JSON or form, signed with either secret; unsigned or wrongly signed is refused")
    func vonageSignatures() async throws {
        try await TestApp.run(configure: Self.vonageConfigured) { app in
            let json = try await ProviderRequests.postVonage(app, ProviderRequests.vonageSigned(ProviderRequests.vonageInbound("V1", text: "a&b=c 届かない"), secret: "vonage-new"))
            let event = try #require((try json.json["events"] as? [[String: Any]])?.first, "\(json.text)")
            #expect(event["result"] as? String == "taken")
            let form = try await ProviderRequests.postVonage(app, ProviderRequests.vonageSigned(ProviderRequests.vonageInbound("V2", text: "続き"), secret: "vonage-old"), asForm: true)
            #expect((try form.json["events"] as? [[String: Any]])?.first?["result"] as? String == "taken", "\(form.text)")

            try expectProblem(try await ProviderRequests.postVonage(app, ProviderRequests.vonageInbound("V3", text: "x")), .forbidden, "signature-invalid")
            try expectProblem(
                try await ProviderRequests.postVonage(app, ProviderRequests.vonageSigned(ProviderRequests.vonageInbound("V4", text: "x"), secret: "retired")),
                .forbidden, "signature-invalid")
            var tampered = ProviderRequests.vonageSigned(ProviderRequests.vonageInbound("V5", text: "x"), secret: "vonage-new")
            tampered["text"] = "y"
            try expectProblem(try await ProviderRequests.postVonage(app, tampered), .forbidden, "signature-invalid")
            #expect(try await app.count("SELECT count(*) FROM inbound_payloads WHERE parse_status = 'rejected'") == 3)
            #expect(try await app.count("SELECT count(*) FROM messages") == 2)
            // msisdn without a plus is still the customer's Japanese mobile number.
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE value = '+819012345678'") == 1)
        }
    }

    @Test("Vonage without a secret: refused unless unsigned requests are allowed")
    func vonageUnsigned() async throws {
        try await TestApp.run { app in
            try expectProblem(try await ProviderRequests.postVonage(app, ProviderRequests.vonageInbound("V1", text: "x")), .forbidden, "signature-invalid")
        }
        try await TestApp.run(configure: { $0.providers.vonageAllowUnsigned = true }) { app in
            let response = try await ProviderRequests.postVonage(app, ProviderRequests.vonageInbound("V1", text: "x"))
            #expect((try response.json["events"] as? [[String: Any]])?.first?["result"] as? String == "taken", "\(response.text)")
        }
    }

    @Test("a long text in three parts, out of order and one retried, is one message in part order")
    func vonageConcatenation() async throws {
        try await TestApp.run(configure: Self.vonageConfigured) { app in
            let parts = ["ご注文の商品がまだ届いておりません。", "追跡番号は1234です。", "ご確認ください。"]
            func send(_ part: Int) async throws -> [String: Any] {
                let fields = ProviderRequests.vonageInbound("P\(part)", text: parts[part - 1], concat: (ref: "AB", part: part, total: 3))
                let response = try await ProviderRequests.postVonage(app, ProviderRequests.vonageSigned(fields, secret: "vonage-new"))
                #expect(response.status == .ok, "\(response.text)")
                return try #require((try response.json["events"] as? [[String: Any]])?.first)
            }
            #expect(try await send(3)["result"] as? String == "waiting-for-parts")
            #expect(try await send(1)["result"] as? String == "waiting-for-parts")
            #expect(try await send(1)["result"] as? String == "waiting-for-parts")
            let last = try await send(2)
            #expect(last["result"] as? String == "taken", "\(last)")
            // A late retry of a part gets the assembled message's answer.
            let retry = try await send(3)
            #expect(retry["result"] as? String == "duplicate")
            #expect((retry["inbound"] as? [String: Any])?["message_id"] as? String == (last["inbound"] as? [String: Any])?["message_id"] as? String)

            #expect(try await app.count("SELECT count(*) FROM messages") == 1)
            #expect(try await app.count("SELECT count(*) FROM messages WHERE body_text = \(parts.joined()) AND provider_message_id = 'P1'") == 1)
            #expect(try await app.count("SELECT count(*) FROM sms_parts WHERE message_id IS NOT NULL") == 3)
        }
    }

    @Test("a long text whose middle part never comes is released after the wait, the gap marked; a retry then gets that message")
    func vonageIncompleteParts() async throws {
        try await TestApp.run(configure: Self.vonageConfigured) { app in
            func send(_ part: Int, _ text: String) async throws -> [String: Any] {
                let fields = ProviderRequests.vonageInbound("Q\(part)", text: text, concat: (ref: "EF", part: part, total: 3))
                let response = try await ProviderRequests.postVonage(app, ProviderRequests.vonageSigned(fields, secret: "vonage-new"))
                return try #require((try response.json["events"] as? [[String: Any]])?.first, "\(response.text)")
            }
            _ = try await send(1, "返品したいのですが、")
            _ = try await send(3, "よろしくお願いします。")
            let parts = SmsParts(database: app.database, logger: TestCluster.logger,
                                 sms: SmsIngest(database: app.database, logger: TestCluster.logger, conversationWindow: .seconds(3600)))
            #expect(try await parts.releaseStale(olderThan: .seconds(600)) == 0, "not yet: they are younger than the wait")
            #expect(try await app.count("SELECT count(*) FROM messages") == 0)

            #expect(try await parts.releaseStale(olderThan: .zero) == 1)
            #expect(try await app.count("""
                SELECT count(*) FROM messages WHERE body_text = '返品したいのですが、[…]よろしくお願いします。' AND metadata->>'missing_parts' = '2'
                """) == 1)
            let retry = try await send(1, "返品したいのですが、")
            #expect(retry["result"] as? String == "duplicate", "\(retry)")
            #expect(try await parts.releaseStale(olderThan: .zero) == 0)
            #expect(try await app.count("SELECT count(*) FROM messages") == 1)
        }
    }

    @Test("a new text under the reference an incomplete one still holds releases the earlier parts first: no message mixes two texts")
    func vonageReusedReference() async throws {
        try await TestApp.run(configure: Self.vonageConfigured) { app in
            func send(_ id: String, _ part: Int, _ text: String) async throws -> [String: Any] {
                let fields = ProviderRequests.vonageInbound(id, text: text, concat: (ref: "GH", part: part, total: 3))
                let response = try await ProviderRequests.postVonage(app, ProviderRequests.vonageSigned(fields, secret: "vonage-new"))
                return try #require((try response.json["events"] as? [[String: Any]])?.first, "\(response.text)")
            }
            // The first text's third part never comes.
            _ = try await send("A1", 1, "注文番号は")
            _ = try await send("A2", 2, "9876です。")
            // The next text reuses the reference; its first part to arrive is a number already waiting.
            #expect(try await send("B2", 2, "届きました、")["result"] as? String == "waiting-for-parts")
            #expect(try await app.count("""
                SELECT count(*) FROM messages WHERE body_text = '注文番号は9876です。[…]' AND metadata->>'missing_parts' = '3'
                """) == 1)
            #expect(try await send("B1", 1, "先ほどの件、")["result"] as? String == "waiting-for-parts")
            let whole = try await send("B3", 3, "ありがとう。")
            #expect(whole["result"] as? String == "taken", "\(whole)")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE body_text = '先ほどの件、届きました、ありがとう。' AND provider_message_id = 'B1'") == 1)
            #expect(try await app.count("SELECT count(*) FROM messages") == 2)
            #expect(try await app.count("SELECT count(*) FROM sms_parts WHERE message_id IS NULL") == 0)
            // A retry of an earlier part gets the message it went into.
            #expect(try await send("A2", 2, "9876です。")["result"] as? String == "duplicate")
            #expect(try await app.count("SELECT count(*) FROM messages") == 2)

            // A third text's parts, its last first, while the second-to-last set (D1, D2; D3 lost)
            // waits from minutes ago: no number clashes, and the time apart tells them.
            _ = try await send("D1", 1, "一通目の")
            _ = try await send("D2", 2, "途中まで")
            try await app.execute("UPDATE sms_parts SET received_at = now() - interval '5 minutes' WHERE provider_message_id IN ('D1', 'D2')")
            #expect(try await send("E3", 3, "です。")["result"] as? String == "waiting-for-parts")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE body_text = '一通目の途中まで[…]'") == 1)
            _ = try await send("E1", 1, "三通目")
            #expect(try await send("E2", 2, "の本文")["result"] as? String == "taken")
            #expect(try await app.count("SELECT count(*) FROM messages WHERE body_text = '三通目の本文です。'") == 1)
            #expect(try await app.count("SELECT count(*) FROM sms_parts WHERE message_id IS NULL") == 0)
        }
    }

    @Test("the parts of a long text arriving at once still make exactly one message")
    func vonageConcurrentParts() async throws {
        try await TestApp.run(configure: Self.vonageConfigured) { app in
            let bodies = try (1...4).map { part in
                let fields = ProviderRequests.vonageInbound("C\(part)", text: "\(part)", concat: (ref: "CD", part: part, total: 4))
                return ByteBuffer(data: try JSONSerialization.data(withJSONObject: ProviderRequests.vonageSigned(fields, secret: "vonage-new"), options: [.sortedKeys]))
            }
            let statuses = try await app.postConcurrently("/v1/inbound/sms/vonage", headers: [.contentType: "application/json"], bodies: bodies + bodies)
            #expect(statuses == Array(repeating: .ok, count: 8))
            #expect(try await app.count("SELECT count(*) FROM messages WHERE body_text = '1234'") == 1)
            #expect(try await app.count("SELECT count(*) FROM messages") == 1)
        }
    }
}
