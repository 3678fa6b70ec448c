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
final class WebhookResolver: Sendable {
    typealias LookUp = @Sendable (WebhookAddress, _ allowPrivate: Bool) throws -> SocketAddress

    private let pool: NIOThreadPool
    private let timeout: Duration
    private let lookUp: LookUp

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
        return try await withCheckedThrowingContinuation { continuation in
            let answer = FirstAnswer(continuation)
            let timer = Task {
                try? await Task.sleep(for: timeout)
                answer.give(.failure(WebhookAddressError(description: "looking up \(host) took longer than \(timeout.seconds.formatted()) s")))
            }
            pool.submit { state in
                defer { timer.cancel() }
                guard case .active = state else {
                    answer.give(.failure(WebhookAddressError(description: "the webhook worker is stopping")))
                    return
                }
                answer.give(Result { try lookUp(address, allowPrivate) })
            }
        }
    }
}

/// Resumes its waiter with whichever answer comes first; later ones are dropped.
private final class FirstAnswer<Value: Sendable>: Sendable {
    private let waiter: Mutex<CheckedContinuation<Value, any Error>?>

    init(_ waiter: CheckedContinuation<Value, any Error>) {
        self.waiter = Mutex(waiter)
    }

    func give(_ result: Result<Value, any Error>) {
        waiter.withLock { waiter in
            defer { waiter = nil }
            return waiter
        }?.resume(with: result)
    }
}
