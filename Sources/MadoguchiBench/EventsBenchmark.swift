import Foundation
import Logging
import Madoguchi
import NIOPosix
import PostgresNIO
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `madoguchi bench events`: how soon a change reaches those who follow it, while LINE messages are
/// taken in as fast as `clients` gateways can post them.
///
/// - Lag: from an event's transaction start (`occurred_at`, microseconds, read from the database) to
///   the moment a follower has it — through the service's long poll (`GET /v1/events?wait=`) and its
///   stream (`/v1/events/stream`), next to a bare PostgreSQL client that LISTENs on the same channel
///   and reads `id > last` at each notification (the naive follower, which can skip a late commit;
///   here only its speed is the yardstick).
/// - Webhooks: deliveries per second to a loopback receiver with 1 and 16 endpoints, each working
///   through the same backlog (the endpoints are paused while the load runs, then resumed): from the
///   resume until every endpoint has every event, next to a bare client posting the same number of
///   bodies of the same size to the same receiver, one keep-alive connection per endpoint.
public struct EventsBenchmark: Sendable {
    public var seconds: Int = 5
    public var clients: Int = 4
    public var endpointCounts: [Int] = [1, 16]

    public init() {}

    public struct Figures: Sendable {
        public var events = 0
        public var lag: [String: (p50: Double, p99: Double, count: Int)] = [:]
        public var webhooks: [(endpoints: Int, service: Double, bare: Double)] = []
    }

