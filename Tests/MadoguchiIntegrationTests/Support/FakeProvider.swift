import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
@testable import Madoguchi

/// A provider's sending API (Twilio, Vonage, LINE) on loopback: it records every request and answers
/// as the test scripts it, in the provider's documented format.
final class FakeProvider: Sendable {
    struct Request: Sendable {
        var method: String
        var path: String
        var headers: HTTPFields
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }

        /// The body as a form (`application/x-www-form-urlencoded`).
        var form: [String: String] {
            Dictionary(text.split(separator: "&").map { pair -> (String, String) in
                let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
                return (parts[0], parts.count > 1 ? parts[1] : "")
            }, uniquingKeysWith: { first, _ in first })
        }
    }

    struct Answer: Sendable {
        var status: HTTPResponse.Status
        var headers: HTTPFields = [:]
        var body: String
        /// Wait this long first (a provider that does not answer in time).
        var delay: Duration = .zero
        /// With a delay: answer as soon as this turns true (a receiver the test holds, then lets go).
        var until: (@Sendable () -> Bool)? = nil
    }

    /// Shared with the server's middleware.
    final class Log: Sendable {
        let requests = Mutex<[Request]>([])
    }

    private let recorded = Log()
    private let serving: Task<Void, any Error>
    let port: Int

    /// What the service sent (the start-up probe left out).
    var requests: [Request] { recorded.requests.withLock { $0 }.filter { $0.path != "/ready" } }

    /// Starts on a loopback port the kernel picks as it binds (the port is known once it listens);
    /// `answer` decides each response from the request and how many came before.
    ///
    /// Not a port found free beforehand: between finding it and binding it, another test's server
    /// could take it — this one then failed to bind unnoticed, a probe of "its" port was answered by
    /// the other, and the service's requests went to the other test's receiver (a webhook test
    /// waited 240 s in vain while a Twilio fake received its `/hook` posts).
    init(answer: @escaping @Sendable (Request, Int) -> Answer) async throws {
        let router = Router()
        let recorded = self.recorded
        router.add(middleware: Capture(recorded: recorded, answer: answer))
        let (bound, listening) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                listening.yield(channel.localAddress?.port ?? 0)
                listening.finish()
            },
            logger: Logger(label: "fake-provider"))
        serving = Task {
            defer { listening.finish() }
            try await app.runService(gracefulShutdownSignals: [])
        }
        var ports = bound.makeAsyncIterator()
        guard let port = await ports.next(), port > 0 else {
            serving.cancel()
            throw FakeProviderDidNotStart()
        }
        self.port = port
    }

    struct FakeProviderDidNotStart: Error {}

    var url: String { "http://127.0.0.1:\(port)" }

    func stop() { serving.cancel() }

    deinit { serving.cancel() }

    private struct Capture: RouterMiddleware {
        typealias Context = BasicRequestContext
        let recorded: FakeProvider.Log
        let answer: @Sendable (FakeProvider.Request, Int) -> FakeProvider.Answer

        func handle(_ request: Hummingbird.Request, context: Context, next: (Hummingbird.Request, Context) async throws -> Response) async throws -> Response {
            let body = try await request.body.collect(upTo: 1 << 20)
            let captured = FakeProvider.Request(method: request.method.rawValue, path: request.uri.description, headers: request.headers,
                                                body: Array(buffer: body))
            let index = recorded.requests.withLock { requests in
                requests.append(captured)
                return requests.filter { $0.path != "/ready" }.count - 1
            }
            let answer = answer(captured, index)
            if let until = answer.until {
                let start = ContinuousClock.now
                while !until() && ContinuousClock.now - start < answer.delay { try await Task.sleep(for: .milliseconds(50)) }
            } else if answer.delay > .zero {
                try await Task.sleep(for: answer.delay)
            }
            var headers = answer.headers
            headers[.contentType] = "application/json"
            return Response(status: answer.status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: answer.body)))
        }
    }
}

/// Holds a fake receiver's answers until the test opens it.
final class Gate: Sendable {
    private let state = Mutex(false)
    var isOpen: Bool { state.withLock { $0 } }
    func open() { state.withLock { $0 = true } }
}
