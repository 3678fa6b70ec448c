import Foundation
import MadoguchiAPI
import OpenAPIRuntime

extension APIHandler {
    var emailIngest: EmailIngest {
        EmailIngest(database: database, logger: logger, subjectWindow: subjectThreadWindow, automaticReply: .init(
            template: delivery.autoReplyTemplate, dailyCap: delivery.autoReplyDailyCap, ownAddress: delivery.mailFrom?.address,
            messageIDDomain: delivery.mailFrom?.asciiDomain ?? "madoguchi", warningWords: warningWords),
            formRelay: FormRelay(formAddresses: delivery.formMailFrom, ownAddress: delivery.mailFrom?.address))
    }

    func ingestEmail(_ input: Operations.IngestEmail.Input) async throws -> Operations.IngestEmail.Output {
        let key = try Self.idempotencyKey(input.headers.idempotencyKey)
        // BodyLimitMiddleware has already refused anything over MADOGUCHI_MAX_EMAIL_BYTES.
        var bytes: [UInt8] = []
        if case .messageRfc822(let body) = input.body { bytes = try await [UInt8](collecting: body, upTo: .max) }
        switch try await emailIngest.ingest(bytes, idempotencyKey: key, apiKeyID: try principal.keyID) {
        case .taken(let outcome): return .created(.init(body: .json(.init(outcome))))
        case .replayed(let outcome): return .ok(.init(body: .json(.init(outcome))))
        case .keptUnreadable(let outcome): return .accepted(.init(body: .json(.init(outcome))))
        }
    }

    func getInboundPayload(_ input: Operations.GetInboundPayload.Input) async throws -> Operations.GetInboundPayload.Output {
        let id = input.path.inboundId.uuid
        let store = InboundPayloadStore(logger: logger)
        // A gateway reads only what it posted (another gateway's is "not found", not "forbidden": its
        // existence is not for it to learn); supervisors and admins read everything.
        let principal = try principal
        let postedWith = principal.role == .gateway ? principal.keyID : nil
        // The bytes when asked for by a raw type and not for JSON in full: a mail as message/rfc822 (when
        // allowed), anything as octet-stream. A web form's JSON or a provider's form body is no mail.
        let accepts = { (type: Operations.GetInboundPayload.AcceptableContentType) in input.headers.accept.contains { $0.contentType == type } }
        let wantsRaw = (accepts(.messageRfc822) || accepts(.binary))
            && !input.headers.accept.contains { $0.contentType == .json && $0.quality.doubleValue >= 1 }
        if wantsRaw {
            guard let raw = try await database.withConnection({ try await store.rawBody(id: id, postedWith: postedWith, on: $0) }) else {
                throw Problem.notFound("There is no inbound payload \(id.uuidString.lowercased()).")
            }
            if raw.channel == .email, accepts(.messageRfc822) { return .ok(.init(body: .messageRfc822(HTTPBody(raw.bytes)))) }
            guard accepts(.binary) else { throw Problem.notAcceptable(offered: ["application/octet-stream", "application/json"]) }
            return .ok(.init(body: .binary(HTTPBody(raw.bytes))))
        }
        guard let record = try await database.withConnection({ try await store.record(id: id, postedWith: postedWith, on: $0) }) else {
            throw Problem.notFound("There is no inbound payload \(id.uuidString.lowercased()).")
        }
        return .ok(.init(body: .json(.init(
            id: record.id.resourceID, channel: .init(rawValue: record.channel.rawValue)!, provider: record.provider,
            providerMessageId: record.providerMessageID, idempotencyKey: record.idempotencyKey, contentType: record.contentType,
            receivedAt: record.receivedAt, processedAt: record.processedAt, size: record.size,
            sha256: record.sha256.lowercaseHex,
            parseStatus: .init(rawValue: record.parseStatus)!, parseError: record.parseError, outcome: record.outcome.map { .init($0) },
            webhookResult: record.webhookAnswer.map { .init($0) }))))
    }

    func reprocessInboundPayload(_ input: Operations.ReprocessInboundPayload.Input) async throws -> Operations.ReprocessInboundPayload.Output {
        switch try await emailIngest.reprocess(payloadID: input.path.inboundId.uuid) {
        case .taken(let outcome): return .created(.init(body: .json(.init(outcome))))
        case .replayed(let outcome): return .ok(.init(body: .json(.init(outcome))))
        case .keptUnreadable(let outcome): return .accepted(.init(body: .json(.init(outcome))))
        }
    }

