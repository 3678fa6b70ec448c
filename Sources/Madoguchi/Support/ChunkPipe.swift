import Synchronization

/// A bounded hand-over of byte chunks from one producer task to one consumer (an HTTP response
/// body, `reader`): the producer waits while `capacity` chunks are unread, so a slow client slows the
/// database read instead of growing memory. When the consumer goes away (the client hung up, the
/// response was dropped, even before it was read at all), the producer's next `send` throws
/// `CancellationError` and it can let go of what it holds.
final class ChunkPipe: Sendable {

    private struct State {
        var chunks: [ArraySlice<UInt8>] = []
        var finished = false
        var failure: (any Error)?
        var cancelled = false
        var waitingReader: CheckedContinuation<Void, Never>?
        var waitingWriter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())
    private let capacity: Int

    init(capacity: Int = 4) {
        self.capacity = capacity
    }

    /// Hands `chunk` over, waiting while the pipe is full; throws once the consumer is gone.
    func send(_ chunk: ArraySlice<UInt8>) async throws {
        while true {
            let (accepted, reader) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
                if state.cancelled || state.chunks.count >= capacity { return (false, nil) }
                state.chunks.append(chunk)
                defer { state.waitingReader = nil }
                return (true, state.waitingReader)
            }
            if accepted {
                reader?.resume()
                return
            }
            if state.withLock({ $0.cancelled }) { throw CancellationError() }
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.cancelled || state.chunks.count < capacity { return true }
                    state.waitingWriter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    /// No more chunks: the consumer reads what is left, then the end (or `failure`).
    func finish(throwing failure: (any Error)? = nil) {
        let reader = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            state.failure = failure
            defer { state.waitingReader = nil }
            return state.waitingReader
        }
        reader?.resume()
    }

    /// The consumer is gone: a waiting or later `send` throws.
    func cancel() {
        let writer = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.cancelled = true
            state.chunks.removeAll()
            defer { state.waitingWriter = nil }
            return state.waitingWriter
        }
        writer?.resume()
    }

    fileprivate func next() async throws -> ArraySlice<UInt8>? {
        while true {
            enum Step { case chunk(ArraySlice<UInt8>, CheckedContinuation<Void, Never>?), end((any Error)?), wait }
            let step = state.withLock { state -> Step in
                if !state.chunks.isEmpty {
                    let chunk = state.chunks.removeFirst()
                    defer { state.waitingWriter = nil }
                    return .chunk(chunk, state.waitingWriter)
                }
                if state.finished { return .end(state.failure) }
                return .wait
            }
            switch step {
            case .chunk(let chunk, let writer):
                writer?.resume()
                return chunk
            case .end(let failure):
                if let failure { throw failure }
                return nil
            case .wait:
                await withCheckedContinuation { continuation in
                    let resumeNow = state.withLock { state -> Bool in
                        if !state.chunks.isEmpty || state.finished { return true }
                        state.waitingReader = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    /// The consumer's side, made once. When the reader and every iterator made from it are gone,
    /// the consumer is: a response dropped unread (the framework refusing it after the handler ran)
    /// releases the producer as a client hanging up does.
    func reader() -> Reader { Reader(consumer: Consumer(pipe: self)) }

    /// Cancels the pipe when the last holder of it goes.
    fileprivate final class Consumer: Sendable {
        let pipe: ChunkPipe
        init(pipe: ChunkPipe) { self.pipe = pipe }
        deinit { pipe.cancel() }
    }

    struct Reader: AsyncSequence, Sendable {
        typealias Element = ArraySlice<UInt8>

        fileprivate let consumer: Consumer

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(consumer: consumer) }
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate let consumer: Consumer

        mutating func next() async throws -> ArraySlice<UInt8>? {
            try await consumer.pipe.next()
        }
    }
}