    @discardableResult
    public func run(logger: Logger, report: @Sendable (String) -> Void) async throws -> Figures {
        report("\(clients) clients posting LINE messages, \(seconds) s per measurement")
        let ingest = WebhookBenchmark()
        return try await BenchmarkSupport.withCluster(logger: logger, maxConnections: 200) { cluster in
            try await BenchmarkSupport.withService(on: cluster, logger: logger, configure: {
                $0.providers.lineChannelSecrets = [WebhookBenchmark.lineSecret]
                $0.webhooks.allowPrivateAddresses = true
                $0.webhooks.concurrency = 16
            }) { port, database in
                var figures = Figures()
                let (dashboard, admin) = try await database.withConnection { connection in
                    (try await APIKeyStore(logger: logger).create(name: "bench dashboard", role: .dashboard, agentID: nil, on: connection).1.text,
                     try await APIKeyStore(logger: logger).create(name: "bench admin", role: .admin, agentID: nil, on: connection).1.text)
                }

                // 1. Followers under load.
                let bare = BareFollower()
                let stop = StopFlag()
                let loadStart = Date()
                async let bareDone: Void = bare.follow(database, logger: logger, until: stop)
                let polledSeen = SeenEvents(), streamedSeen = SeenEvents()
                async let polled: Void = BenchmarkSupport.onThread { try Self.longPoll(port: port, key: dashboard, into: polledSeen, until: stop) }
                async let streamed: Void = BenchmarkSupport.onThread { try Self.stream(port: port, key: dashboard, into: streamedSeen, until: stop) }
                // A stream without Last-Event-ID starts at the feed's end when it is answered: load
                // begun before that would be missed (a loaded CI machine once answered it late).
                let connectDeadline = Date().addingTimeInterval(30)
                while !streamedSeen.connected && Date() < connectDeadline { try await Task.sleep(for: .milliseconds(20)) }
                guard streamedSeen.connected else {
                    // Every follower ends before the error goes up; the stream's own error, if it had one, goes first.
                    stop.set()
                    _ = try? await database.withConnection { try await $0.query("SELECT pg_notify('madoguchi_events', '')", logger: logger) }
                    try? await polled
                    try? await bareDone
                    try await streamed
                    throw BenchmarkError("GET /v1/events/stream did not answer within 30 s")
                }
                let load = try await BenchmarkSupport.drive(port: port, clients: clients, seconds: seconds) { client, sequence in
                    ingest.lineRequest(client: client, sequence: sequence + 1_000_000)
                }
                // Every event the load committed, from the table itself: each request has returned, so
                // they are all there. (Taken from the bare follower's memory, the set was empty when it
                // had not read yet, the wait below ended at once, and the stream was cut off with none.)
                let committed = try await database.withConnection { connection in
                    var rows: [Int64: Double] = [:]
                    for try await (id, occurredAt) in try await connection.query("""
                        SELECT id, extract(epoch FROM occurred_at)::float8 FROM events WHERE occurred_at >= \(loadStart)
                        """, logger: logger).decode((Int64, Double).self) {
                        rows[id] = occurredAt
                    }
                    return rows
                }
                // Let the followers catch up: 2 s, and on a loaded machine until all three have every
                // event (up to a minute). Lag is measured from timestamps, so waiting longer changes no
                // figure; it only stops a slow follower being cut off.
                try await Task.sleep(for: .seconds(2))
                let catchUpDeadline = Date().addingTimeInterval(60)
                let expected = Set(committed.keys)
                while Date() < catchUpDeadline {
                    let bareIDs = Set(bare.seen.withLock { $0 }.keys)
                    if expected.isSubset(of: bareIDs) && expected.isSubset(of: polledSeen.ids) && expected.isSubset(of: streamedSeen.ids) { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                stop.set()
                // Wake the bare follower, which waits for a notification.
                _ = try await database.withConnection { try await $0.query("SELECT pg_notify('madoguchi_events', '')", logger: logger) }
                try await (polled, streamed)
                try await bareDone
                figures.events = committed.count
                report(String(format: "ingest: %d messages in %.1f s, %d events", load.requests, load.elapsed, committed.count))
                for (name, seen) in [("bare LISTEN + SELECT", bare.seen.withLock { $0 }.mapValues(\.seenAt)), ("GET /v1/events?wait", polledSeen.times),
                                     ("/v1/events/stream", streamedSeen.times)] {
                    let lags = committed.compactMap { id, occurredAt in seen[id].map { ($0 - occurredAt) * 1000 } }.sorted()
                    let stats = (p50: Self.percentile(lags, 0.5), p99: Self.percentile(lags, 0.99), count: lags.count)
                    figures.lag[name] = stats
                    report(name.padding(toLength: 22, withPad: " ", startingAt: 0)
                           + String(format: "%7.0f events/s  lag p50 %6.1f ms  p99 %6.1f ms  (%d of %d events)",
                                    Double(lags.count) / load.elapsed, stats.p50, stats.p99, lags.count, committed.count))
                }

                // 2. Webhooks.
                let sink = try await HTTPSinkServer(group: MultiThreadedEventLoopGroup.singleton)
                defer { Task { await sink.close() } }
                for count in endpointCounts {
                    // The blocking client on threads of its own: the service answering it runs in this process.
                    let sinkPort = sink.port
                    let ids = try await BenchmarkSupport.onThread { () throws -> [String] in
                        let http = try LoopbackHTTPClient(port: port)
                        return try (0..<count).map { _ in
                            let created = try http.exchange("POST", "/v1/webhooks", headers: ["Authorization": "Bearer \(admin)", "Content-Type": "application/json"],
                                                            body: Array(#"{"url":"http://127.0.0.1:\#(sinkPort)/hook","event_types":["message.received"]}"#.utf8))
                            guard created.status == 201,
                                  let json = try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any],
                                  let id = (json["webhook"] as? [String: Any])?["id"] as? String
                            else { throw BenchmarkError("creating a webhook answered \(created.status)") }
                            return id
                        }
                    }
                    // Paused while the load runs, so that what is measured is delivery alone: every endpoint
                    // then works through the same backlog.
                    let pause = { @Sendable (active: Bool) async throws in
                        try await BenchmarkSupport.onThread {
                            let http = try LoopbackHTTPClient(port: port)
                            for id in ids {
                                let answer = try http.exchange("PATCH", "/v1/webhooks/\(id)", headers: ["Authorization": "Bearer \(admin)", "Content-Type": "application/json"],
                                                               body: Array(#"{"active":\#(active)}"#.utf8))
                                guard answer.status == 200 else { throw BenchmarkError("PATCH /v1/webhooks answered \(answer.status)") }
                            }
                        }
                    }
                    try await pause(false)
                    let load = try await BenchmarkSupport.drive(port: port, clients: clients, seconds: seconds) { client, sequence in
                        ingest.lineRequest(client: client, sequence: sequence + count * 10_000_000)
                    }
                    let expected = load.requests * count
                    let before = sink.received
                    let start = Date()
                    try await pause(true)
                    // A loaded machine can take a while; the rate counts only the time actually taken.
                    while sink.received - before < expected && Date().timeIntervalSince(start) < max(60, Double(seconds) * 20) {
                        try await Task.sleep(for: .milliseconds(20))
                    }
                    let delivered = sink.received - before
                    let serviceRate = Double(delivered) / Date().timeIntervalSince(start)
                    try await BenchmarkSupport.onThread {
                        let http = try LoopbackHTTPClient(port: port)
                        for id in ids { _ = try http.send("DELETE", "/v1/webhooks/\(id)", headers: ["Authorization": "Bearer \(admin)"]) }
                    }
                    let body = [UInt8](repeating: UInt8(ascii: "x"), count: 900)
                    let bareStart = Date()
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for _ in 0..<count {
                            group.addTask {
                                try await BenchmarkSupport.onThread {
                                    let client = try LoopbackHTTPClient(port: sink.port)
                                    for _ in 0..<(expected / count) { _ = try client.send("POST", "/hook", headers: ["Content-Type": "application/json"], body: body) }
                                }
                            }
                        }
                        try await group.waitForAll()
                    }
                    let bareRate = Double(expected) / Date().timeIntervalSince(bareStart)
                    figures.webhooks.append((count, serviceRate, bareRate))
                    report(String(format: "webhooks, %2d endpoint%@: %7.0f deliveries/s (%d of %d)   bare client: %7.0f posts/s   service/bare %.2f",
                                  count, count == 1 ? " " : "s", serviceRate, delivered, expected, bareRate, serviceRate / bareRate))
                }
                return figures
            }
        }
    }

    static func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * fraction))]
    }

