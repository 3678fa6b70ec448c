import Foundation
import MadoguchiAPI
import OpenAPIRuntime

/// The provider-format webhooks: `/v1/inbound/{sms|chat}/{provider}`. No API key reaches these; each
/// provider's webhook verifies the provider's own signature before reading anything, and a request
/// whose headers already show it cannot be verified is refused before its body is read.
extension APIHandler {
    var smsIngest: SmsIngest { SmsIngest(database: database, logger: logger, conversationWindow: subjectThreadWindow) }
    var smsParts: SmsParts { SmsParts(database: database, logger: logger, sms: smsIngest) }
    var twilio: TwilioWebhook { TwilioWebhook(database: database, logger: logger, settings: providers, sms: smsIngest) }
    var vonage: VonageWebhook { VonageWebhook(database: database, logger: logger, settings: providers, sms: smsIngest) }

    func ingestSmsWebhook(_ input: Operations.IngestSmsWebhook.Input) async throws -> Operations.IngestSmsWebhook.Output {
        let provider = input.path.provider
        guard case .application_Ast_(let body) = input.body else { throw Problem.internalError }
        switch provider {
        case "twilio":
            let request = try await receive(body, channel: .sms, provider: provider)
            let result = try await orFailed { try await twilio.receiveMessage(request) }
            // Twilio reads the answer as TwiML: anything else is logged as an error in its console.
            return .ok(.init(body: request.asksForJSON ? .json(.init(result)) : .textXml(HTTPBody(TwilioWebhook.emptyTwiML))))
        case "vonage":
            let request = try await receive(body, channel: .sms, provider: provider)
            return .ok(.init(body: .json(.init(try await orFailed { try await vonage.receiveMessage(request) }))))
        default:
            throw Problem.unknownProvider(provider, channel: "SMS", known: ["twilio", "vonage"])
        }
    }

    func ingestSmsStatusWebhook(_ input: Operations.IngestSmsStatusWebhook.Input) async throws -> Operations.IngestSmsStatusWebhook.Output {
        let provider = input.path.provider
        guard case .application_Ast_(let body) = input.body else { throw Problem.internalError }
        switch provider {
        case "twilio":
            let request = try await receive(body, channel: .sms, provider: provider)
            return .ok(.init(body: .json(.init(try await orFailed { try await twilio.receiveStatus(request) }))))
        case "vonage":
            let request = try await receive(body, channel: .sms, provider: provider)
            return .ok(.init(body: .json(.init(try await orFailed { try await vonage.receiveStatus(request) }))))
        default: throw Problem.unknownProvider(provider, channel: "SMS", known: ["twilio", "vonage"])
        }
    }

    func ingestChatWebhook(_ input: Operations.IngestChatWebhook.Input) async throws -> Operations.IngestChatWebhook.Output {
        let provider = input.path.provider
        guard case .application_Ast_(let body) = input.body else { throw Problem.internalError }
        switch provider {
        case "line":
            let request = try await receive(body, channel: .chat, provider: provider)
            let chat = ChatIngest(database: database, logger: logger, idleGap: chatIdleGap)
            let line = LineWebhook(database: database, logger: logger, settings: providers, chat: chat)
            return .ok(.init(body: .json(.init(try await orFailed { try await line.receive(request) }))))
        default:
            throw Problem.unknownProvider(provider, channel: "chat", known: ["line"])
        }
    }

    /// What `take` answers, or, for a signed request kept as failed, the answer saying so.
    private func orFailed(_ take: () async throws -> ProviderWebhookAnswer) async throws -> ProviderWebhookAnswer {
        do { return try await take() } catch let failed as WebhookRequest.Failed { return failed.answer }
    }

    /// The request with its body read, once the headers alone do not already refuse it: a request
    /// that cannot be verified (no signature header, no secret configured) never has its body read.
    private func receive(_ body: HTTPBody, channel: Channel, provider: String) async throws -> WebhookRequest {
        let headers = RequestScope.current?.requestHeaders ?? [:]
        let refusal: String? = switch provider {
        case "twilio": TwilioWebhook.refusalBeforeBody(headers: headers, settings: providers)
        case "vonage": VonageWebhook.refusalBeforeBody(settings: providers)
        case "line": LineWebhook.refusalBeforeBody(headers: headers, settings: providers)
        default: nil
        }
        return try await WebhookRequest.receive(body, channel: channel, provider: provider, refusedBeforeBody: refusal, logger: logger)
    }
}
