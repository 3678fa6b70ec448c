import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A small HTTP/1.1 client for the providers' sending APIs: one request per connection, TLS with
/// certificate verification, a timeout over the whole exchange, and — what the outbox needs most —
/// whether a failed request may have reached the provider (`ProviderHTTPError.maybeReceived`) or
/// certainly did not.
struct ProviderHTTPClient: Sendable {
    let group: any EventLoopGroup
    let tls: NIOSSLContext
    var timeout: TimeAmount = .seconds(30)
    /// Larger answers are cut off: a sending API answers in a few hundred bytes.
    var maximumResponse = 1 << 20

    struct Response: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// `tls`: the system's trust roots and full verification unless given (tests trust their own CA).
    init(group: any EventLoopGroup, timeout: TimeAmount = .seconds(30), tls: NIOSSLContext? = nil) throws {
        self.group = group
        self.timeout = timeout
        self.tls = try tls ?? NIOSSLContext(configuration: .makeClientConfiguration())
    }

    /// `connectTo`: an address already resolved (and checked) for the URL's host; the URL's host
    /// still names the server (Host header, TLS name).
    func send(_ method: HTTPMethod, _ url: String, headers: [(String, String)], body: [UInt8], connectTo: SocketAddress? = nil) async throws -> Response {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = parts.host else {
            throw ProviderHTTPError.notSent("\(url) is not an http(s) URL")
        }
        let port = parts.port ?? (scheme == "https" ? 443 : 80)
        let eventLoop = group.next()
        let collector = ResponseCollector(eventLoop: eventLoop, limit: maximumResponse)
        let tls = scheme == "https" ? self.tls : nil
        let channel: any NIOCore.Channel
        do {
            let bootstrap = ClientBootstrap(group: eventLoop)
                // Never longer than the whole exchange may take: a receiver that drops the connection
                // attempt silently would otherwise cost 10 s with a timeout set to 1.
                .connectTimeout(min(.seconds(10), timeout))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            try channel.pipeline.syncOperations.addHandler(
                                try NIOSSLClientHandler(context: tls, serverHostname: TLSServerName.forHost(host)))
                        }
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(collector)
                    }
                }
            channel = try await (connectTo.map { bootstrap.connect(to: $0) } ?? bootstrap.connect(host: host, port: port)).get()
        } catch {
            // The collector never joined a channel: complete its promise, which NIO insists on.
            eventLoop.execute { collector.abandon() }
            throw ProviderHTTPError.notSent("cannot connect to \(host):\(port): \(error)")
        }
        defer { channel.close(promise: nil) }

        var head = HTTPRequestHead(version: .http1_1, method: method, uri: (parts.percentEncodedPath.isEmpty ? "/" : parts.percentEncodedPath)
                                   + (parts.percentEncodedQuery.map { "?" + $0 } ?? ""))
        head.headers.add(name: "Host", value: parts.port.map { "\(host):\($0)" } ?? host)
        head.headers.add(name: "User-Agent", value: "Madoguchi")
        head.headers.add(name: "Connection", value: "close")
        head.headers.add(name: "Content-Length", value: String(body.count))
        for (name, value) in headers { head.headers.add(name: name, value: value) }

        let written = WrittenFlag()
        let timer = eventLoop.scheduleTask(in: timeout) { collector.timeOut(); channel.close(promise: nil) }
        defer { timer.cancel() }
        do {
            return try await eventLoop.flatSubmit {
                let response = collector.response()
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
                let flushed = eventLoop.makePromise(of: Void.self)
                flushed.futureResult.whenSuccess { written.set() }
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: flushed)
                return response
            }.get()
        } catch let error as ProviderHTTPError {
            // The collector's own (a timeout, a connection closed early), judged by the same rule, its
            // reason said once (it read "no answer after the request was sent: " twice).
            let reason = switch error { case .notSent(let reason), .maybeReceived(let reason): reason }
            throw written.isSet ? ProviderHTTPError.maybeReceived(reason) : ProviderHTTPError.notSent(reason)
        } catch {
            // TLS and connection failures before the request was flushed cannot have reached the provider.
            throw written.isSet ? ProviderHTTPError.maybeReceived("\(error)") : ProviderHTTPError.notSent("\(error)")
        }
    }
}

enum ProviderHTTPError: Error, CustomStringConvertible {
    /// The request cannot have reached the provider: sending again is safe.
    case notSent(String)
    /// It may have: sending again could make a second message, unless the API deduplicates.
    case maybeReceived(String)

    var description: String {
        switch self {
        case .notSent(let reason): "not sent: \(reason)"
        case .maybeReceived(let reason): "no answer after the request was sent: \(reason)"
        }
    }
}

/// Collects one response; touched on its channel's event loop only.
private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<ProviderHTTPClient.Response>
    private let limit: Int
    private var head: HTTPResponseHead?
    private var body: [UInt8] = []
    private var timedOut = false
    private var done = false

    init(eventLoop: any EventLoop, limit: Int) {
        promise = eventLoop.makePromise()
        self.limit = limit
    }

    func response() -> EventLoopFuture<ProviderHTTPClient.Response> { promise.futureResult }

    func timeOut() { timedOut = true }

    func abandon() { fail(ProviderHTTPError.notSent("no connection")) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body(var buffer):
            if body.count < limit, let bytes = buffer.readBytes(length: min(buffer.readableBytes, limit - body.count)) { body += bytes }
        case .end:
            guard let head, !done else { return }
            done = true
            promise.succeed(.init(status: Int(head.status.code), headers: head.headers, body: body))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(ProviderHTTPError.maybeReceived(timedOut ? "timed out" : "the connection closed before the answer was complete"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.close(promise: nil)
    }

    private func fail(_ error: any Error) {
        guard !done else { return }
        done = true
        promise.fail(error)
    }
}

private final class WrittenFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
