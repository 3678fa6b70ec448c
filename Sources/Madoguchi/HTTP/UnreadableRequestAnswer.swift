import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Answers a request the HTTP parser cannot read with a problem document, as every other error is
/// answered, instead of Hummingbird's bare `400` with no body: the commonest cause is a caller that
/// did not percent-encode its query (`?phone=０３（１２３４）５６７８` pasted as typed), and a bare 400
/// tells it nothing. The connection closes after the answer (nothing after an unreadable request
/// can be framed). One per connection, after the HTTP codec.
final class UnreadableRequestAnswer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    private let logger: Logger
    /// Whether a request is under way (its head read, its end not): an error then is the body's, and
    /// Hummingbird's handling of it (the request's own answer) stays in charge.
    private var inRequest = false

    init(logger: Logger) {
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: inRequest = true
        case .end: inRequest = false
        case .body: break
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError, !inRequest else {
            context.fireErrorCaught(error)
            return
        }
        let requestID = ObservabilityMiddleware<MadoguchiRequestContext>.makeRequestID()
        logger.info("unreadable request", metadata: ["request_id": "\(requestID)", "error": "\(parserError)",
                                                     "remote": "\(context.remoteAddress?.description ?? "-")"])
        let problem = Problem(
            .badRequest, status: .badRequest, title: "Bad request",
            detail: "The request could not be read as HTTP/1.1 (\(parserError)). A request's path and query are ASCII: "
                + "percent-encode anything else (RFC 3986): a number typed as ０３ is ?phone=%EF%BC%90%EF%BC%93.")
        let body = ProblemDocument(problem, instance: nil, requestID: requestID).json
        let head = HTTPResponse(status: .badRequest, headerFields: [
            .contentType: "application/problem+json", .contentLength: String(body.count), .connection: "close",
            HTTPField.Name("X-Request-Id")!: requestID,
        ])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(ByteBuffer(bytes: body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}
