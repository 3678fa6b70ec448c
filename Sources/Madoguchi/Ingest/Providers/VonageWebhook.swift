import Foundation
import Logging

/// Vonage's SMS API: inbound messages and delivery receipts, posted as JSON or as a form, signed with
/// the `sig` parameter once Vonage support has enabled signing.
struct VonageWebhook: Sendable {
    let database: Database
    let logger: Logger
    let settings: ProviderSettings
    let sms: SmsIngest

    /// An inbound text, or one part of a long one.
    func receiveMessage(_ request: WebhookRequest) async throws -> ProviderWebhookAnswer {
        let fields = try await verifiedFields(request)
        guard let messageID = fields["messageId"], let msisdn = fields["msisdn"] else {
            try await request.fail(Problem.validationFailed([.init(pointer: "messageId", message: "and msisdn are required in a Vonage inbound message")]),
                                   database: database, logger: logger)
        }
        // Vonage writes numbers internationally without the plus.
        let from = msisdn.allSatisfy(\.isNumber) ? "+" + msisdn : msisdn
        let isBinary = fields["type"] == "binary"
        var message = InboundSms(provider: "vonage", providerMessageID: messageID, from: from, to: fields["to"],
                                 body: isBinary ? "" : fields["text"] ?? "", receivedAt: Self.timestamp(fields["message-timestamp"]))
        for key in ["type", "keyword", "api-key"] { if let value = fields[key] { message.details[key] = value } }
        let sender: SmsIngest.Sender
        do { sender = try SmsIngest.validate(message) } catch let problem as Problem { try await request.fail(problem, database: database, logger: logger) }

        if fields["concat"] == "true", let reference = fields["concat-ref"],
           let total = Int(fields["concat-total"] ?? ""), let part = Int(fields["concat-part"] ?? ""), total > 1 {
            guard (2...255).contains(total), (1...total).contains(part), reference.count <= 100 else {
                try await request.fail(Problem.validationFailed([.init(pointer: "concat-part", message: "part \(part) of \(total) is not a possible part")]),
                                       database: database, logger: logger)
            }
            return try await SmsParts(database: database, logger: logger, sms: sms).receive(
                message, sender: sender, part: .init(reference: reference, number: part, count: total), request: request)
        }
        let answer = try await sms.ingest(message, raw: request.body, contentType: request.contentType ?? "", idempotencyKey: nil, apiKeyID: nil)
        return ProviderWebhookAnswer(inboundID: answer.outcome.inboundID, provider: "vonage",
                                     events: [.init(eventID: messageID, type: "message", answer: answer)])
    }

    /// A delivery receipt for a message we sent through Vonage.
    func receiveStatus(_ request: WebhookRequest) async throws -> ProviderWebhookAnswer {
        let fields = try await verifiedFields(request)
        guard let messageID = fields["messageId"], let status = fields["status"] else {
            try await request.fail(Problem.validationFailed([.init(pointer: "messageId", message: "and status are required in a Vonage delivery receipt")]),
                                   database: database, logger: logger)
        }
        let report = SmsDeliveryReport(provider: "vonage", providerMessageID: messageID, status: status.lowercased(), errorCode: fields["err-code"],
                                    recipient: fields["msisdn"])
        return try await SmsDeliveryReports(database: database, logger: logger).apply(report, request: request)
    }

    /// Why a request cannot be verified, known before its body is read (Vonage signs inside the body).
    static func refusalBeforeBody(settings: ProviderSettings) -> String? {
        guard settings.vonageSignatureSecrets.isEmpty, !settings.vonageAllowUnsigned else { return nil }
        return "No Vonage signature secret is configured (MADOGUCHI_VONAGE_SIGNATURE_SECRETS), and unsigned Vonage requests are not allowed (MADOGUCHI_VONAGE_ALLOW_UNSIGNED)."
    }

    /// The parameters, from a JSON object or a form, once `sig` verifies with a configured secret
    /// (or, with no secret, when unsigned requests are explicitly allowed).
    private func verifiedFields(_ request: WebhookRequest) async throws -> [String: String] {
        let fields: [String: String]
        do {
            fields = try Self.parameters(request)
        } catch where !settings.vonageSignatureSecrets.isEmpty {
            // Vonage signs inside the body: one that cannot be read cannot be verified, and is
            // refused as an unsigned request is (its first 4 KiB kept, within the refused budget),
            // not kept whole as a verified request that failed: else anyone could store a megabyte
            // a request, for good.
            try await request.refuse("The body is neither a JSON object nor a form, so its sig cannot be verified: \(error)",
                                     database: database, logger: logger)
        } catch {
            try await request.fail(Problem(.malformedBody, status: .badRequest, title: "Malformed body",
                                           detail: "A Vonage webhook body is a JSON object or a form: \(error)"),
                                   database: database, logger: logger)
        }
        // With no secret, `refusalBeforeBody` let the request through only because unsigned ones are allowed.
        guard !settings.vonageSignatureSecrets.isEmpty else { return fields }
        guard let presented = fields["sig"], !presented.isEmpty else {
            try await request.refuse("The sig parameter is missing; signed webhooks are configured for Vonage.", database: database, logger: logger)
        }
        let expected = settings.vonageSignatureSecrets.map {
            WebhookSignature.vonage(parameters: fields, secret: $0, method: settings.vonageSignatureMethod)
        }
        guard WebhookSignature.matches(presented, anyOf: expected, ignoringCase: true) else {
            try await request.refuse(
                "The sig parameter does not match any configured Vonage signature secret with method \(settings.vonageSignatureMethod.rawValue).",
                database: database, logger: logger)
        }
        return fields
    }

    struct Unreadable: Error, CustomStringConvertible {
        let description: String
    }

    /// The request's parameters as text, whichever format the webhook was configured to post.
    static func parameters(_ request: WebhookRequest) throws -> [String: String] {
        if request.isForm {
            return Dictionary(try FormFields.parse(request.body).map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any] else {
            throw Unreadable(description: "the body is not a JSON object and the content type is not a form")
        }
        var fields: [String: String] = [:]
        for (name, value) in object {
            switch value {
            case let text as String: fields[name] = text
            // Vonage writes every value as a string; a number is taken as written.
            case let number as NSNumber: fields[name] = number.stringValue
            default: continue
            }
        }
        return fields
    }

    /// Vonage's `message-timestamp`, `2020-01-01 12:00:00` in UTC.
    static func timestamp(_ text: String?) -> Date? {
        guard let text else { return nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter.date(from: text)
    }
}
