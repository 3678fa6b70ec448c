import ServiceLifecycle
import Synchronization

/// Says that the process has begun to stop, before any service's turn to stop has come.
///
/// A service group stops its services one at a time, in reverse order, each after the one before it
/// has finished. The HTTP server comes last in `serve`'s group, so it stops first, and it finishes
/// only once every request in flight has: a CSV export streaming for minutes, an upload allowed five.
/// Until then the outbox and webhook workers, further up, went on claiming and sending, and systemd's
/// stop timeout could end the process in the middle of a delivery (held for a person afterwards).
/// With this notice they stop claiming at once, finish what is in flight, and wait for their turn.
public final class ShutdownNotice: Sendable {
    private let begun = Atomic(false)

    public init() {}

    var hasBegun: Bool { begun.load(ordering: .relaxed) }

    func begin() { begun.store(true, ordering: .relaxed) }

    /// For a service told by this notice: its own turn to stop came, or the process has begun to stop.
    var stopping: Bool { Task.isShuttingDownGracefully || hasBegun }

    /// For a service that finished early because of the notice: waits for its own turn to stop, since
    /// a service that returns before it would cancel the whole group.
    func waitForTurn() async {
        if !Task.isShuttingDownGracefully { try? await gracefulShutdown() }
    }
}

/// Sets a `ShutdownNotice` when graceful shutdown reaches it: listed last in a group, it is the
/// first to be stopped, and so tells every service at the start of the shutdown.
struct ShutdownNoticeService: Service, CustomStringConvertible {
    let notice: ShutdownNotice

    var description: String { "shutdown notice" }

    func run() async throws {
        try? await gracefulShutdown()
        notice.begin()
    }
}
