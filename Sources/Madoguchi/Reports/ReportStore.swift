import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Runs report statements: all rows at once for JSON (a report has at most a few tens of thousands
/// of rows: periods × channels), or streamed row by row into CSV with the memory of a few chunks,
/// however many rows there are. Each statement holds one of the reports' slots (`ReportGate`) while
/// it runs; a JSON one is stopped after `timeout`.
struct ReportStore: Sendable {
    let database: Database
    let gate: ReportGate
    let timeout: Duration
    let logger: Logger

    /// Every row, from the report's statement prepared once per connection. Planning it was 3–9 ms
    /// of every 18–43 ms request (a year by day at 100,000 tickets), and one plan serves every
    /// request: all of a report's values are in its `params` expression, which the planner cannot
    /// see into either way, so a plan made for one request's values is the plan for any other's.
    /// (The breaches' page is not prepared: its range is compared in the open, and a plan for a
    /// day's range is not the plan for a year's.)
    func rows(_ kind: ReportKind, _ request: ReportRequest) async throws -> [[ReportCell]] {
        try await timeLimited(request) { connection in
            try await connection.rows(kind.query(request), preparedAs: kind.preparedSite, logger: logger).map { row in
                try row.map(ReportCell.init)
            }
        }
    }

    /// A page of SLA breaches, and one row more when there are more.
    func breaches(_ request: ReportRequest, _ page: BreachPage) async throws -> [[ReportCell]] {
        try await timeLimited(request) { connection in
            var rows: [[ReportCell]] = []
            for try await row in try await connection.run(page.query(request), logger: logger) {
                rows.append(try row.map(ReportCell.init))
            }
            return rows
        }
    }

    /// `read` run holding a report slot, in a transaction of its own whose statements PostgreSQL
    /// stops after `timeout` (a setting of this transaction alone, so the pooled connection's other
    /// users keep theirs). A statement cancelled because the client went away is no time-out.
    /// JIT is off in it too (`noJIT(transactionOnly:)`).
    private func timeLimited(
        _ request: ReportRequest, _ read: @escaping (PostgresConnection) async throws -> [[ReportCell]]
    ) async throws -> [[ReportCell]] {
        do {
            return try await gate.withSlot {
                try await database.withTransaction { connection in
                    try await connection.perform(
                        "SELECT set_config('statement_timeout', \(String(Int(timeout.milliseconds))), true), \(unescaped: Self.noJIT(transactionOnly: true))", logger: logger)
                    try await checkTimeZone(request.timeZone, on: connection)
                    return try await read(connection)
                }
            }
        } catch let error where error.sqlState == .queryCanceled && !Task.isCancelled {
            logger.warning("a report ran past its time limit", metadata: ["seconds": "\(timeout.components.seconds)"])
            throw Problem.reportTimeout(seconds: Int(timeout.components.seconds))
        }
    }

    /// The report as CSV, header first. Returns once the statement has been accepted (so a bad
    /// request is still a problem, not a broken download); the rows follow as the client reads them.
    /// A client that goes away stops the read and gives the connection back.
    func csv(_ kind: ReportKind, _ request: ReportRequest, byteOrderMark: Bool) async throws -> ChunkPipe {
        // The slot is held from here until the last row is sent (or the stream fails): a CSV
        // export's connection is busy as long as its client takes to read it.
        try await gate.acquire()
        let pipe = ChunkPipe()
        let logger = logger
        let database = database
        let gate = gate
        try await withCheckedThrowingContinuation { (started: CheckedContinuation<Void, any Error>) in
            // Resumed exactly once: when the statement is accepted, or with the error that came first.
            let waiting = Mutex<CheckedContinuation<Void, any Error>?>(started)
            let takeWaiting = { waiting.withLock { continuation in defer { continuation = nil }; return continuation } }
            Task {
                defer { gate.release() }
                do {
                    try await database.withConnection { connection in
                        try await checkTimeZone(request.timeZone, on: connection)
                        // For the whole session (the stream is no transaction): what 0054 makes its default anyway.
                        try await connection.perform("SELECT \(unescaped: Self.noJIT(transactionOnly: false))", logger: logger)
                        let rows = try await connection.run(kind.query(request), logger: logger)
                        takeWaiting()?.resume()
                        var chunk = (byteOrderMark ? CSV.byteOrderMark : []) + CSV.line(kind.columns)
                        chunk.reserveCapacity(40 * 1024)
                        for try await row in rows {
                            CSV.append(try row.map { CSV.field(try ReportCell($0), forSpreadsheet: byteOrderMark) }, to: &chunk)
                            if chunk.count >= 32 * 1024 {
                                try await pipe.send(chunk[...])
                                chunk.removeAll(keepingCapacity: true)
                            }
                        }
                        try await pipe.send(chunk[...])
                    }
                    pipe.finish()
                } catch {
                    if let waiting = takeWaiting() {
                        waiting.resume(throwing: error)
                    } else if !(error is CancellationError) {
                        logger.error("report CSV stopped", metadata: ["report": "\(kind.rawValue)", "error": "\(String(reflecting: error))"])
                    }
                    pipe.finish(throwing: error)
                }
            }
        }
        return pipe
    }

    /// What every report reads before its rows, in one round trip:
    /// - the zone a report is cut in when the request names none: the standard calendar's (標準, the
    ///   one a ticket without an SLA policy counts on), so a shop that moved it to its own zone sees
    ///   its own days; Asia/Tokyo if that calendar was deleted;
    /// - the moment the data reflects: now on the primary; on a replica, the commit time of the last
    ///   change it applied, unless it has applied everything it received (then now, as on the primary).
    func context() async throws -> (defaultZone: String, dataAsOf: Date) {
        try await database.withConnection { connection in
            let rows = try await connection.run("""
                SELECT coalesce((SELECT time_zone FROM business_calendars WHERE id = \(BusinessCalendar.standardID)), 'Asia/Tokyo'),
                       CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN now()
                            ELSE coalesce(pg_last_xact_replay_timestamp(), now()) END
                """, logger: logger)
            for try await (zone, moment) in rows.decode((String, Date).self) { return (zone, moment) }
            return ("Asia/Tokyo", Date())
        }
    }

    /// A report's plan costs the arms it skips at run time (the rows a rollup replaces), which can
    /// pass jit_above_cost: compiling then took longer than running it (1 M tickets: 9.8 ms run,
    /// 1,243 ms compiling). Migration 0054 turns JIT off for the role's sessions; this holds where
    /// that setting is missing (a pool opened before it, a database restored without role settings).
    private static func noJIT(transactionOnly: Bool) -> String { "set_config('jit', 'off', \(transactionOnly))" }

    private func checkTimeZone(_ zone: String, on connection: PostgresConnection) async throws {
        let known = try await Self.zoneNames(on: connection, logger: logger)
        guard known.contains(zone) else {
            throw Problem.invalidParameter("time_zone", "\(zone) is not a time zone this server knows (use an IANA name such as Asia/Tokyo)")
        }
    }

    /// The zone names the database knows, read once per process: reading pg_timezone_names walks the
    /// server's time-zone files, 24 ms on every report request when it was asked each time. (They
    /// change only with the server's time-zone data, which a restart of this service picks up.) The
    /// server reads them as it starts, so that no dashboard's first request waits for them.
    @discardableResult
    static func zoneNames(on connection: PostgresConnection, logger: Logger) async throws -> Set<String> {
        if let loaded = loadedZoneNames.withLock({ $0 }) { return loaded }
        var names = Set<String>()
        for try await name in try await connection.run("SELECT name FROM pg_timezone_names", logger: logger).decode(String.self) {
            names.insert(name)
        }
        loadedZoneNames.withLock { $0 = names }
        return names
    }

    private static let loadedZoneNames = Mutex<Set<String>?>(nil)
}

extension ReportKind {
    /// The report's JSON statement as the service runs it, prepared on `connection` (the breaches'
    /// page unprepared, as the service runs it): what a benchmark's bare client must time beside the
    /// service, rather than the same text parsed and planned on every run. Returns the row count.
    package func runAsTheServiceDoes(_ request: ReportRequest, on connection: PostgresConnection, logger: Logger) async throws -> Int {
        if self == .slaBreaches {
            var count = 0
            for try await _ in try await connection.run(jsonQuery(request), logger: logger) { count += 1 }
            return count
        }
        return try await connection.rows(query(request), preparedAs: preparedSite, logger: logger).count
    }

    /// The name the report's statement is prepared under on a connection.
    fileprivate var preparedSite: any PreparedSite.Type {
        switch self {
        case .volume: VolumeReport.self
        case .backlog: BacklogReport.self
        case .responseTimes: ResponseTimesReport.self
        case .agents: AgentsReport.self
        case .sla: SLAReport.self
        case .slaBreaches: SLABreachesReport.self
        case .categories: CategoriesReport.self
        }
    }

    private enum VolumeReport: PreparedSite { static let name = "madoguchi_report_volume" }
    private enum BacklogReport: PreparedSite { static let name = "madoguchi_report_backlog" }
    private enum ResponseTimesReport: PreparedSite { static let name = "madoguchi_report_response_times" }
    private enum AgentsReport: PreparedSite { static let name = "madoguchi_report_agents" }
    private enum SLAReport: PreparedSite { static let name = "madoguchi_report_sla" }
    private enum SLABreachesReport: PreparedSite { static let name = "madoguchi_report_sla_breaches" }
    private enum CategoriesReport: PreparedSite { static let name = "madoguchi_report_categories" }
}
