import Foundation
import Logging
import PostgresNIO

/// A team's inbox ("general", "returns"): the SLA policy of tickets routed to it, how its tickets
/// find an agent, and (read-only here: membership is the agents' `queues`) who works it.
struct WorkQueue: Sendable {
    enum AutoAssign: String, Sendable, CaseIterable {
        case off
        case roundRobin = "round_robin"
        case balanced
    }

    var name: String
    var description: String
    var slaPolicyID: UUID?
    var calendarID: UUID?
    var autoAssign: AutoAssign
    var members: [UUID]
    /// New and open tickets nobody is assigned to or holds.
    var waiting: Int
    var version: Int64
    var createdAt: Date
    var updatedAt: Date

    static let columns = """
        q.name, q.description, q.sla_policy_id, (SELECT p.calendar_id FROM sla_policies p WHERE p.id = q.sla_policy_id) AS calendar_id,
        q.auto_assign,
        ARRAY(SELECT a.id FROM agents a WHERE a.active AND q.name = ANY (a.queues) ORDER BY a.display_name, a.id) AS members,
        (SELECT count(*) FROM tickets t
         WHERE t.queue = q.name AND t.assignee_id IS NULL AND t.claim_agent_id IS NULL AND t.status IN ('new', 'open')) AS waiting,
        q.version, q.created_at, q.updated_at
        """

    init(row: PostgresRow) throws {
        let row = row.makeRandomAccess()
        name = try row.value("name")
        description = try row.value("description")
        slaPolicyID = try row.value("sla_policy_id")
        calendarID = try row.value("calendar_id")
        autoAssign = try Ticket.enumeration(row.value("auto_assign"))
        members = try row.value("members")
        waiting = Int(try row.value("waiting") as Int64)
        version = try row.value("version")
        createdAt = try row.value("created_at")
        updatedAt = try row.value("updated_at")
    }
}

/// The SQL behind queues.
struct QueueStore: Sendable {
    let logger: Logger

    /// Where every ticket starts, and the one queue that cannot be removed.
    static let general = "general"

    func list(on connection: PostgresConnection) async throws -> [WorkQueue] {
        let rows = try await connection.run("SELECT \(unescaped: WorkQueue.columns) FROM queues q ORDER BY q.name", logger: logger)
        var queues: [WorkQueue] = []
        for try await row in rows { queues.append(try WorkQueue(row: row)) }
        return queues
    }

    /// The version, its row locked until the caller's transaction ends (for `If-Match`); nil if none.
    /// FOR NO KEY UPDATE, as the write itself takes: the foreign-key checks of rows that refer to it
    /// (tickets, claims, events) do not wait on it.
    func lockedVersion(_ name: String, on connection: PostgresConnection) async throws -> Int64? {
        let rows = try await connection.run("SELECT version FROM queues WHERE name = \(name) FOR NO KEY UPDATE", logger: logger)
        for try await version in rows.decode(Int64.self) { return version }
        return nil
    }

    func queue(_ name: String, on connection: PostgresConnection) async throws -> WorkQueue {
        let rows = try await connection.run("SELECT \(unescaped: WorkQueue.columns) FROM queues q WHERE q.name = \(name)", logger: logger)
        for try await row in rows { return try WorkQueue(row: row) }
        throw Self.notFound(name)
    }

    /// The names among `names` that are no queue.
    func unknown(_ names: [String], on connection: PostgresConnection) async throws -> [String] {
        let rows = try await connection.run("""
            SELECT n FROM unnest(\(names)::text[]) AS n WHERE NOT EXISTS (SELECT 1 FROM queues WHERE name = n)
            """, logger: logger)
        var unknown: [String] = []
        for try await name in rows.decode(String.self) { unknown.append(name) }
        return unknown
    }

