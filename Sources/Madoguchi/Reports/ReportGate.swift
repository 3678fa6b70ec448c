import Synchronization

/// The reports' share of the database. Ingest, claims and replies share one connection pool with
/// the reports when no replica is configured, and a year's agents report at a million tickets holds
/// its connection for seconds: a few dashboards asking at once would leave the gateways and agents
/// waiting for connections, then answered 503. So at most `concurrency` report statements run at
/// once (JSON or CSV, `MADOGUCHI_REPORT_CONCURRENCY`, a quarter of the pool by default); a report
/// finding every slot taken waits up to `wait` (`MADOGUCHI_DB_WAIT_SECONDS`, as for a connection),
/// in arrival order, then is answered `503` (`reports-busy`) with `Retry-After`.
final class ReportGate: Sendable {
    let concurrency: Int
    let wait: Duration

    private struct State {
        var running = 0
        var nextTicket: UInt64 = 0
        /// Reports waiting for a slot, oldest first.
        var waiting: [(ticket: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
    }

    private let state = Mutex(State())

    init(concurrency: Int, wait: Duration) {
        precondition(concurrency >= 1, "a report gate needs at least one slot")
        self.concurrency = concurrency
        self.wait = wait
    }

    /// The reports holding a slot now.
    var running: Int { state.withLock { $0.running } }

    /// The reports waiting for one.
    var waitingCount: Int { state.withLock { $0.waiting.count } }

    /// Takes a slot, waiting for one for at most `wait`. Every successful call must be paired with
    /// one `release()`.
    func acquire() async throws {
        let ticket: UInt64? = state.withLock { state in
            if state.running < concurrency, state.waiting.isEmpty {
                state.running += 1
                return nil
            }
            state.nextTicket += 1
            return state.nextTicket
        }
        guard let ticket else { return }
        // The timer starts once the wait is on the list, so it can never fire before there is a
        // wait to end; a cancellation before that is seen under the same lock.
        var timer: Task<Void, Never>?
        defer { timer?.cancel() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                // Looked at again under the lock that puts the wait on the list: a slot freed since the
                // first look found nobody waiting and was not handed on, and this report would have
                // waited (and every later one behind it) with the slot free, then been answered 503.
                let decision = state.withLock { state -> (cancelled: Bool, admitted: Bool) in
                    if Task.isCancelled { return (true, false) }
                    if state.running < concurrency, state.waiting.isEmpty {
                        state.running += 1
                        return (false, true)
                    }
                    state.waiting.append((ticket, continuation))
                    return (false, false)
                }
                if decision.cancelled {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                if decision.admitted {
                    continuation.resume()
                    return
                }
                timer = Task { [wait, concurrency] in
                    guard (try? await Task.sleep(for: wait)) != nil else { return }
                    self.giveUp(ticket, with: Problem.reportsBusy(concurrency: concurrency, retryAfterSeconds: 5))
                }
            }
        } onCancel: {
            giveUp(ticket, with: CancellationError())
        }
    }

    /// Frees a slot: the oldest waiting report takes it over, if any.
    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            if state.waiting.isEmpty {
                state.running -= 1
                return nil
            }
            return state.waiting.removeFirst().continuation
        }
        next?.resume()
    }

    /// `body` run holding a slot.
    func withSlot<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
        try await acquire()
        defer { release() }
        return try await body()
    }

    /// Takes `ticket` off the waiting list and fails its wait, unless it was handed a slot already.
    private func giveUp(_ ticket: UInt64, with error: any Error) {
        let continuation = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            guard let index = state.waiting.firstIndex(where: { $0.ticket == ticket }) else { return nil }
            return state.waiting.remove(at: index).continuation
        }
        continuation?.resume(throwing: error)
    }
}
