import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// The least a webhook receiver can do: answer every request 204 at once (keep-alive or not) and
/// count them. Both sides of the webhook measurement post to it, so what differs is the sender.
final class HTTPSinkServer: Sendable {
    let port: Int
    private let channel: any NIOCore.Channel
    private let counter: SMTPSinkServer.Counter

    var received: Int { counter.count }

    init(group: any EventLoopGroup) async throws {
        let counter = SMTPSinkServer.Counter()
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(SinkHandler(counter: counter))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress?.port ?? 0
        self.counter = counter
    }

    func close() async { try? await channel.close() }

    /// Reads requests (head, then `Content-Length` bytes of body) and answers each as it completes.
    private final class SinkHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let counter: SMTPSinkServer.Counter
        var pending = ByteBuffer()
        var bodyLeft: Int?

        init(counter: SMTPSinkServer.Counter) { self.counter = counter }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            pending.writeBuffer(&bytes)
            var answers = 0
            while true {
                if let left = bodyLeft {
                    guard pending.readableBytes >= left else { break }
                    pending.moveReaderIndex(forwardBy: left)
                    bodyLeft = nil
                    answers += 1
                    counter.add()
                    continue
                }
                let view = pending.readableBytesView
                guard let end = view.firstRange(of: [13, 10, 13, 10]) else { break }
                let head = String(decoding: view[view.startIndex..<end.lowerBound], as: UTF8.self).lowercased()
                pending.moveReaderIndex(to: end.upperBound)
                let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                bodyLeft = length
            }
            pending.discardReadBytes()
            if answers > 0 {
                let answer = String(repeating: "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n", count: answers)
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: answer)), promise: nil)
            }
        }
    }
}
