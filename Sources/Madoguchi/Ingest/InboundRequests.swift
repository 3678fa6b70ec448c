import Foundation
import MadoguchiAPI
import MadoguchiMail

// The API layer's side of ingest: each generated request body checked and turned into the domain's
// own value, every bad field named in one 422, before anything is stored.

/// A contact field a customer (or their chat) filled in that cannot be read as one: a phone number a
/// digit short, two addresses in one field. Not a reason to lose their message: the gateway may have
/// no way to ask again. It is kept with the message for an agent to read, flagged
/// `contact-unreadable`, and becomes no identity.
struct UnreadableContact: Sendable {
    /// `email`, `phone` or `external_id`.
    var field: String
    var value: String
    /// What is wrong with it.
    var why: String

    /// `raw` read as a contact of `kind` into `contacts`; one that cannot be into `unreadable`; one too
    /// long or with a NUL (no contact typed by mistake) into `errors`, refused as any field is.
    static func read(_ kind: Customer.Identity.Kind, _ raw: String?, field: String, pointer: String,
                     into contacts: inout [(Customer.Identity.Kind, String)], unreadable: inout [UnreadableContact],
                     errors: inout [Problem.FieldError]) {
        guard let raw, !raw.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return }
        do {
            contacts.append((kind, try IdentityValue.normalize(kind, raw, field: pointer)))
        } catch let problem as Problem {
            guard !raw.contains("\u{0}"), Text.length(raw) <= IdentityValue.maximumLength else {
                errors += problem.errors
                return
            }
            unreadable.append(.init(field: field, value: raw, why: problem.errors.first?.message ?? problem.detail))
        } catch {
            errors.append(.init(pointer: pointer, message: "\(error)"))
        }
    }

    /// As an agent reads it under the message.
    var line: String { "\(field) (not usable: \(why)): \(value)" }
}

extension InboundWebform {
    typealias Submission = Components.Schemas.WebformSubmission

