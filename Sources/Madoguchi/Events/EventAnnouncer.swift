import Logging
import Synchronization

/// Tells the feed's followers in every process (`EventNotifier`) that events were committed: one
/// `pg_notify('madoguchi_events')`, sent after the writing transaction committed, on a connection of
/// its own, and coalesced — while one is in flight, any number of commits ask for one more.
///
/// Not a trigger in the writing transaction, as it was: PostgreSQL serializes the commits of
/// transactions that NOTIFY on one global lock held across their WAL flush, so every ingest and every
/// claim waited for the one before it (`bench claim-next`, 32 agents: 356 claims/s with the trigger,
/// 706 without). Followers also wake on their own timeout, so a lost announcement delays, never loses.
///
/// Paced: after an idle spell the first commit is announced at once, and while commits keep coming the
/// announcements are at least `minimumInterval` apart. Unpaced, a busy service sent one for nearly every
/// other request (`bench claim-next`, 8 agents: 569 a second, each a round trip, a transaction and a
/// wake-up of every listening backend and its follower) to tell followers what one announcement every
/// few milliseconds tells them as well.
final class EventAnnouncer: Sendable {
    /// How much later than at once a follower may hear of a commit while the service is busy.
    static let minimumInterval: Duration = .milliseconds(20)

    private struct State {
        var inFlight = false
        var again = false
        /// When the last announcement went out, so that the next one, from this task or a later one,
        /// waits for the interval.
        var sent: ContinuousClock.Instant?
    }
    private let state = Mutex(State())

    /// Asks for an announcement; returns at once.
    func announce(on database: Database) {
        let start = state.withLock { state -> Bool in
            if state.inFlight {
                state.again = true
                return false
            }
            state.inFlight = true
            return true
        }
        guard start else { return }
        Task.detached { [self] in
            let clock = ContinuousClock()
            repeat {
                if let sent = state.withLock({ $0.sent }) {
                    try? await clock.sleep(until: sent.advanced(by: Self.minimumInterval))
                }
                state.withLock { $0.sent = clock.now }
                do {
                    _ = try await database.withConnection { try await $0.run("SELECT pg_notify('madoguchi_events', '')", logger: database.logger) }
                } catch {
                    database.logger.debug("event announcement not sent; followers wake on their timeout", metadata: ["error": "\(error)"])
                }
            } while state.withLock { state -> Bool in
                if state.again {
                    state.again = false
                    return true
                }
                state.inFlight = false
                return false
            }
        }
    }
}

/// Set while a connection is leased: whoever inserts into `events` on it says so, and the lease
/// announces them once its work is done (and committed).
final class EventWrites: Sendable {
    @TaskLocal static var current: EventWrites?

    private let wrote = Atomic<Bool>(false)

    var happened: Bool { wrote.load(ordering: .relaxed) }

    /// Called by every statement that inserts into `events`.
    static func noteWritten() {
        current?.wrote.store(true, ordering: .relaxed)
    }
}
