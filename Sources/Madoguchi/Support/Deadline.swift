/// Runs `work`, or cancels it and throws `expired()` once `limit` has passed: for probes that must
/// answer in bounded time however the thing they probe behaves.
func withDeadline<Result: Sendable>(
    _ limit: Duration, orThrow expired: @escaping @Sendable () -> any Error, _ work: @escaping @Sendable () async throws -> Result
) async throws -> Result {
    try await withThrowingTaskGroup(of: Result.self) { group in
        group.addTask(operation: work)
        group.addTask {
            try await Task.sleep(for: limit)
            throw expired()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}
