import Foundation
import Logging
import MadoguchiAPI
import NIOCore
import PostgresNIO

/// Takes one web-form submission in: the request stored as received, the customer found (or made)
/// from whatever contacts the form carries, a new ticket, the message with the form's other fields
/// shown under it, and its attachments — one transaction.
struct WebformIngest: Sendable {
    let database: Database
    let logger: Logger

    typealias Outcome = Components.Schemas.InboundResult
    typealias Submission = Components.Schemas.WebformSubmission

    /// Largest decoded attachment.
    static let attachmentLimit = 10 * 1_000_000

    struct Validated: Sendable {
        var contacts: [(kind: Customer.Identity.Kind, value: String)]
        var name: String?
        var subject: String
        var body: String
        var fieldsJSON: String
        var fieldsText: String
        var attachments: [(filename: String, mediaType: String, content: [UInt8])]
    }

    /// Everything wrong with the submission at once, each naming its field; nothing is written.
    static func validate(_ submission: Submission) throws -> Validated {
        var errors: [Problem.FieldError] = []
        var contacts: [(Customer.Identity.Kind, String)] = []
        for (kind, raw, field) in [(Customer.Identity.Kind.email, submission.email, "/email"), (.phone, submission.phone, "/phone"),
                                   (.external, submission.externalId, "/external_id")] {
            guard let raw, !raw.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { continue }
            do {
                contacts.append((kind, try IdentityValue.normalize(kind, raw, field: field)))
            } catch let problem as Problem {
                errors += problem.errors
            }
        }
        for (field, text) in [("/form_id", submission.formId), ("/submission_id", submission.submissionId)]
        where text.trimmingCharacters(in: .whitespaces).isEmpty {
            errors.append(.init(pointer: field, message: "is blank"))
        }
        for (field, text) in [("/name", submission.name), ("/subject", submission.subject), ("/body", Optional(submission.body)),
                              ("/form_id", Optional(submission.formId)), ("/submission_id", Optional(submission.submissionId))]
        where text?.contains("\u{0}") == true {
            errors.append(.init(pointer: field, message: "contains a NUL character"))
        }
        if submission.body.count > 100_000 { errors.append(.init(pointer: "/body", message: "is longer than 100000 characters")) }
        if (submission.subject?.count ?? 0) > 2000 { errors.append(.init(pointer: "/subject", message: "is longer than 2000 characters")) }
        if (submission.name?.count ?? 0) > 500 { errors.append(.init(pointer: "/name", message: "is longer than 500 characters")) }
        if submission.formId.count > 100 { errors.append(.init(pointer: "/form_id", message: "is longer than 100 characters")) }
        if submission.submissionId.count > 200 { errors.append(.init(pointer: "/submission_id", message: "is longer than 200 characters")) }

        var attachments: [(String, String, [UInt8])] = []
        for (index, attachment) in (submission.attachments ?? []).enumerated() {
            let pointer = "/attachments/\(index)"
            let name = attachment.filename.trimmingCharacters(in: .whitespacesAndNewlines)
            if name.isEmpty || name.contains("\u{0}") { errors.append(.init(pointer: pointer + "/filename", message: "is blank or contains NUL")) }
            if !attachment.mediaType.contains("/") { errors.append(.init(pointer: pointer + "/media_type", message: "is not a media type like image/png")) }
            guard let data = Data(base64Encoded: attachment.contentBase64, options: .ignoreUnknownCharacters) else {
                errors.append(.init(pointer: pointer + "/content_base64", message: "is not base64"))
                continue
            }
            if data.count > attachmentLimit { errors.append(.init(pointer: pointer + "/content_base64", message: "is larger than \(attachmentLimit) bytes decoded")) }
            // A filename is data to show, never a path: separators become "_".
            let safe = String(name.map { $0 == "/" || $0 == "\\" || $0.isNewline ? "_" : $0 })
            attachments.append((safe, attachment.mediaType.lowercased(), [UInt8](data)))
        }
        let (fieldsJSON, fieldsText) = try render(submission.fields)
        if fieldsJSON.contains("\\u0000") { errors.append(.init(pointer: "/fields", message: "contains a NUL character")) }
        guard errors.isEmpty else { throw Problem.validationFailed(errors) }

        let name = submission.name?.trimmingCharacters(in: .whitespacesAndNewlines)
        let subject = submission.subject?.trimmingCharacters(in: .whitespacesAndNewlines)
        return Validated(
            contacts: contacts, name: name?.isEmpty == false ? name : nil,
            subject: subject?.isEmpty == false ? subject! : "Web form \(submission.formId)",
            body: submission.body, fieldsJSON: fieldsJSON, fieldsText: fieldsText, attachments: attachments)
    }