    /// 1–255 printable ASCII characters (the IETF draft's key is an opaque string; this keeps it
    /// loggable and the column's limit).
    static func idempotencyKey(_ raw: String?) throws -> String? {
        guard let raw else { return nil }
        guard (1...255).contains(raw.utf8.count), raw.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else {
            throw Problem.invalidParameter("Idempotency-Key", "must be 1 to 255 printable ASCII characters without spaces")
        }
        return raw
    }
}

extension APIHandler {
    func ingestWebform(_ input: Operations.IngestWebform.Input) async throws -> Operations.IngestWebform.Output {
        let key = try Self.idempotencyKey(input.headers.idempotencyKey)
        guard case .json(let submission) = input.body else { throw Problem.internalError }
        // The bytes as they came (ContractValidation keeps them); re-encoded only if the middleware was bypassed.
        let raw = try RequestScope.current?.rawBody ?? Array(JSONEncoder.sorted.encode(submission))
        let answer = try await WebformIngest(database: database, logger: logger)
            .ingest(try InboundWebform(validating: submission), raw: raw, idempotencyKey: key, apiKeyID: try principal.keyID)
        // Gateways' JSON is validated before anything is stored, so only new and replayed remain.
        if case .taken(let outcome) = answer { return .created(.init(body: .json(.init(outcome)))) }
        return .ok(.init(body: .json(.init(answer.outcome))))
    }
}

extension APIHandler {
    func ingestSms(_ input: Operations.IngestSms.Input) async throws -> Operations.IngestSms.Output {
        let key = try Self.idempotencyKey(input.headers.idempotencyKey)
        guard case .json(let sms) = input.body else { throw Problem.internalError }
        let raw = try RequestScope.current?.rawBody ?? Array(JSONEncoder.sorted.encode(sms))
        let answer = try await smsIngest.ingest(InboundSms(sms), raw: raw, contentType: "application/json", idempotencyKey: key, apiKeyID: try principal.keyID)
        if case .taken(let outcome) = answer { return .created(.init(body: .json(.init(outcome)))) }
        return .ok(.init(body: .json(.init(answer.outcome))))
    }
}

extension APIHandler {
    func ingestChat(_ input: Operations.IngestChat.Input) async throws -> Operations.IngestChat.Output {
        let key = try Self.idempotencyKey(input.headers.idempotencyKey)
        guard case .json(let chat) = input.body else { throw Problem.internalError }
        let raw = try RequestScope.current?.rawBody ?? Array(JSONEncoder.sorted.encode(chat))
        let answer = try await ChatIngest(database: database, logger: logger, idleGap: chatIdleGap)
            .ingest(try InboundChat(validating: chat), raw: raw, idempotencyKey: key, apiKeyID: try principal.keyID)
        if case .taken(let outcome) = answer { return .created(.init(body: .json(.init(outcome)))) }
        return .ok(.init(body: .json(.init(answer.outcome))))
    }
}

// MARK: - Domain answers as the contract's types

extension Components.Schemas.InboundResult {
    init(_ outcome: InboundOutcome) {
        self.init(
            inboundId: outcome.inboundID.resourceID, channel: .init(rawValue: outcome.channel.rawValue)!,
            parseStatus: .init(rawValue: outcome.parseStatus.rawValue)!, parseError: outcome.parseError,
            classification: outcome.classification.flatMap { .init(rawValue: $0.rawValue) }, messageId: outcome.messageID.resourceID,
            ticketId: outcome.ticketID.resourceID, ticketNumber: outcome.ticketNumber, customerId: outcome.customerID.resourceID,
            threadingReason: outcome.threadingReason, ticketStatus: outcome.ticketStatus.flatMap { .init(rawValue: $0.rawValue) },
            bouncedRecipients: outcome.bouncedRecipients?.map {
                .init(address: $0.address, action: $0.action, status: $0.status, reason: $0.reason, hard: $0.hard)
            },
            defects: outcome.defects, flags: outcome.flags)
    }
}

extension Components.Schemas.ProviderWebhookResult {
    init(_ answer: ProviderWebhookAnswer) {
        self.init(inboundId: answer.inboundID.resourceID, provider: answer.provider, events: answer.events.map {
            .init(eventId: $0.eventID, _type: $0.type, result: .init(rawValue: $0.result.rawValue)!, detail: $0.detail,
                  inbound: $0.inbound.map { .init($0) })
        })
    }
}