    /// Follows the feed with long polls, noting when each event id was first had.
    static func longPoll(port: Int, key: String, into seen: SeenEvents, until stop: StopFlag) throws {
        let http = try LoopbackHTTPClient(port: port)
        var cursor: String?
        while true {
            let after = cursor.map { "&after=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)" } ?? ""
            let page = try http.exchange("GET", "/v1/events?limit=500&wait=1\(after)", headers: ["Authorization": "Bearer \(key)"])
            let now = Date().timeIntervalSince1970
            guard page.status == 200, let json = try JSONSerialization.jsonObject(with: Data(page.body)) as? [String: Any] else {
                throw BenchmarkError("GET /v1/events answered \(page.status)")
            }
            let items = json["items"] as? [[String: Any]] ?? []
            for item in items { if let id = (item["id"] as? NSNumber)?.int64Value { seen.note(id, at: now) } }
            cursor = json["next_cursor"] as? String ?? cursor
            if items.isEmpty && stop.isSet { return }
        }
    }

    /// Follows the stream on a socket of its own, noting when each event id was first had.
    static func stream(port: Int, key: String, into seen: SeenEvents, until stop: StopFlag) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        try LoopbackHTTPClient.connect(descriptor, port: port)
        let request = "GET /v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(key)\r\nAccept: text/event-stream\r\n\r\n"
        _ = Array(request.utf8).withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var quietSince = Date()
        var answered = false
        // Like the long poll, it reads on for a second of quiet after being told to stop, counted from
        // then at the earliest: what is on its way when the stop comes is still had.
        var stoppedAt: Date?
        while true {
            if stop.isSet {
                let since = stoppedAt ?? Date()
                stoppedAt = since
                if Date().timeIntervalSince(max(quietSince, since)) > 1 { break }
            }
            let count = recv(descriptor, &chunk, chunk.count, 0)
            if count == 0 { break }
            guard count > 0 else { continue }
            let now = Date().timeIntervalSince1970
            quietSince = Date()
            pending += chunk[0..<count]
            if !answered {
                // Following starts once the answer's head is in, and only a 200 follows anything: an
                // error answer ends here with what it said, not with a count of zero events later.
                guard let headEnd = pending.firstRange(of: Array("\r\n\r\n".utf8)) else { continue }
                let head = String(decoding: pending[..<headEnd.lowerBound], as: UTF8.self)
                guard head.hasPrefix("HTTP/1.1 200") else {
                    throw BenchmarkError("GET /v1/events/stream answered \(head.prefix { $0 != "\r" }): \(String(decoding: pending[headEnd.upperBound...].prefix(500), as: UTF8.self))")
                }
                pending.removeSubrange(..<headEnd.upperBound)
                answered = true
                seen.markConnected()
            }
            // Complete lines only; a data line is one event's JSON.
            while let newline = pending.firstIndex(of: 10) {
                let line = pending[..<newline]
                pending.removeSubrange(...newline)
                guard line.starts(with: Array("data: ".utf8)),
                      let json = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6))) as? [String: Any],
                      let id = (json["id"] as? NSNumber)?.int64Value
                else { continue }
                seen.note(id, at: now)
            }
        }
    }
}

/// The yardstick: one connection LISTENing on the feed's channel, reading `id > last` at each
/// notification — as fast as a follower can be told, and (unlike the feed) blind to late commits.
final class BareFollower: Sendable {
    let seen = Mutex<[Int64: (occurredAt: Double, seenAt: Double)]>([:])

    func follow(_ database: Database, logger: Logger, until stop: StopFlag) async throws {
        var last: Int64 = 0
        try await database.withConnection { connection in
            try await connection.listen(on: "madoguchi_events") { notifications in
                // Read once now (anything before LISTEN), then at each notification.
                var reading = true
                var iterator = notifications.makeAsyncIterator()
                while reading && !stop.isSet {
                    let rows = try await connection.query("""
                        SELECT id, extract(epoch FROM occurred_at)::float8 FROM events WHERE id > \(last) ORDER BY id
                        """, logger: logger)
                    let now = Date().timeIntervalSince1970
                    for try await (id, occurredAt) in rows.decode((Int64, Double).self) {
                        last = max(last, id)
                        seen.withLock { if $0[id] == nil { $0[id] = (occurredAt, now) } }
                    }
                    reading = try await iterator.next() != nil
                }
            }
        }
    }
}

/// When a follower first had each event id; read while it is still following.
final class SeenEvents: Sendable {
    private let seen = Mutex<[Int64: Double]>([:])
    private let open = Atomic<Bool>(false)

    /// The stream answered: it follows the feed from here on.
    var connected: Bool { open.load(ordering: .relaxed) }
    func markConnected() { open.store(true, ordering: .relaxed) }

    func note(_ id: Int64, at time: Double) { seen.withLock { if $0[id] == nil { $0[id] = time } } }
    var times: [Int64: Double] { seen.withLock { $0 } }
    var ids: Set<Int64> { Set(times.keys) }
}

/// Set once, when the load is over.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}
