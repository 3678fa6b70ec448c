import Foundation
import HTTPTypes
import Logging

/// Twilio Programmable Messaging: incoming messages and status callbacks, posted as forms and signed
/// with `X-Twilio-Signature`.
struct TwilioWebhook: Sendable {
    let database: Database
    let logger: Logger
    let settings: ProviderSettings
    let sms: SmsIngest

    /// What Twilio is answered with when it did not ask for JSON: TwiML that sends no auto-reply.
    static let emptyTwiML = #"<?xml version="1.0" encoding="UTF-8"?><Response/>"#

    /// An incoming SMS or MMS.
    func receiveMessage(_ request: WebhookRequest) async throws -> ProviderWebhookAnswer {
        let fields = try await verifiedFields(request)
        guard let sid = fields["MessageSid"] ?? fields["SmsSid"], let from = fields["From"] else {
            try await request.fail(Problem.validationFailed([.init(pointer: "MessageSid", message: "and From are required in a Twilio message webhook")]),
                                   database: database, logger: logger)
        }
        var message = InboundSms(provider: "twilio", providerMessageID: sid, from: from, to: fields["To"], body: fields["Body"] ?? "")
        for (field, key) in [("AccountSid", "account_sid"), ("MessagingServiceSid", "messaging_service_sid"), ("NumSegments", "segments"),
                             ("FromCountry", "from_country")] {
            if let value = fields[field] { message.details[key] = value }
        }
        // MMS: the media stay on Twilio (fetching them needs the account's credentials); keep the links.
        // Clamped both ways: a negative count made the range below trap, and the process exited.
        let mediaCount = max(0, min(Int(fields["NumMedia"] ?? "") ?? 0, 10))
        for index in 0..<mediaCount {
            guard let url = fields["MediaUrl\(index)"] else { continue }
            message.links.append(["url": url, "media_type": fields["MediaContentType\(index)"] ?? "application/octet-stream",
                                  "filename": "media-\(index + 1)"])
        }
        do { _ = try SmsIngest.validate(message) } catch let problem as Problem { try await request.fail(problem, database: database, logger: logger) }
        let answer = try await sms.ingest(message, raw: request.body, contentType: request.contentType ?? "", idempotencyKey: nil, apiKeyID: nil)
        return ProviderWebhookAnswer(inboundID: answer.outcome.inboundID, provider: "twilio",
                                     events: [.init(eventID: sid, type: "message", answer: answer)])
    }

    /// A status callback for a message we sent through Twilio.
    func receiveStatus(_ request: WebhookRequest) async throws -> ProviderWebhookAnswer {
        let fields = try await verifiedFields(request)
        guard let sid = fields["MessageSid"] ?? fields["SmsSid"], let status = fields["MessageStatus"] ?? fields["SmsStatus"] else {
            try await request.fail(Problem.validationFailed([.init(pointer: "MessageSid", message: "and MessageStatus are required in a Twilio status callback")]),
                                   database: database, logger: logger)
        }
        let report = SmsDeliveryReport(provider: "twilio", providerMessageID: sid, status: status.lowercased(), errorCode: fields["ErrorCode"],
                                    recipient: fields["To"])
        return try await SmsDeliveryReports(database: database, logger: logger).apply(report, request: request)
    }

    /// Why a request cannot be verified, known from its headers before its body is read.
    static func refusalBeforeBody(headers: HTTPFields, settings: ProviderSettings) -> String? {
        guard !settings.twilioAuthTokens.isEmpty else {
            return "No Twilio auth token is configured (MADOGUCHI_TWILIO_AUTH_TOKENS), so no Twilio request can be verified."
        }
        guard let presented = headers[.twilioSignature], !presented.isEmpty else {
            return "X-Twilio-Signature is missing; Twilio signs every webhook it sends."
        }
        return nil
    }

    /// The form's fields, once `X-Twilio-Signature` verifies with one of the configured auth tokens over
    /// one of the URLs Twilio may have called; otherwise the request is kept as rejected and refused.
    private func verifiedFields(_ request: WebhookRequest) async throws -> [String: String] {
        guard let presented = request.headers[.twilioSignature] else { throw Problem.internalError }
        let pairs: [(name: String, value: String)]
        do {
            pairs = request.isForm ? try FormFields.parse(request.body) : []
        } catch {
            try await request.refuse("The form body cannot be read (\(error)), so its signature cannot be checked.", database: database, logger: logger)
        }
        let urls = request.signedURLCandidates(publicURL: settings.publicURL)
        let expected = urls.flatMap { url in settings.twilioAuthTokens.map { WebhookSignature.twilio(url: url, parameters: pairs, authToken: $0) } }
        guard WebhookSignature.matches(presented, anyOf: expected) else {
            let tried = urls.isEmpty ? "no URL (set MADOGUCHI_PUBLIC_URL)" : urls.joined(separator: ", ")
            try await request.refuse("X-Twilio-Signature does not match any configured auth token for the URL(s) \(tried).",
                                     database: database, logger: logger)
        }
        return Dictionary(pairs.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
    }
}

extension HTTPField.Name {
    static let twilioSignature = Self("X-Twilio-Signature")!
}
