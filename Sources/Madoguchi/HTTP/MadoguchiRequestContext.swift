import Hummingbird
import NIOCore

/// Hummingbird's basic request context plus the client's socket address, which the provider webhooks'
/// rate limit is keyed by (they carry no API key).
public struct MadoguchiRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
