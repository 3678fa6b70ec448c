import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Wakes the feed's followers when a transaction that wrote events commits: one connection
/// LISTENs on `madoguchi_events` (sent after the commit by `EventAnnouncer`) and every waiter is resumed,
/// so a long poll or a stream sees a change within milliseconds without querying in a loop.
///
/// The connection is taken only while somebody follows the feed, and given back after
/// `idleRelease` without followers: a server nobody watches holds no connection for it.
///
/// A follower notes `generation` before it reads the feed and waits with it: a commit that lands
/// between the read and the wait has already moved the generation on, so the wait returns at once
/// instead of sleeping through it. If the listening connection breaks it is opened again; meanwhile
/// followers still wake on their own timeout and read the feed, so nothing is missed, only later.
final class EventNotifier: Service, Sendable {
    let database: Database
    let logger: Logger
    let idleRelease: Duration

    private struct State {
        var generation: UInt64 = 0
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        /// When somebody last began to wait.
        var lastDemand: ContinuousClock.Instant?
        /// The service loop, parked until somebody waits.
        var demand: CheckedContinuation<Void, Never>?
        var stopped = false
    }
    private let state = Mutex(State())

    init(database: Database, logger: Logger, idleRelease: Duration = .seconds(30)) {
        self.database = database
        self.logger = logger
        self.idleRelease = idleRelease
    }

    /// Moves on at every notification (and whenever listening starts, which may have missed some).
    var generation: UInt64 { state.withLock { $0.generation } }

    func run() async throws {
        try? await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                await untilDemanded()
                guard !Task.isCancelled else { break }
                do {
                    try await listenWhileFollowed()
                } catch {
                    if Task.isCancelled { break }
                    logger.warning("event notifications: listening failed, retrying", metadata: ["error": "\(String(reflecting: error))"])
                    try await Task.sleep(for: .seconds(1))
                }
            }
        }
        let parked = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.stopped = true
            defer { state.demand = nil }
            return state.demand
        }
        parked?.resume()
        wakeAll()
    }

    /// Returns once `generation` has moved past `seen`, or after `timeout`, or when the caller is
    /// cancelled or its service begins to shut down (a follower must not hold a shutdown back).
    func wait(after seen: UInt64, upTo timeout: Duration) async {
        guard timeout > .zero, !Task.isShuttingDownGracefully else { return }
        try? await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.nextSignal(after: seen) }
                group.addTask { try? await Task.sleep(for: timeout) }
                await group.next()
                group.cancelAll()
            }
        }
    }

    // MARK: - Listening

    private func listenWhileFollowed() async throws {
        try await database.withConnection { connection in
            try await connection.listenUnlessClosed(on: "madoguchi_events") { notifications in
                self.wakeAll()  // anything committed while nobody listened
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { for try await _ in notifications { self.wakeAll() } }
                    group.addTask { try await self.untilIdle() }
                    try await group.next()
                    group.cancelAll()
                }
            }
        }
    }

    /// Returns when nobody has waited for `idleRelease`.
    private func untilIdle() async throws {
        while true {
            try await Task.sleep(for: idleRelease / 2)
            if state.withLock({ $0.waiters.isEmpty && !self.demandedRecently($0) }) { return }
        }
    }

    private func demandedRecently(_ state: State) -> Bool {
        state.lastDemand.map { ContinuousClock.now - $0 < idleRelease } ?? false
    }

    private func untilDemanded() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    // Checked under the lock the cancellation handler takes: a cancellation that
                    // landed before it found no continuation to resume, and must not park this one.
                    if Task.isCancelled || state.stopped || !state.waiters.isEmpty || demandedRecently(state) { return true }
                    state.demand = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.demand = nil }
                return state.demand
            }?.resume()
        }
    }

    // MARK: - Waiters

    private func nextSignal(after seen: UInt64) async {
        let id = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let (resumeNow, parked) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
                    state.lastDemand = .now
                    if Task.isCancelled || state.stopped || state.generation != seen { return (true, nil) }
                    state.waiters[id] = continuation
                    defer { state.demand = nil }
                    return (false, state.demand)
                }
                parked?.resume()
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    private func wakeAll() {
        let continuations = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.generation &+= 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for continuation in continuations { continuation.resume() }
    }
}
