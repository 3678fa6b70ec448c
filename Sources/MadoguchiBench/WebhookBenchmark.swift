import Foundation
import Logging
import Madoguchi

/// `madoguchi bench webhooks`: provider webhooks (LINE, Twilio SMS) and web-form submissions taken in
/// through the service — signature or key checked, raw request stored, customer resolved, conversation
/// continued, message and events written — next to pgbench storing requests of the same size in
/// `inbound_payloads` and nothing else. Customers write several times each, so both first contacts
/// and continued conversations are measured.
public struct WebhookBenchmark: Sendable {
    public var seconds: Int = 5
    public var clients: Int = 4
    /// How many different customers write; each writes about (requests / customers) times.
    public var customers: Int = 200

    public init() {}

    static let lineSecret = "bench-line-secret"
    static let twilioToken = "bench-twilio-token"
    static let publicURL = "https://support.example.jp"

    public func run(logger: Logger, report: @Sendable (String) -> Void) async throws {
        report("\(clients) clients, \(customers) customers, \(seconds) s per measurement")
        try await BenchmarkSupport.withCluster(logger: logger) { cluster in
            let runs = try await BenchmarkSupport.withService(on: cluster, logger: logger, configure: {
                $0.providers.lineChannelSecrets = [Self.lineSecret]
                $0.providers.twilioAuthTokens = [Self.twilioToken]
                $0.providers.publicURL = Self.publicURL
            }) { port, database in
                let key = try await database.withConnection { connection in
                    try await APIKeyStore(logger: logger).create(name: "bench form gateway", role: .gateway, agentID: nil, on: connection).1.text
                }
                var runs: [(provider: String, requests: Int, bytes: Int, elapsed: Double, ownSQL: OwnSQLReplay.Captured)] = []
                for provider in ["line", "twilio", "webform"] {
                    let request: @Sendable (Int, Int) -> BenchmarkSupport.Request = { client, sequence in
                        switch provider {
                        case "line": lineRequest(client: client, sequence: sequence)
                        case "twilio": twilioRequest(client: client, sequence: sequence)
                        default: webformRequest(client: client, sequence: sequence, key: key)
                        }
                    }
                    let result = try await BenchmarkSupport.drive(port: port, clients: clients, seconds: seconds, request)
                    // MADOGUCHI_BENCH_STATEMENTS=1: where the database's time went, for this channel alone.
                    try await BenchmarkSupport.reportStatements(database, logger: logger) { report("[\(provider)] \($0)") }
                    // The same requests' transactions, from a client of its own (its ids are new,
                    // its customers are the measurement's).
                    let ownSQL = try await OwnSQLReplay.captureIngest(port: port, cluster: cluster, database: database, logger: logger) { sequence in
                        request(99, sequence)
                    }
                    runs.append((provider, result.requests, result.bytes, result.elapsed, ownSQL))
                }
                return runs
            }
            for run in runs {
                let rate = Double(run.requests) / run.elapsed
                let replayed = try await BenchmarkSupport.pgbenchTPS(scripts: run.ownSQL.scripts, named: "\(run.provider)-own-sql", clients: clients, seconds: seconds, on: cluster)
                let baseline = try await BenchmarkSupport.pgbenchStorePayload(
                    channel: run.provider == "line" ? .chat : run.provider == "twilio" ? .sms : .webform, averageBytes: run.bytes / max(run.requests, 1), clients: clients, seconds: seconds,
                    on: cluster)
                report(run.provider.padding(toLength: 7, withPad: " ", startingAt: 0)
                       + String(format: "%8.1f messages/s (%d in %.1f s)   own SQL through pgbench: %6.0f/s   service/own SQL %.2f   raw bytes only: %6.0f inserts/s   service/raw %.2f   own SQL/raw %.2f   %.2f round trips a message",
                                rate, run.requests, run.elapsed, replayed, rate / replayed, baseline, rate / baseline, replayed / baseline, run.ownSQL.roundTrips))
            }
        }
    }

    private func customer(_ client: Int, _ sequence: Int) -> Int { (client * 7919 + sequence) % customers }

    /// One text message event, as LINE posts it, signed with the channel secret.
    func lineRequest(client: Int, sequence: Int) -> BenchmarkSupport.Request {
        let user = String(format: "Ubench%026d", customer(client, sequence))
        let id = "\(client)-\(sequence)"
        let body = Array(#"""
            {"destination":"Ubot","events":[{"type":"message","mode":"active","timestamp":\#(Int(Date().timeIntervalSince1970 * 1000)),"source":{"type":"user","userId":"\#(user)"},"webhookEventId":"bench-\#(id)","deliveryContext":{"isRedelivery":false},"replyToken":"r","message":{"id":"m-\#(id)","type":"text","quoteToken":"q","text":"注文した商品がまだ届きません。確認をお願いします。"}}]}
            """#.utf8)
        return .init(path: "/v1/inbound/chat/line",
                     headers: ["Content-Type": "application/json", "X-Line-Signature": WebhookSignature.line(body: body, channelSecret: Self.lineSecret)],
                     body: body)
    }

    /// One contact-form submission, as a form gateway posts it with its key.
    func webformRequest(client: Int, sequence: Int, key: String) -> BenchmarkSupport.Request {
        let customer = customer(client, sequence)
        let body = Array(#"""
            {"form_id":"contact","submission_id":"bench-\#(client)-\#(sequence)","name":"山田 花子 \#(customer)","email":"customer\#(customer)@example.jp","subject":"ご注文の商品について","body":"注文した商品がまだ届きません。注文番号は 10\#(customer) です。確認をお願いします。","fields":{"order_number":"10\#(customer)","category":"配送"}}
            """#.utf8)
        return .init(path: "/v1/inbound/webform", headers: ["Authorization": "Bearer \(key)", "Content-Type": "application/json"], body: body)
    }

    /// One incoming SMS, as Twilio posts it, signed with the auth token.
    func twilioRequest(client: Int, sequence: Int) -> BenchmarkSupport.Request {
        let sid = "SMbench\(client)x\(sequence)"
        let pairs: [(name: String, value: String)] = [
            ("MessageSid", sid), ("SmsSid", sid), ("AccountSid", "ACbench"), ("From", String(format: "+8190%08d", customer(client, sequence))),
            ("To", "+815012345678"), ("Body", "注文した商品がまだ届きません。"), ("NumSegments", "1"), ("NumMedia", "0"),
        ]
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._*")
        let form = pairs.map { "\($0.name)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(separator: "&")
        let path = "/v1/inbound/sms/twilio"
        return .init(path: path,
                     headers: ["Content-Type": "application/x-www-form-urlencoded",
                               "X-Twilio-Signature": WebhookSignature.twilio(url: Self.publicURL + path, parameters: pairs, authToken: Self.twilioToken)],
                     body: Array(form.utf8))
    }
}
