import NIOCore

/// Reads a relay's byte stream as SMTP replies (RFC 5321 §4.2: `250-first`, `250-…`, `250 last`)
/// and hands each to whoever asked for the next one.
///
/// All state is touched on the channel's event loop only (every entry point asserts it), which is
/// why the class may be shared with the session that drives it.
final class SMTPReplyHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    /// Longest line we accept; RFC 5321 allows 512 octets for a reply line.
    static let maximumLine = 4096

    private var pending = ByteBuffer()
    private var lines: [String] = []
    private var replies = CircularBuffer<SMTPReply>()
    private var waiting = CircularBuffer<EventLoopPromise<SMTPReply>>()
    private var failure: SMTPError?
    private let eventLoop: EventLoop

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
    }

    /// The next reply, whether it already came or is still to come.
    func nextReply() -> EventLoopFuture<SMTPReply> {
        eventLoop.preconditionInEventLoop()
        if let reply = replies.popFirst() { return eventLoop.makeSucceededFuture(reply) }
        if let failure { return eventLoop.makeFailedFuture(failure) }
        let promise = eventLoop.makePromise(of: SMTPReply.self)
        waiting.append(promise)
        return promise.futureResult
    }

    /// Nothing the server sent is left unread: no reply, no part of one. Checked as TLS starts:
    /// whatever is left came in clear text after STARTTLS's 220 and would otherwise be read as the
    /// first answers over TLS (the command injection of CVE-2011-0411, from the other side).
    var isDrained: Bool {
        eventLoop.preconditionInEventLoop()
        return replies.isEmpty && lines.isEmpty && pending.readableBytes == 0
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        pending.writeBuffer(&bytes)
        while let line = takeLine() {
            guard line.utf8.count >= 3, let code = Int(line.prefix(3)), (200...599).contains(code) else {
                fail(.garbled(line), context: context)
                return
            }
            let separator = line.dropFirst(3).first
            lines.append(String(line.dropFirst(4)))
            if separator == "-" { continue }
            guard separator == nil || separator == " " else {
                fail(.garbled(line), context: context)
                return
            }
            deliver(SMTPReply(code: code, lines: lines))
            lines = []
        }
        if pending.readableBytes > Self.maximumLine {
            fail(.garbled("a reply line longer than \(Self.maximumLine) bytes"), context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(.connection("the server closed the connection"), context: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(.connection(String(describing: error)), context: context)
    }

    private func takeLine() -> String? {
        guard let view = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let length = view - pending.readerIndex
        var line = pending.readString(length: length) ?? ""
        pending.moveReaderIndex(forwardBy: 1)
        if line.hasSuffix("\r") { line.removeLast() }
        if pending.readableBytes == 0 { pending.discardReadBytes() }
        return line
    }

    private func deliver(_ reply: SMTPReply) {
        if let promise = waiting.popFirst() { promise.succeed(reply) } else { replies.append(reply) }
    }

    private func fail(_ error: SMTPError, context: ChannelHandlerContext?) {
        if failure == nil { failure = error }
        while let promise = waiting.popFirst() { promise.fail(error) }
        context?.close(promise: nil)
    }
}
