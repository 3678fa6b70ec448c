import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Carries on clock resets that a calendar or policy change recorded (`sla_clock_resets`, migration
/// 0075) and that are still unfinished: the request that asked for one stopped before its end (the
/// process restarted, the database went away between two batches). Runs in `madoguchi serve` and
/// `madoguchi worker`; any number may run at once, taking turns batch by batch on one reset (each
/// batch locks the reset's row).
///
/// Each round it also announces the clocks that crossed their warning point or due time
/// (`SLAAlerts`). Once a day it looks at how far the national holidays it knows reach: past the last shipped
/// year they count as working days, so due times would fall on 元日. Two months before that, it warns.
struct SLAClockResetWorker: Service {
    let database: Database
    let migrator: Migrator
    let logger: Logger
    var interval: Duration = .seconds(30)

    func run() async throws {
        func keepGoing() -> Bool { !Task.isShuttingDownGracefully && !Task.isCancelled }
        // The first round, too, after an interval (the schema checked then): a reset is rare, and a
        // process that starts needs no connection of its own at once for one (a test run starts
        // hundreds of servers on one cluster, and ran out of connections).
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        guard keepGoing() else { return }
        await migrator.waitUntilCurrent(database, logger: logger)
        var holidaysCheckedAt: ContinuousClock.Instant?
        while keepGoing() {
            if holidaysCheckedAt.map({ ContinuousClock.now - $0 > .seconds(86_400) }) ?? true {
                holidaysCheckedAt = ContinuousClock.now
                await warnIfHolidaysRunOut()
            }
            do {
                // Stopping between two batches loses nothing: the rest stays recorded for the next start.
                try await SLAPolicyStore(logger: logger).runPendingClockResets(in: database, keepGoing: keepGoing)
            } catch {
                // The database may be restarting; the reset waits for the next round, where it stopped.
                logger.warning("carrying on an SLA clock reset failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            do {
                try await SLAAlerts(logger: logger).announce(in: database)
            } catch {
                // Announced in the next round: a crossing stays one for a day.
                logger.warning("announcing SLA crossings failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// Logs a warning when a calendar counts national holidays and the last one known is less than
    /// `Self.holidayNotice` away.
    private func warnIfHolidaysRunOut() async {
        do {
            let last = try await database.withConnection { try await Self.holidaysKnownUntil(on: $0, logger: logger) }
            if let warning = Self.holidayWarning(knownUntil: last, now: Date()) {
                logger.warning("\(warning)")
            }
        } catch {
            logger.debug("the national holidays could not be looked at", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    /// The day after the last national holiday known for any calendar that counts them (midnight
    /// UTC), or nil when no calendar counts national holidays.
    static func holidaysKnownUntil(on connection: PostgresConnection, logger: Logger) async throws -> Date? {
        let rows = try await connection.run("""
            SELECT ((max(day) + 1)::timestamp AT TIME ZONE 'UTC') FROM national_holidays n
            WHERE EXISTS (SELECT 1 FROM business_calendars c WHERE c.national_holidays = n.country)
            """, logger: logger)
        for try await day in rows.decode(Date?.self) { return day }
        return nil
    }

    static let holidayNotice: TimeInterval = 60 * 86_400

    /// The warning when the holidays known end (`knownUntil`: the day after the last) within two months.
    static func holidayWarning(knownUntil: Date?, now: Date) -> String? {
        guard let knownUntil, knownUntil.timeIntervalSince(now) < holidayNotice else { return nil }
        let day = knownUntil.formatted(.iso8601.year().month().day())
        return "national holidays are known only until \(day): from then on they count as working days in SLA due times; "
            + "add the next year's (RUNBOOK, \"Holidays\")"
    }
}
