import Logging
import NIOCore
import NIOHTTPTypes

/// Closes a connection whose client is too slow in a way Hummingbird's idle timeout cannot see: a body
/// that keeps trickling (each byte resets the idle clock) past `requestTimeout` after its head, or a
/// response left unread — the socket not writable — for `writeTimeout`. One per connection.
///
/// A request without an `Authorization` header, and any to a provider webhook, has
/// `keylessRequestTimeout` instead when that is shorter: the provider webhooks take no key (their signature is checked once the body is in), so
/// anyone can open connections to them; the callers that do (Twilio, Vonage, LINE) send a few
/// kilobytes at once, while a keyed caller may be a gateway pushing a 25 MB mail over a slow uplink.
final class ConnectionDeadlines: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let requestTimeout: TimeAmount
    private let keylessRequestTimeout: TimeAmount
    private let writeTimeout: TimeAmount
    private let logger: Logger
    private var requestDeadline: Scheduled<Void>?
    private var writeDeadline: Scheduled<Void>?

    init(requestTimeout: Duration, keylessRequestTimeout: Duration, writeTimeout: Duration, logger: Logger) {
        self.requestTimeout = TimeAmount(requestTimeout)
        self.keylessRequestTimeout = min(TimeAmount(keylessRequestTimeout), TimeAmount(requestTimeout))
        self.writeTimeout = TimeAmount(writeTimeout)
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            requestDeadline?.cancel()
            // The provider webhooks are keyless whatever they send: their callers are let through on
            // the signature alone, so an Authorization header there proves nothing.
            let path = head.path ?? ""
            let providerRoute = path.hasPrefix("/v1/inbound/sms/") || path.hasPrefix("/v1/inbound/chat/")
            let keyed = head.headerFields[.authorization] != nil && !providerRoute
            requestDeadline = schedule(
                after: keyed ? requestTimeout : keylessRequestTimeout, context: context,
                reason: keyed ? "the request body did not arrive in full in time" : "a request without a key did not arrive in full in time")
        case .end:
            requestDeadline?.cancel()
            requestDeadline = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            writeDeadline?.cancel()
            writeDeadline = nil
        } else if writeDeadline == nil {
            writeDeadline = schedule(after: writeTimeout, context: context, reason: "the client left the response unread")
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelAll()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelAll()
    }

    private func schedule(after delay: TimeAmount, context: ChannelHandlerContext, reason: String) -> Scheduled<Void> {
        context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [logger] in
            logger.info("closing a slow connection", metadata: ["reason": "\(reason)", "remote": "\(context.remoteAddress?.description ?? "-")"])
            context.close(promise: nil)
        }
    }

    private func cancelAll() {
        requestDeadline?.cancel()
        writeDeadline?.cancel()
        requestDeadline = nil
        writeDeadline = nil
    }
}