    func create(name: String, description: String, slaPolicyID: UUID?, autoAssign: WorkQueue.AutoAssign, on connection: PostgresConnection)
        async throws -> WorkQueue
    {
        do {
            let rows = try await connection.run("""
                INSERT INTO queues (name, description, sla_policy_id, auto_assign)
                VALUES (\(name), \(description), \(slaPolicyID), \(autoAssign.rawValue))
                RETURNING name
                """, logger: logger)
            for try await _ in rows.decode(String.self) {}
        } catch where error.sqlState == .uniqueViolation {
            throw Problem(Problem.Kind(rawValue: "name-taken"), status: .conflict, title: "Name taken", detail: "There is a queue \(name) already.")
        } catch where error.sqlState == .foreignKeyViolation {
            throw Self.unknownPolicy(slaPolicyID)
        }
        return try await queue(name, on: connection)
    }

    /// Changes the fields given; `clearPolicy` puts tickets routed here back on the default policy.
    func update(
        _ name: String, description: String?, slaPolicyID: UUID?, clearPolicy: Bool, autoAssign: WorkQueue.AutoAssign?,
        on connection: PostgresConnection
    ) async throws -> WorkQueue {
        // Nothing asked for: no new version (it would fail other writers' If-Match with nothing changed).
        if description == nil && slaPolicyID == nil && !clearPolicy && autoAssign == nil {
            return try await queue(name, on: connection)
        }
        do {
            let rows = try await connection.run("""
                UPDATE queues
                SET description = coalesce(\(description), description),
                    sla_policy_id = CASE WHEN \(clearPolicy) THEN NULL ELSE coalesce(\(slaPolicyID), sla_policy_id) END,
                    auto_assign = coalesce(\(autoAssign?.rawValue), auto_assign),
                    version = version + 1, updated_at = now()
                WHERE name = \(name)
                RETURNING name
                """, logger: logger)
            var found = false
            for try await _ in rows.decode(String.self) { found = true }
            guard found else { throw Self.notFound(name) }
        } catch where error.sqlState == .foreignKeyViolation {
            throw Self.unknownPolicy(slaPolicyID)
        }
        return try await queue(name, on: connection)
    }

    /// Removes a queue nothing refers to: no ticket (open or not, so history keeps its queue), no
    /// rule, no agent. Anything else is a 409 that says what still uses it.
    func delete(_ name: String, on connection: PostgresConnection) async throws {
        guard name != Self.general else { throw Self.inUse(name, "every ticket starts there") }
        let rows = try await connection.run("""
            SELECT EXISTS (SELECT 1 FROM queues WHERE name = \(name)),
                   (SELECT count(*) FROM agents WHERE active AND \(name) = ANY (queues))
            """, logger: logger)
        for try await (exists, agents) in rows.decode((Bool, Int64).self) {
            guard exists else { throw Self.notFound(name) }
            guard agents == 0 else { throw Self.inUse(name, "\(agents) agent(s) work in it") }
        }
        do {
            let rows = try await connection.run("DELETE FROM queues WHERE name = \(name) RETURNING name", logger: logger)
            for try await _ in rows.decode(String.self) {}
        } catch where error.sqlState == .foreignKeyViolation {
            throw Self.inUse(name, "tickets or rules name it")
        }
    }

    static func notFound(_ name: String) -> Problem { Problem.notFound("There is no queue \(name).") }

    static func unknownQueue(_ name: String, pointer: String) -> Problem {
        Problem.validationFailed([.init(pointer: pointer, message: "there is no queue \(name); create it with POST /v1/queues")])
    }

    static func unknownPolicy(_ id: UUID?) -> Problem {
        Problem.validationFailed([.init(pointer: "/sla_policy_id", message: "there is no SLA policy \(id?.lowercased ?? "")")])
    }

    static func inUse(_ name: String, _ why: String) -> Problem {
        Problem(Problem.Kind(rawValue: "queue-in-use"), status: .conflict, title: "Queue in use", detail: "Queue \(name) cannot be removed: \(why).")
    }
}
