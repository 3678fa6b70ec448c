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
final class EventAnnouncer: Sendable {
    private struct State {
        var inFlight = false
        var again = false
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
            repeat {
                do {
                    try await database.withConnection { try await $0.run("SELECT pg_notify('madoguchi_events', '')", logger: database.logger) }
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
