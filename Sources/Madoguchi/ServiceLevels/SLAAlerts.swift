import Foundation
import Logging
import PostgresNIO

/// Announces each SLA clock that crosses its warning point or its due time, once, as an event
/// (`ticket.sla_warning`, `ticket.sla_breached`): a dashboard or a chat notifier follows the feed (or
/// a webhook) instead of polling every ticket's `sla_state`. The only writer of `sla_alerts`
/// (migration 0086), which makes each announcement once however many workers look.
///
/// A clock is looked at while it runs: a response clock while the customer waits, the resolution
/// clock until the ticket is solved or closed, neither while the ticket is pending (a paused clock
/// moves its due time when the pause ends, and is announced then if it crosses the new one). A
/// crossing more than a day old when first seen (the feature switched on, a worker stopped for
/// longer) is not announced: the reports count it, and the feed is for what happens now.
struct SLAAlerts: Sendable {
    let logger: Logger

    /// At most this many announcements a round; the rest come in the next.
    static let batch = 500

    /// Records the crossings not yet announced, with their events, in one transaction. Returns how
    /// many were announced.
    @discardableResult
    func announce(in database: Database) async throws -> Int {
        try await database.withTransaction { connection in
            let rows = try await connection.run("""
                WITH crossed AS (
                    SELECT t.id AS ticket_id, t.customer_id, t.number,
                           CASE WHEN t.first_responded_at IS NULL THEN 'first_response' ELSE 'next_response' END AS clock,
                           CASE WHEN t.response_due_at <= now() THEN 'breach' ELSE 'warning' END AS kind,
                           CASE WHEN t.response_due_at <= now() THEN t.response_due_at ELSE t.response_warn_at END AS at,
                           t.response_due_at AS due_at
                    FROM tickets t
                    WHERE t.response_due_at > now() - interval '1 day' AND t.sla_paused_at IS NULL
                      AND (t.response_due_at <= now() OR t.response_warn_at <= now())
                    UNION ALL
                    SELECT t.id, t.customer_id, t.number, 'resolution',
                           CASE WHEN t.resolution_due_at <= now() THEN 'breach' ELSE 'warning' END,
                           CASE WHEN t.resolution_due_at <= now() THEN t.resolution_due_at ELSE t.resolution_warn_at END,
                           t.resolution_due_at
                    FROM tickets t
                    WHERE t.resolution_due_at > now() - interval '1 day' AND t.sla_paused_at IS NULL AND t.status NOT IN ('solved', 'closed')
                      AND (t.resolution_due_at <= now() OR t.resolution_warn_at <= now())
                ), due AS (
                    SELECT * FROM crossed c
                    WHERE c.at > now() - interval '1 day'
                      AND NOT EXISTS (SELECT FROM sla_alerts a WHERE a.ticket_id = c.ticket_id AND a.clock = c.clock AND a.kind = c.kind AND a.at = c.at)
                    ORDER BY c.at
                    LIMIT \(Self.batch)
                ), fresh AS (
                    INSERT INTO sla_alerts (ticket_id, clock, kind, at)
                    SELECT ticket_id, clock, kind, at FROM due
                    ON CONFLICT DO NOTHING
                    RETURNING ticket_id, clock, kind, at
                )
                SELECT f.ticket_id, d.customer_id, d.number, f.clock, f.kind, f.at, d.due_at
                FROM fresh f JOIN due d USING (ticket_id, clock, kind, at)
                ORDER BY f.at
                """, logger: logger)
            var crossings: [(UUID, UUID, Int64, String, String, Date, Date)] = []
            for try await row in rows.decode((UUID, UUID, Int64, String, String, Date, Date).self) { crossings.append(row) }
            let events = EventStore(logger: logger)
            for (ticketID, customerID, number, clock, kind, at, dueAt) in crossings {
                var data: [String: Any] = ["number": number, "clock": clock, "due_at": dueAt.rfc3339UTC]
                if kind == "warning" { data["warning_at"] = at.rfc3339UTC }
                try await events.record(kind == "breach" ? .ticketSLABreached : .ticketSLAWarning, ticketID: ticketID, customerID: customerID,
                                        actor: nil, data: data, on: connection)
            }
            // What no round can announce again: crossings more than a day old.
            try await connection.perform("""
                DELETE FROM sla_alerts WHERE ctid IN (SELECT ctid FROM sla_alerts WHERE at < now() - interval '2 days' LIMIT 1000)
                """, logger: logger)
            return crossings.count
        }
    }
}
