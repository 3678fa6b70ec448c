import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// Looks webhook host names up on threads of its own, within the webhook timeout.
///
/// `getaddrinfo` holds its thread until the name servers answer: with one of them down, that is
/// resolv.conf's timeout × attempts × servers, half a minute by default, and nothing can cut it
/// short. On the shared blocking pool (a thread per core) two such lookups stopped the parsing of
/// every inbound mail until they ended. Here they hold only these threads, one per endpoint the
/// worker serves at once, and a lookup that has not answered in time fails the attempt like a
/// receiver that has not: the thread is left to finish on its own.
///
/// So that one receiver's broken name servers cannot take every thread (and fail healthy endpoints'
/// lookups that only waited in the queue), a lookup already running for the same name is joined
/// rather than started again, and a queued lookup whose every waiter has given up is skipped.
final class WebhookResolver: Sendable {
    typealias LookUp = @Sendable (WebhookAddress, _ allowPrivate: Bool) throws -> SocketAddress

    private let pool: NIOThreadPool
    private let timeout: Duration
    private let lookUp: LookUp
    private let inFlight = InFlightLookups()

    init(threads: Int, settings: WebhookSettings) {
        pool = NIOThreadPool(numberOfThreads: max(1, threads))
        timeout = settings.timeout
        lookUp = settings.lookUp
        pool.start()
    }

    /// Lets the threads end once their lookups have; waits for none of them.
    func shutdown() {
        pool.shutdownGracefully { _ in }
    }

    func resolve(_ address: WebhookAddress, allowPrivate: Bool) async throws -> SocketAddress {
        let (timeout, lookUp, host) = (timeout, lookUp, address.host)
        let name = "\(address.host)|\(address.port)|\(allowPrivate)"
        return try await withCheckedThrowingContinuation { continuation in
            let answer = FirstAnswer(continuation)
            let timer = Task {
                try? await Task.sleep(for: timeout)
                answer.give(.failure(WebhookAddressError(description: "looking up \(host) took longer than \(timeout.seconds.formatted()) s")))
            }
            answer.onAnswer { timer.cancel() }
            guard inFlight.wait(for: name, answer) else { return }
            pool.submit { [inFlight] state in
                func waiters() -> [FirstAnswer<SocketAddress>] { inFlight.waiters.withLock { $0.removeValue(forKey: name) ?? [] } }
                guard case .active = state else {
                    for waiter in waiters() { waiter.give(.failure(WebhookAddressError(description: "the webhook worker is stopping"))) }
                    return
                }
                // Everyone waiting gave up while it was queued: the thread is better spent on the next.
                // Checked and forgotten under one lock, so that no one joins in between and is dropped.
                let abandoned = inFlight.waiters.withLock { waiters -> Bool in
                    guard !(waiters[name]?.contains { !$0.answered } ?? false) else { return false }
                    waiters[name] = nil
                    return true
                }
                guard !abandoned else { return }
                let result = Result { try lookUp(address, allowPrivate) }
                for waiter in waiters() { waiter.give(result) }
            }
        }
    }
}

/// The waiters of each lookup queued or running, by name, port and whether private addresses pass.
private final class InFlightLookups: Sendable {
    let waiters = Mutex<[String: [FirstAnswer<SocketAddress>]]>([:])

    /// Adds `answer` to the waiters of `name`'s lookup; true when there was none and it must be started.
    func wait(for name: String, _ answer: FirstAnswer<SocketAddress>) -> Bool {
        waiters.withLock { waiters in
            defer { waiters[name, default: []].append(answer) }
            return waiters[name] == nil
        }
    }
}

/// Resumes its waiter with whichever answer comes first; later ones are dropped.
private final class FirstAnswer<Value: Sendable>: Sendable {
    private let waiter: Mutex<CheckedContinuation<Value, any Error>?>
    private let whenAnswered = Mutex<(@Sendable () -> Void)?>(nil)

    init(_ waiter: CheckedContinuation<Value, any Error>) {
        self.waiter = Mutex(waiter)
    }

    var answered: Bool { waiter.withLock { $0 == nil } }

    /// Runs `action` once the answer is given (at once if it has been).
    func onAnswer(_ action: @escaping @Sendable () -> Void) {
        whenAnswered.withLock { $0 = action }
        if answered { whenAnswered.withLock { $0.take() }?() }
    }

    func give(_ result: Result<Value, any Error>) {
        guard let waiter = waiter.withLock({ $0.take() }) else { return }
        waiter.resume(with: result)
        whenAnswered.withLock { $0.take() }?()
    }
}
