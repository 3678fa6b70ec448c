import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Testing
@testable import Madoguchi

/// The client webhooks and the SMS/LINE senders share, over TLS to a receiver written as an address
/// (an intranet dashboard at `https://10.0.0.5/hook`): SNI cannot carry an address, so the
/// certificate is checked against the address instead.
@Suite("Provider HTTP client over TLS", .timeLimit(.minutes(5)))
struct ProviderHTTPSTests {
    @Test("https to an address literal is delivered when its certificate names the address, and refused when it is not trusted")
    func addressLiteral() async throws {
        let tls = try await SMTPSink.makeCertificate(subjectAltName: "IP:127.0.0.1")
        let certificate = tls.certificate
        let server = try await Self.receiver(certificate: certificate, key: tls.key)
        defer { server.close(promise: nil) }
        let url = "https://127.0.0.1:\(server.localAddress!.port!)/hook"

        var trusting = TLSConfiguration.makeClientConfiguration()
        trusting.trustRoots = .file(certificate)
        let client = try ProviderHTTPClient(group: MultiThreadedEventLoopGroup.singleton, timeout: .seconds(10),
                                            tls: try NIOSSLContext(configuration: trusting))
        let response = try await client.send(.POST, url, headers: [("Content-Type", "application/json")], body: Array("{}".utf8))
        #expect(response.status == 200)
        #expect(response.text == "received")

        // The system's roots do not know this certificate: refused by verification, not by SNI.
        do {
            _ = try await ProviderHTTPClient(group: MultiThreadedEventLoopGroup.singleton, timeout: .seconds(10))
                .send(.POST, url, headers: [(String, String)](), body: Array("{}".utf8))
            Issue.record("an untrusted certificate was accepted")
        } catch {
            #expect(!"\(error)".contains("SNI"), "\(error)")
        }
    }

    /// An HTTPS server on loopback answering every request `200 received`.
    static func receiver(certificate: String, key: String) async throws -> any NIOCore.Channel {
        let context = try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }, privateKey: .file(key)))
        return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Answer())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    private final class Answer: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .end = unwrapInboundIn(data) else { return }
            var head = HTTPResponseHead(version: .http1_1, status: .ok)
            head.headers.add(name: "Content-Length", value: "8")
            head.headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "received")))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
