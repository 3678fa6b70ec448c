import NIOCore
import NIOPosix
import Synchronization

/// The least an SMTP server can do (with PIPELINING): say yes to everything (but the recipients it is
/// told to refuse) and count the messages. Both sides of the outbound benchmark deliver to it, so
/// what differs between them is the sender alone.
final class SMTPSinkServer: Sendable {
    let port: Int
    private let channel: any NIOCore.Channel
    private let counter: Counter

    final class Counter: Sendable {
        private let value = Atomic<Int>(0)
        func add() { value.wrappingAdd(1, ordering: .relaxed) }
        var count: Int { value.load(ordering: .relaxed) }
    }

    var received: Int { counter.count }

    /// `refusing` are answered 550 at RCPT TO.
    init(group: any EventLoopGroup, refusing: Set<String> = []) async throws {
        let counter = Counter()
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(SinkHandler(counter: counter, refusing: refusing))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress?.port ?? 0
        self.counter = counter
    }

    func close() async { try? await channel.close() }

    private final class SinkHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let counter: Counter
        let refusing: Set<String>
        var pending = ByteBuffer()
        var inData = false
        var accepted = 0

        init(counter: Counter, refusing: Set<String>) {
            self.counter = counter
            self.refusing = refusing
        }

        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "220 sink ESMTP\r\n")), promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            pending.writeBuffer(&bytes)
            var replies = ""
            while let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                let line = pending.readString(length: newline - pending.readerIndex + 1) ?? ""
                if inData {
                    if line == ".\r\n" || line == ".\n" {
                        inData = false
                        counter.add()
                        replies += "250 2.0.0 Ok: queued\r\n"
                    }
                    continue
                }
                let command = line.prefix(4).uppercased()
                switch command {
                case "EHLO": replies += "250-sink\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 SIZE 0\r\n"
                case "RCPT":
                    let address = line.drop { $0 != "<" }.dropFirst().prefix { $0 != ">" }
                    if refusing.contains(String(address)) {
                        replies += "550 5.1.1 no such user\r\n"
                    } else {
                        accepted += 1
                        replies += "250 OK\r\n"
                    }
                case "MAIL", "RSET": accepted = 0; replies += "250 OK\r\n"
                case "DATA":
                    if accepted == 0 {
                        replies += "554 5.5.1 no valid recipients\r\n"
                    } else {
                        inData = true
                        replies += "354 go ahead\r\n"
                    }
                case "QUIT": replies += "221 bye\r\n"
                default: replies += "250 OK\r\n"
                }
            }
            pending.discardReadBytes()
            if !replies.isEmpty { context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: replies)), promise: nil) }
        }
    }
}