    /// The free-form fields as JSON for `metadata`, and as "key: value" lines an agent reads.
    private static func render(_ fields: Submission.FieldsPayload?) throws -> (String, String) {
        guard let fields else { return ("{}", "") }
        let data = try JSONEncoder.sorted.encode(fields)
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        let lines = object.keys.sorted().map { key -> String in
            let value = object[key]!
            let text: String
            switch value {
            case let string as String: text = string
            case is NSNull: text = ""
            default:
                text = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]))
                    .map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
            }
            return "\(key): \(text)"
        }
        return (String(decoding: data, as: UTF8.self), lines.joined(separator: "\n"))
    }

    func ingest(_ submission: Submission, raw: [UInt8], idempotencyKey: String?, apiKeyID: UUID?) async throws -> (status: Int, outcome: Outcome) {
        let form = try Self.validate(submission)
        let payloads = InboundPayloadStore(logger: logger)
        return try await database.withTransaction { connection in
            // The same submission, however it is retried, is one message.
            let payloadID: UUID
            switch try await payloads.open(
                channel: .webform, provider: submission.formId, providerMessageID: submission.submissionId, idempotencyKey: idempotencyKey,
                body: raw, apiKeyID: apiKeyID, on: connection) {
            case .replay(let outcome): return (200, outcome)
            case .fresh(let id): payloadID = id
            }
            var outcome = Outcome(inboundId: payloadID.resourceID, channel: .webform, parseStatus: .parsed)
            outcome.classification = .customer
            let (customerID, flags) = try await IdentityResolver(logger: logger).resolve(
                contacts: form.contacts, displayName: form.name, channel: .webform, on: connection)
            let ticket = try await TicketIntake(logger: logger).open(
                customerID: customerID, channel: .webform, subject: form.subject, body: form.body, relatedTo: nil, on: connection)
            if flags.contains("no-contact") {
                try await connection.query("UPDATE tickets SET tags = array_append(tags, 'no-contact') WHERE id = \(ticket.id)", logger: logger)
            }
            let messageID = try await insertMessage(form, submission: submission, ticketID: ticket.id, customerID: customerID, payloadID: payloadID, on: connection)
            try await EventStore(logger: logger).record(
                .messageReceived, ticketID: ticket.id, customerID: customerID, messageID: messageID, actor: nil,
                data: ["channel": "webform", "form_id": submission.formId], on: connection)
            outcome.took(message: messageID, on: ticket, customerID: customerID)
            outcome.threadingReason = "new-ticket"
            outcome.flags = flags.isEmpty ? nil : flags
            try await payloads.finish(payloadID, providerMessageID: submission.submissionId, parseError: nil, responseStatus: 201,
                                      outcome: outcome, messageID: messageID, on: connection)
            return (201, outcome)
        }
    }

    private func insertMessage(_ form: Validated, submission: Submission, ticketID: UUID, customerID: UUID, payloadID: UUID,
                               on connection: PostgresConnection) async throws -> UUID {
        let shown = form.fieldsText.isEmpty ? form.body : form.body + "\n\n――――\n" + form.fieldsText
        let metadata = String(decoding: try JSONSerialization.data(withJSONObject: [
            "form_id": submission.formId, "name": form.name as Any, "email": submission.email as Any, "phone": submission.phone as Any,
        ].compactMapValues { $0 is NSNull ? nil : $0 }, options: [.sortedKeys]), as: UTF8.self)
        let rows = try await connection.query("""
            INSERT INTO messages (ticket_id, direction, channel, classification, customer_id, inbound_payload_id, provider, provider_message_id,
                                  from_address, subject, body_text, visible_text, metadata, sent_at)
            VALUES (\(ticketID), 'inbound', 'webform', 'customer', \(customerID), \(payloadID), \(submission.formId), \(submission.submissionId),
                    \(form.contacts.first?.value), \(form.subject), \(shown), \(form.body),
                    \(metadata)::jsonb || jsonb_build_object('fields', \(form.fieldsJSON)::jsonb), \(submission.submittedAt))
            RETURNING id
            """, logger: logger)
        var created: UUID?
        for try await id in rows.decode(UUID.self) { created = id }
        guard let messageID = created else { throw Problem.internalError }
        try await AttachmentWriter(logger: logger).insert(
            form.attachments.map { .init(filename: $0.filename, mediaType: $0.mediaType, content: $0.content) }, messageID: messageID, on: connection)
        return messageID
    }
}
