import Foundation
import Synchronization

/// Keys recently found valid, for one second: a gateway posting hundreds of messages a second costs
/// one key lookup a second instead of one per request, and a revoked key stops working within a
/// second in every process (at once in the process that revoked it). Only successes are kept, so a
/// stream of wrong keys cannot fill it, and it is bounded however many keys are in use.
final class APIKeyCache: Sendable {
    private struct Entry {
        var principal: Principal
        var validUntil: ContinuousClock.Instant
    }

    static let lifetime = Duration.seconds(1)
    static let capacity = 10_000

    private let entries = Mutex<[[UInt8]: Entry]>([:])
    private let lifetime: Duration

    init(lifetime: Duration = APIKeyCache.lifetime) {
        self.lifetime = lifetime
    }

    /// The principal for a secret's hash, if it was found valid less than a lifetime ago.
    func principal(forHash hash: [UInt8]) -> Principal? {
        let now = ContinuousClock.now
        return entries.withLock { entries in
            guard let entry = entries[hash] else { return nil }
            guard entry.validUntil > now else {
                entries[hash] = nil
                return nil
            }
            return entry.principal
        }
    }

    func remember(_ principal: Principal, forHash hash: [UInt8]) {
        let validUntil = ContinuousClock.now + lifetime
        entries.withLock { entries in
            // Full: start over rather than track ages; the next second refills what is in use.
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[hash] = Entry(principal: principal, validUntil: validUntil)
        }
    }

    /// A key revoked here stops working here at once.
    func forget(keyID: UUID) {
        entries.withLock { entries in
            entries = entries.filter { $0.value.principal.keyID != keyID }
        }
    }
}
