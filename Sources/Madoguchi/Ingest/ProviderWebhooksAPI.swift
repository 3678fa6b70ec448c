import Foundation
import MadoguchiAPI
import OpenAPIRuntime

/// The provider-format webhooks: `/v1/inbound/{sms|chat}/{provider}`. No API key reaches these; each
/// provider's webhook verifies the provider's own signature before reading anything.
extension APIHandler {
    var smsIngest: SmsIngest { SmsIngest(database: database, logger: logger, conversationWindow: subjectThreadWindow) }
    var smsParts: SmsParts { SmsParts(database: database, logger: logger, sms: smsIngest) }
    var twilio: TwilioWebhook { TwilioWebhook(database: database, logger: logger, settings: providers, sms: smsIngest) }
    var vonage: VonageWebhook { VonageWebhook(database: database, logger: logger, settings: providers, sms: smsIngest) }

    func ingestSmsWebhook(_ input: Operations.IngestSmsWebhook.Input) async throws -> Operations.IngestSmsWebhook.Output {
        let provider = input.path.provider
        let request = try WebhookRequest.current(channel: .sms, provider: provider)
        switch provider {
        case "twilio":
            let result = try await twilio.receiveMessage(request)
            // Twilio reads the answer as TwiML: anything else is logged as an error in its console.
            return .ok(.init(body: request.asksForJSON ? .json(.init(result)) : .textXml(HTTPBody(TwilioWebhook.emptyTwiML))))
        case "vonage":
            return .ok(.init(body: .json(.init(try await vonage.receiveMessage(request)))))
        default:
            throw Problem.unknownProvider(provider, channel: "SMS", known: ["twilio", "vonage"])
        }
    }

    func ingestSmsStatusWebhook(_ input: Operations.IngestSmsStatusWebhook.Input) async throws -> Operations.IngestSmsStatusWebhook.Output {
        let provider = input.path.provider
        let request = try WebhookRequest.current(channel: .sms, provider: provider)
        switch provider {
        case "twilio": return .ok(.init(body: .json(.init(try await twilio.receiveStatus(request)))))
        case "vonage": return .ok(.init(body: .json(.init(try await vonage.receiveStatus(request)))))
        default: throw Problem.unknownProvider(provider, channel: "SMS", known: ["twilio", "vonage"])
        }
    }

    func ingestChatWebhook(_ input: Operations.IngestChatWebhook.Input) async throws -> Operations.IngestChatWebhook.Output {
        let provider = input.path.provider
        let request = try WebhookRequest.current(channel: .chat, provider: provider)
        switch provider {
        case "line":
            let chat = ChatIngest(database: database, logger: logger, idleGap: chatIdleGap)
            return .ok(.init(body: .json(.init(try await LineWebhook(database: database, logger: logger, settings: providers, chat: chat).receive(request)))))
        default:
            throw Problem.unknownProvider(provider, channel: "chat", known: ["line"])
        }
    }
}
