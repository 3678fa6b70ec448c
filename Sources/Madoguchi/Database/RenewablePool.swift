import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The PostgresNIO pool, replaced by a fresh one when an outage has left it backing off.
///
/// While PostgreSQL is down the pool retries one connection with a growing pause (100 ms × 1.25ⁿ, up
/// to a minute) and, after 15 s without one, trips its breaker and fails every lease at once. Neither
/// can be configured, so after a long outage the service would go on answering 503 for up to a minute
/// after the database is back. Instead, whenever a lease fails for want of a connection, the caller
/// asks for a probe (`connectionFailed()`): at most one every `probeInterval`, a new pool is started
/// and given `probeTimeout` to connect. If it does, it takes over at once and the stale pool is shut
/// down a little later (`drainDelay`, for any lease it still hands out); if not, the probe is dropped.
/// A lease that fails while others are held means a saturated pool, not a stale one: no probe then.
///
/// It is the `Service` the service groups run in place of the client itself.
public final class RenewablePool: Service, Sendable {
    private let configuration: PostgresClient.Configuration
    private let logger: Logger
    private let probeInterval: Duration
    private let probeTimeout: Duration
    private let drainDelay: Duration
    /// How long a cancelled pool waits for its leases to come back before it closes their connections.
    private let cancelGrace: Duration
    private let state: Mutex<State>
    /// Connections leased right now, from any pool: while some are, the database answers and a failed
    /// lease means the pool is saturated, which a new pool would only make worse.
    let leasedNow = Atomic<Int>(0)
    private let probes: AsyncStream<Void>
    private let probeRequests: AsyncStream<Void>.Continuation
    /// Pools whose `run()` has begun, and leases waiting for theirs: PostgresNIO warns about (and
    /// only queues) a lease taken before `run()`, which startup's migrations would otherwise do.
    /// `finished` once this service's run is over: a lease asked for after that must fail (the pool
    /// refuses it as shut down) rather than wait for a run that will never begin, which held a
    /// shutdown whose last steps still wrote to the database.
    private let running = Mutex<(started: Set<ObjectIdentifier>, waiting: [ObjectIdentifier: [CheckedContinuation<Void, Never>]], finished: Bool)>(([], [:], false))

    private struct State {
        var client: PostgresClient
        /// Ends the current pool's run.
        var stop: AsyncStream<Void>.Continuation?
        var lastProbe: ContinuousClock.Instant?
    }