    /// Everything wrong with the submission at once, each naming its field; nothing is written.
    init(validating submission: Submission) throws {
        var errors: [Problem.FieldError] = []
        var contacts: [(Customer.Identity.Kind, String)] = []
        // A contact that cannot be one (a phone number a digit short, two addresses in one field) is
        // not a reason to lose the inquiry: the gateway may have no way to ask the customer again.
        // It is kept in the message for an agent to read, and becomes no identity.
        var unreadable: [UnreadableContact] = []
        for (kind, raw, field) in [(Customer.Identity.Kind.email, submission.email, "email"), (.phone, submission.phone, "phone"),
                                   (.external, submission.externalId, "external_id")] {
            UnreadableContact.read(kind, raw, field: field, pointer: "/" + field, into: &contacts, unreadable: &unreadable, errors: &errors)
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

        var attachments: [NewAttachment] = []
        for (index, attachment) in (submission.attachments ?? []).enumerated() {
            let pointer = "/attachments/\(index)"
            let name = attachment.filename.trimmingCharacters(in: .whitespacesAndNewlines)
            if name.isEmpty || name.contains("\u{0}") { errors.append(.init(pointer: pointer + "/filename", message: "is blank or contains NUL")) }
            if let problem = Self.mediaTypeProblem(attachment.mediaType) { errors.append(.init(pointer: pointer + "/media_type", message: problem)) }
            guard let data = Data(base64Encoded: attachment.contentBase64, options: .ignoreUnknownCharacters) else {
                errors.append(.init(pointer: pointer + "/content_base64", message: "is not base64"))
                continue
            }
            if data.count > Self.attachmentLimit {
                errors.append(.init(pointer: pointer + "/content_base64", message: "is larger than \(Self.attachmentLimit) bytes decoded"))
            }
            attachments.append(.init(filename: SafeFileName.clean(name), mediaType: attachment.mediaType.lowercased(), content: [UInt8](data)))
        }
        let (fieldsJSON, fieldsText) = try Self.render(submission.fields)
        if fieldsJSON.contains("\\u0000") { errors.append(.init(pointer: "/fields", message: "contains a NUL character")) }
        // As the body is limited: the fields are written under it on the message, and a 24 MB field
        // was carried by every read of the ticket's timeline.
        if fieldsText.count > 100_000 { errors.append(.init(pointer: "/fields", message: "is longer than 100000 characters written out")) }
        guard errors.isEmpty else { throw Problem.validationFailed(errors) }

        let name = submission.name?.trimmingCharacters(in: .whitespacesAndNewlines)
        let subject = submission.subject?.trimmingCharacters(in: .whitespacesAndNewlines)
        self.init(
            formID: submission.formId, submissionID: submission.submissionId, contacts: contacts,
            contactsVerified: submission.contactsVerified ?? false, name: name?.isEmpty == false ? name : nil,
            subject: subject?.isEmpty == false ? subject! : "Web form \(submission.formId)",
            body: submission.body, fieldsJSON: fieldsJSON, fieldsText: fieldsText, unreadableContacts: unreadable,
            email: submission.email, phone: submission.phone, submittedAt: submission.submittedAt, attachments: attachments)
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
}

extension InboundChat {
    /// Everything wrong with the message at once, each naming its field; nothing is written.
    init(validating chat: Components.Schemas.ChatMessage) throws {
        var errors: [Problem.FieldError] = []
        if !IdentityValue.isProviderName(chat.provider) {
            errors.append(.init(pointer: "/provider", message: "is not a lower-case provider name like 'intercom'"))
        }
        for (field, text, limit) in [("/conversation_id", chat.conversationId, 200), ("/provider_message_id", chat.providerMessageId, 200),
                                     ("/sender/provider_user_id", chat.sender.providerUserId, 200), ("/text", chat.text ?? "", 20_000),
                                     ("/sender/name", chat.sender.name ?? "", 500)] {
            if text.contains("\u{0}") { errors.append(.init(pointer: field, message: "contains a NUL character")) }
            if text.count > limit { errors.append(.init(pointer: field, message: "is longer than \(limit) characters")) }
            if field != "/text", field != "/sender/name", text.trimmingCharacters(in: .whitespaces).isEmpty {
                errors.append(.init(pointer: field, message: "is blank"))
            }
        }
        // Trimmed, as an identity added through the API is: `intercom:42 ` is `intercom:42`.
        let userID = chat.sender.providerUserId.trimmingCharacters(in: .whitespacesAndNewlines)
        // A LINE user relayed by a gateway is the customer LINE's own webhook knows, by the same
        // identity (`line`, `U…`): as the chat identity `line:U…` they were a second customer, and a
        // reply to them went to the gateway rather than LINE's push API.
        var contacts: [(Customer.Identity.Kind, String)] =
            [chat.provider == "line" && IdentityValue.isLineUserID(userID) ? (.line, userID) : (.chat, "\(chat.provider):\(userID)")]
        var unreadable: [UnreadableContact] = []
        for (kind, raw, field) in [(Customer.Identity.Kind.email, chat.sender.email, "email"), (.phone, chat.sender.phone, "phone")] {
            UnreadableContact.read(kind, raw, field: field, pointer: "/sender/" + field, into: &contacts, unreadable: &unreadable, errors: &errors)
        }
        var files: [NewAttachment] = []
        var links: [[String: String]] = []
        for (index, attachment) in (chat.attachments ?? []).enumerated() {
            let pointer = "/attachments/\(index)"
            let name = SafeFileName.clean(attachment.filename)
            if let problem = InboundWebform.mediaTypeProblem(attachment.mediaType) { errors.append(.init(pointer: pointer + "/media_type", message: problem)) }
            switch (attachment.contentBase64, attachment.url) {
            case (let base64?, _):
                guard let data = Data(base64Encoded: base64, options: .ignoreUnknownCharacters), data.count <= InboundWebform.attachmentLimit else {
                    errors.append(.init(pointer: pointer + "/content_base64", message: "is not base64 of at most \(InboundWebform.attachmentLimit) bytes"))
                    continue
                }
                files.append(.init(filename: name, mediaType: attachment.mediaType.lowercased(), content: [UInt8](data)))
            case (nil, let url?):
                guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""), !url.contains("\u{0}"), url.count <= 2000 else {
                    errors.append(.init(pointer: pointer + "/url", message: "is not an http(s) URL of at most 2000 characters"))
                    continue
                }
                links.append(["filename": name, "media_type": attachment.mediaType, "url": url])
            case (nil, nil):
                errors.append(.init(pointer: pointer, message: "needs content_base64 or url"))
            }
        }
        let text = chat.text ?? ""
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty && files.isEmpty && links.isEmpty {
            errors.append(.init(pointer: "/text", message: "is empty and there is no attachment"))
        }
        guard errors.isEmpty else { throw Problem.validationFailed(errors) }
        let name = chat.sender.name?.trimmingCharacters(in: .whitespacesAndNewlines)
        self.init(
            provider: chat.provider, conversationID: chat.conversationId, providerMessageID: chat.providerMessageId,
            senderUserID: userID, contacts: contacts, contactsVerified: chat.sender.contactsVerified ?? false, name: name?.isEmpty == false ? name : nil, text: text,
            files: files, links: links, sentAt: chat.sentAt, unreadableContacts: unreadable)
    }
}

extension InboundSms {
    /// The provider-neutral JSON shape of `POST /v1/inbound/sms` (checked by `SmsIngest.validate`).
    init(_ sms: Components.Schemas.SmsMessage) {
        self.init(provider: sms.provider, providerMessageID: sms.providerMessageId, from: sms.from, to: sms.to, body: sms.body,
                  receivedAt: sms.receivedAt)
    }
}
