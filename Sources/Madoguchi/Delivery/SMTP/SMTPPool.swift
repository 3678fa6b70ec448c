import Foundation
import NIOCore
import NIOSSL

/// Connections to the relay, kept open between deliveries (a TLS handshake and AUTH per mail would
/// cost more than the mail). A session serves one delivery at a time; one that failed is closed, not
/// returned. Idle sessions are closed after `idleLimit`, before a relay would drop them.
actor SMTPPool {
    let relay: SMTPRelay
    private let tls: NIOSSLContext?
    private let timeouts: SMTPTimeouts
    private let group: any EventLoopGroup
    private let idleLimit: Duration
    private var idle: [(session: SMTPSession, since: ContinuousClock.Instant)] = []

    init(relay: SMTPRelay, timeouts: SMTPTimeouts, group: any EventLoopGroup, idleLimit: Duration = .seconds(30)) throws {
        self.relay = relay
        self.timeouts = timeouts
        self.group = group
        self.idleLimit = idleLimit
        if relay.security == .plain {
            tls = nil
        } else {
            // Certificates are verified, always; a private relay's CA is trusted by naming it.
            var configuration = TLSConfiguration.makeClientConfiguration()
            if let caFile = relay.caFile { configuration.trustRoots = .file(caFile) }
            tls = try NIOSSLContext(configuration: configuration)
        }
    }

    /// Runs `body` on an open session: an idle one, or a new one.
    func withSession<T: Sendable>(_ body: @Sendable (SMTPSession) async throws -> T) async throws -> T {
        let session = try await checkOut()
        do {
            let result = try await body(session)
            checkIn(session)
            return result
        } catch {
            await session.close()
            throw error
        }
    }

    func closeAll() async {
        let sessions = idle.map(\.session)
        idle = []
        for session in sessions { await session.close() }
    }

    private func checkOut() async throws -> SMTPSession {
        let now = ContinuousClock.now
        while let (session, since) = idle.popLast() {
            if session.isOpen && now - since < idleLimit { return session }
            await session.close()
        }
        return try await SMTPSession.open(relay: relay, tls: tls, timeouts: timeouts, group: group)
    }

    private func checkIn(_ session: SMTPSession) {
        guard session.isOpen else { return }
        idle.append((session, .now))
    }
}