    init(configuration: PostgresClient.Configuration, logger: Logger, probeInterval: Duration = .seconds(1),
         probeTimeout: Duration = .seconds(3), drainDelay: Duration = .seconds(30), cancelGrace: Duration = .seconds(5)) {
        self.configuration = configuration
        self.logger = logger
        self.probeInterval = probeInterval
        self.probeTimeout = probeTimeout
        self.drainDelay = drainDelay
        self.cancelGrace = cancelGrace
        state = Mutex(State(client: PostgresClient(configuration: configuration, backgroundLogger: logger)))
        (probes, probeRequests) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// The pool leases come from now, once it runs.
    func current() async -> PostgresClient {
        let client = state.withLock { $0.client }
        await untilRunning(client)
        return client
    }

    private func untilRunning(_ client: PostgresClient) async {
        let id = ObjectIdentifier(client)
        if running.withLock({ $0.started.contains(id) || $0.finished }) { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = running.withLock { running in
                if running.started.contains(id) || running.finished { return true }
                running.waiting[id, default: []].append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    private func markRunning(_ client: PostgresClient) {
        let id = ObjectIdentifier(client)
        let waiting = running.withLock { running in
            running.started.insert(id)
            return running.waiting.removeValue(forKey: id) ?? []
        }
        for continuation in waiting { continuation.resume() }
    }

    /// A lease failed for want of a connection: probe with a fresh pool, unless one was tried lately
    /// or other connections are in use.
    func connectionFailed() {
        guard leasedNow.load(ordering: .relaxed) == 0 else { return }
        let now = ContinuousClock.now
        let due = state.withLock { state in
            if let last = state.lastProbe, last.duration(to: now) < probeInterval { return false }
            state.lastProbe = now
            return true
        }
        if due { probeRequests.yield() }
    }

    public func run() async {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                let (firstStopped, firstStop) = AsyncStream<Void>.makeStream()
                let first = self.state.withLock { state in
                    state.stop = firstStop
                    return state.client
                }
                group.addTask { await self.run(first, until: firstStopped) }
                for await _ in self.probes {
                    let candidate = PostgresClient(configuration: self.configuration, backgroundLogger: self.logger)
                    let (stopped, stop) = AsyncStream<Void>.makeStream()
                    group.addTask { await self.run(candidate, until: stopped) }
                    guard await self.connects(candidate) else {
                        stop.finish()
                        continue
                    }
                    let staleStop = self.state.withLock { state in
                        defer { (state.client, state.stop) = (candidate, stop) }
                        return state.stop
                    }
                    self.logger.notice("PostgreSQL answers again: replaced the connection pool that was backing off")
                    group.addTask {
                        try? await Task.sleep(for: self.drainDelay)
                        staleStop?.finish()
                    }
                }
            }
        }
        let waiting = running.withLock { running in
            running.finished = true
            defer { running.waiting.removeAll() }
            return running.waiting.values.flatMap { $0 }
        }
        for continuation in waiting { continuation.resume() }
    }

    /// Runs a pool until `stopped` ends, or until this task is cancelled and the leases taken from
    /// it have come back (at most `cancelGrace` later).
    ///
    /// The pool's own run is kept out of this task's cancellation on purpose. A cancelled PostgresNIO
    /// pool closes every connection at once, leased ones included, and a statement sent on a closed
    /// connection is never answered in PostgresNIO 1.33.2 (`PostgresConnection.run` refuses a statement
    /// once the close shows, not one already on its way). A failed service group cancels every service
    /// together, the workers with the pool, and the process then never exited (2 to 6 starts in 25
    /// on a loaded machine). The workers' queries finish on their own once they are cancelled
    /// (PostgresNIO does not cancel a query in flight), so the pool waits for their leases first.
    private func run(_ client: PostgresClient, until stopped: AsyncStream<Void>) async {
        let poolRun = Task {
            self.markRunning(client)
            await client.run()
        }
        for await _ in stopped {}
        if Task.isCancelled { await untilLeasesReturned(within: cancelGrace) }
        poolRun.cancel()
        await poolRun.value
        // Forgotten once it has stopped: a later pool may be allocated at the same address.
        running.withLock { _ = $0.started.remove(ObjectIdentifier(client)) }
    }

    /// Waits, whatever the calling task's cancellation, until no lease is held or `limit` has passed.
    private func untilLeasesReturned(within limit: Duration) async {
        await Self.poll(within: limit) { self.leasedNow.load(ordering: .relaxed) == 0 }
        let held = leasedNow.load(ordering: .relaxed)
        if held > 0 {
            logger.warning("database pool stopping with leases still held", metadata: ["leases": "\(held)", "waited": "\(limit)"])
        }
    }

    /// Returns once this service's run is over (every pool stopped, its connections closed), or
    /// after `limit`, whatever the calling task's cancellation. The embedded cluster waits for it
    /// before it stops: PostgreSQL closing connections under queries still running would hang them.
    func untilStopped(within limit: Duration) async {
        await Self.poll(within: limit) { self.running.withLock { $0.finished } }
    }

    /// Checks `done` every few milliseconds until it holds or `limit` has passed. The sleeps run in an
    /// unstructured task, not cancelled with the caller: a cancelled caller's sleeps would not sleep.
    private static func poll(within limit: Duration, until done: @escaping @Sendable () -> Bool) async {
        guard !done() else { return }
        let deadline = ContinuousClock.now + limit
        await Task {
            while !done(), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        }.value
    }

    private func connects(_ client: PostgresClient) async -> Bool {
        await untilRunning(client)
        let connected = try? await withDeadline(probeTimeout, orThrow: { CancellationError() }) {
            try await client.withConnection { connection in
                try await connection.perform("SELECT 1", logger: self.logger)
                return true
            }
        }
        return connected ?? false
    }
}
