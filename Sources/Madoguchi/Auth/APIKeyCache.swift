import Foundation
import Synchronization

/// Keys recently found valid, for one second: a gateway posting hundreds of messages a second costs
/// one key lookup a second instead of one per request, and a revoked key stops working within a
/// second in every process, and from the next request in the process that revoked it. Only successes
/// are kept, so a stream of wrong keys cannot fill it, and it is bounded however many keys are in use.
///
/// "From the next request" needs two things. The revoking request forgets the key after its
/// transaction commits (before, a lookup could read the row still valid and keep it a second). And a
/// lookup that began before a forget is not kept: it may have read the row before the commit.
final class APIKeyCache: Sendable {
    private struct Entry {
        var principal: Principal
        var validUntil: ContinuousClock.Instant
    }

    private struct State {
        var entries: [[UInt8]: Entry] = [:]
        /// Moves on at every forget.
        var generation: UInt64 = 0
    }

    static let lifetime = Duration.seconds(1)
    static let capacity = 10_000

    private let state = Mutex(State())
    private let lifetime: Duration

    init(lifetime: Duration = APIKeyCache.lifetime) {
        self.lifetime = lifetime
    }

    /// Taken before a lookup, and handed to `remember` with its result.
    var generation: UInt64 { state.withLock { $0.generation } }

    /// The principal for a secret's hash, if it was found valid less than a lifetime ago.
    func principal(forHash hash: [UInt8]) -> Principal? {
        let now = ContinuousClock.now
        return state.withLock { state in
            guard let entry = state.entries[hash] else { return nil }
            guard entry.validUntil > now else {
                state.entries[hash] = nil
                return nil
            }
            return entry.principal
        }
    }

    /// Keeps a lookup's result, unless a key was forgotten since the lookup began (`generation`).
    func remember(_ principal: Principal, forHash hash: [UInt8], lookedUpAt generation: UInt64) {
        let validUntil = ContinuousClock.now + lifetime
        state.withLock { state in
            guard state.generation == generation else { return }
            // Full: start over rather than track ages; the next second refills what is in use.
            if state.entries.count >= Self.capacity { state.entries.removeAll(keepingCapacity: true) }
            state.entries[hash] = Entry(principal: principal, validUntil: validUntil)
        }
    }

    /// Call once the revocation has committed.
    func forget(keyID: UUID) {
        forget { $0.keyID == keyID }
    }

    /// Every key acting for the agent (deactivated: its keys were revoked). Call once that has committed.
    func forget(agentID: UUID) {
        forget { $0.agentID == agentID }
    }

    private func forget(where matches: (Principal) -> Bool) {
        state.withLock { state in
            state.generation &+= 1
            state.entries = state.entries.filter { !matches($0.value.principal) }
        }
    }
}
