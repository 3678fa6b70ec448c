import Foundation
import Logging
import PostgresNIO

/// A web-form submission, validated: what the form's contacts, text, fields and files are.
struct InboundWebform: Sendable {
    var formID: String
    var submissionID: String
    var contacts: [(kind: Customer.Identity.Kind, value: String)]
    /// The form's gateway checked that the contacts are the sender's (`IdentityResolver`).
    var contactsVerified: Bool
    var name: String?
    var subject: String
    var body: String
    /// The form's other fields, as JSON (kept exactly as sent) and as "key: value" lines to read.
    var fieldsJSON: String
    var fieldsText: String
    /// Contact fields that could not be read as one (`field`: email, phone or external_id; `why`:
    /// what is wrong), shown in the message and flagged `contact-unreadable`.
    var unreadableContacts: [UnreadableContact] = []
    var email: String?
    var phone: String?
    var submittedAt: Date?
    var attachments: [NewAttachment]

    /// Largest decoded attachment.
    static let attachmentLimit = 10 * 1_000_000

    /// What is wrong with a file's media type as a gateway sent it, if anything: named at its field,
    /// where a NUL had reached the database and come back as a 422 naming no field.
    static func mediaTypeProblem(_ type: String) -> String? {
        if type.contains("\u{0}") { return "contains a NUL character" }
        if type.count > 255 { return "is longer than 255 characters" }
        return type.contains("/") ? nil : "is not a media type like image/png"
    }
}

/// Takes one web-form submission in: the request stored as received, the customer found (or made)
/// from whatever contacts the form carries, a new ticket, the message with the form's other fields
/// shown under it, and its attachments — one transaction.
struct WebformIngest: Sendable {
    let database: Database
    let logger: Logger

    /// The same submission, however it is retried, is one message: (`form_id`, `submission_id`) is
    /// its provider message id.
    func ingest(_ form: InboundWebform, raw: [UInt8], idempotencyKey: String?, apiKeyID: UUID?) async throws -> IngestAnswer {
        try await GatewayIngest(database: database, logger: logger).ingest(.init(
            channel: .webform, provider: form.formID, providerMessageID: form.submissionID, idempotencyKey: idempotencyKey,
            body: raw, apiKeyID: apiKeyID, senderIdentities: form.contacts, text: form.body)
        ) { payloadID, ownersRead, connection in
            let metadata: [String: Any?] = ["form_id": form.formID, "name": form.name, "email": form.email, "phone": form.phone]
            // Under the body, with the form's other fields: what the customer typed, and why it is no contact.
            let unreadable = form.unreadableContacts.map(\.line)
            let extra = (unreadable + (form.fieldsText.isEmpty ? [] : [form.fieldsText])).joined(separator: "\n")
            var message = CustomerMessage(
                channel: .webform, provider: form.formID, providerMessageID: form.submissionID, sender: .contacts(form.contacts, verified: form.contactsVerified),
                senderName: form.name, subject: form.subject, from: form.contacts.first?.value,
                text: extra.isEmpty ? form.body : form.body + "\n\n――――\n" + extra, visibleText: form.body,
                metadata: try NewMessage.metadata(metadata.compactMapValues { $0 }, embedding: ["fields": form.fieldsJSON]),
                sentAt: form.submittedAt, attachments: form.attachments, eventDetails: ["form_id": form.formID])
            if !form.unreadableContacts.isEmpty { message.flags.append("contact-unreadable") }
            // A form with no way to answer is still taken in; its ticket says so.
            let tags = (form.contacts.isEmpty ? ["no-contact"] : []) + (form.unreadableContacts.isEmpty ? [] : ["contact-unreadable"])
            return try await ConversationIntake(logger: logger).take(
                message, placement: .newTicket(tags: tags), payloadID: payloadID, identitiesLocked: true, ownersRead: ownersRead, on: connection)
        }
    }
}
