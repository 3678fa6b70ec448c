import Crypto
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Hands one mail from a mail server to `POST /v1/inbound/email`, speaking the MTA's language
/// (sysexits.h): `0` delivered, `65` refused for what the mail is (too large, not a mail), and `75`
/// for everything else: the MTA keeps the mail queued and retries.
///
/// A refused key or a setup mistake is `75` too, not `77`/`78`: Postfix bounces every code but 71
/// and 75 (its sys_exits table), so a revoked or rotated gateway key bounced every customer mail
/// until someone noticed, with nothing left in the queue to deliver once the key was fixed.
///
/// Postfix's pipe transport, Exim's pipe and `.forward`/procmail all run it with the message on
/// stdin. Every attempt carries an `Idempotency-Key` made from the bytes, so the MTA retrying a mail
/// whose first answer was lost can never make it twice.
public struct MailGate: Sendable {
    public var endpoint: URL
    public var apiKey: String
    /// Attempts within one run before answering 75 and leaving the retry to the MTA's queue.
    public var attempts: Int = 4
    public var initialBackoff: Duration = .seconds(1)
    public var timeout: Duration = .seconds(60)

    public init(endpoint: URL, apiKey: String) {
        self.endpoint = endpoint
        self.apiKey = apiKey
    }

    public enum ExitCode: Int32, Sendable {
        case delivered = 0
        case dataError = 65
        case tempFail = 75
    }

    public struct Result: Sendable {
        public var code: ExitCode
        /// One line for the MTA's log (Postfix puts it in the bounce or the deferral reason).
        public var message: String

        public init(code: ExitCode, message: String) {
            self.code = code
            self.message = message
        }
    }

    /// The mail without the mbox envelope line an MTA may put before it (`From sender date`: Exim's
    /// pipe transport and procmail do by default). That line is no part of the mail, and its date
    /// changes on each retry: kept, a retried mail without a Message-ID made a second ticket, its
    /// bytes and so its key differing from the first attempt's. A header field cannot begin so (a
    /// field name has no space), so nothing of the mail is ever cut.
    public static func withoutEnvelopeLine(_ input: [UInt8]) -> [UInt8] {
        guard input.starts(with: Array("From ".utf8)) else { return input }
        guard let end = input.firstIndex(of: UInt8(ascii: "\n")) else { return [] }
        return Array(input[(end + 1)...])
    }

    /// The key the server dedupes on: the same bytes are the same delivery.
    public static func idempotencyKey(for mail: [UInt8]) -> String {
        "mailgate-" + SHA256.hash(data: mail).prefix(20).lowercaseHex
    }

    public func deliver(_ input: [UInt8]) async -> Result {
        let mail = Self.withoutEnvelopeLine(input)
        guard !mail.isEmpty else { return Result(code: .dataError, message: "empty message on standard input") }
        var backoff = initialBackoff
        var last = Result(code: .tempFail, message: "not attempted")
        for attempt in 1...max(1, attempts) {
            last = await attemptOnce(mail)
            guard last.code == .tempFail, attempt < attempts else { return last }
            try? await Task.sleep(for: backoff)
            backoff *= 2
        }
        return last
    }

    private func attemptOnce(_ mail: [UInt8]) async -> Result {
        var request = URLRequest(url: endpoint)
        request.httpMethod = "POST"
        request.timeoutInterval = Double(timeout.components.seconds)
        request.setValue("Bearer \(apiKey)", forHTTPHeaderField: "Authorization")
        request.setValue("message/rfc822", forHTTPHeaderField: "Content-Type")
        request.setValue(Self.idempotencyKey(for: mail), forHTTPHeaderField: "Idempotency-Key")
        do {
            let (data, response) = try await URLSession.shared.upload(for: request, from: Data(mail))
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            let detail = Self.detail(data)
            switch status {
            case 200...299: return Result(code: .delivered, message: "accepted (\(status)) \(detail)")
            case 401, 403:
                return Result(code: .tempFail, message: "the gateway key was refused (\(status)): \(detail); the mail stays queued until the key is fixed")
            case 400, 413, 415, 422: return Result(code: .dataError, message: "refused (\(status)): \(detail)")
            default: return Result(code: .tempFail, message: "server answered \(status): \(detail)")
            }
        } catch {
            return Result(code: .tempFail, message: "cannot reach \(endpoint.absoluteString): \(error.localizedDescription)")
        }
    }

    /// The problem's detail, or the outcome's ids, trimmed to one log line.
    private static func detail(_ data: Data) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            return String(decoding: data.prefix(200), as: UTF8.self)
        }
        if let detail = object["detail"] as? String { return detail }
        return ["message_id", "ticket_id", "classification"].compactMap { key in (object[key] as? String).map { "\(key)=\($0)" } }
            .joined(separator: " ")
    }
}
