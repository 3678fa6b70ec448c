/// Group commit for the outbox's per-delivery writes. A request waits only for the batch in flight
/// when it arrives: alone it is written at once; under load, every request that arrived meanwhile
/// shares the next statement and the next commit. Each caller still resumes only after its own write
/// is durable, so batching changes no promise, only how many commits a thousand deliveries cost
/// (`bench outbound`: one handover commit and one settle commit per reply made the database, not the
/// relay, the limit).
actor CommitGroup<Request: Sendable, Response: Sendable> {
    typealias Write = @Sendable ([Request]) async -> [Result<Response, any Error>]

    private let write: Write
    private let maximumBatch: Int
    private var waiting: [(request: Request, continuation: CheckedContinuation<Response, any Error>)] = []
    private var writing = false

    /// `write` answers every request of a batch, in order.
    init(maximumBatch: Int = 256, write: @escaping Write) {
        self.write = write
        self.maximumBatch = maximumBatch
    }

    func submit(_ request: Request) async throws -> Response {
        try await withCheckedThrowingContinuation { continuation in
            waiting.append((request, continuation))
            if !writing {
                writing = true
                Task { await self.drain() }
            }
        }
    }

    private func drain() async {
        while !waiting.isEmpty {
            let batch = Array(waiting.prefix(maximumBatch))
            waiting.removeFirst(batch.count)
            // Requests arriving during the write queue up for the next one.
            let results = await write(batch.map(\.request))
            for (index, entry) in batch.enumerated() {
                entry.continuation.resume(with: index < results.count ? results[index] : .failure(MissingAnswer()))
            }
        }
        writing = false
    }

    struct MissingAnswer: Error {}
}
