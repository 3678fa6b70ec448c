import Foundation
import Logging
import PostgresNIO

public struct Template: Sendable {
    public var id: UUID
    public var name: String
    public var subject: String?
    public var body: String
    public var version: Int
    public var updatedBy: UUID?
    public var createdAt: Date
    public var updatedAt: Date

    static let columns = "id, name, subject, body, version, updated_by, created_at, updated_at"

    init(row: PostgresRow) throws {
        let row = row.makeRandomAccess()
        id = try row.value("id")
        name = try row.value("name")
        subject = try row.value("subject")
        body = try row.value("body")
        version = try row.value("version")
        updatedBy = try row.value("updated_by")
        createdAt = try row.value("created_at")
        updatedAt = try row.value("updated_at")
    }
}

/// The SQL behind templates. Every write also appends the written text to `template_versions`.
struct TemplateStore: Sendable {
    let logger: Logger

    func list(on connection: PostgresConnection) async throws -> [Template] {
        let rows = try await connection.run("SELECT \(unescaped: Template.columns) FROM templates WHERE deleted_at IS NULL ORDER BY name", logger: logger)
        var templates: [Template] = []
        for try await row in rows { templates.append(try Template(row: row)) }
        return templates
    }

    /// The version, its row locked until the caller's transaction ends (for `If-Match`); nil if none.
    /// FOR NO KEY UPDATE, as the write itself takes: the foreign-key checks of rows that refer to it
    /// (tickets, claims, events) do not wait on it.
    func lockedVersion(id: UUID, on connection: PostgresConnection) async throws -> Int64? {
        let rows = try await connection.run("SELECT version FROM templates WHERE id = \(id) AND deleted_at IS NULL FOR NO KEY UPDATE", logger: logger)
        for try await version in rows.decode(Int64.self) { return version }
        return nil
    }

    func template(id: UUID, on connection: PostgresConnection) async throws -> Template {
        let rows = try await connection.run("SELECT \(unescaped: Template.columns) FROM templates WHERE id = \(id) AND deleted_at IS NULL", logger: logger)
        for try await row in rows { return try Template(row: row) }
        throw Problem.notFound("There is no template \(id.uuidString.lowercased()).")
    }

    /// Creates (id nil) or replaces a template; in the caller's transaction.
    func save(id: UUID?, name: String, subject: String?, body: String, by agentID: UUID, on connection: PostgresConnection) async throws -> Template {
        let template: Template
        do {
            let rows: PostgresRowSequence
            if let id {
                rows = try await connection.run("""
                    UPDATE templates SET name = \(name), subject = \(subject), body = \(body), version = version + 1,
                        updated_by = \(agentID), updated_at = now()
                    WHERE id = \(id) AND deleted_at IS NULL
                    RETURNING \(unescaped: Template.columns)
                    """, logger: logger)
            } else {
                rows = try await connection.run("""
                    INSERT INTO templates (name, subject, body, updated_by) VALUES (\(name), \(subject), \(body), \(agentID))
                    RETURNING \(unescaped: Template.columns)
                    """, logger: logger)
            }
            var saved: Template?
            for try await row in rows { saved = try Template(row: row) }
            guard let saved else { throw Problem.notFound("There is no template \(id?.uuidString.lowercased() ?? "").") }
            template = saved
        } catch where error.sqlState == .uniqueViolation {
            throw Problem(Problem.Kind(rawValue: "name-taken"), status: .conflict, title: "Name taken", detail: "Another template is called \(name).")
        }
        try await connection.perform("""
            INSERT INTO template_versions (template_id, version, name, subject, body, written_by)
            VALUES (\(template.id), \(template.version), \(name), \(subject), \(body), \(agentID))
            """, logger: logger)
        return template
    }

    /// Removes the template (its row and versions stay, marked); its name, or nil when there is no
    /// such template left to remove.
    func delete(id: UUID, by agentID: UUID, on connection: PostgresConnection) async throws -> String? {
        let rows = try await connection.run("""
            UPDATE templates SET deleted_at = now(), deleted_by = \(agentID), updated_at = now()
            WHERE id = \(id) AND deleted_at IS NULL
            RETURNING name
            """, logger: logger)
        for try await name in rows.decode(String.self) { return name }
        return nil
    }

    struct Version: Sendable {
        var version: Int
        var name: String
        var subject: String?
        var body: String
        var writtenBy: UUID?
        var writtenAt: Date
    }

    /// Every text the template has had, newest first; nil when there is no such template. A removed
    /// template's versions stay readable: what replies drafted from it said.
    func versions(of id: UUID, on connection: PostgresConnection) async throws -> [Version]? {
        let rows = try await connection.run("""
            SELECT v.version, v.name, v.subject, v.body, v.written_by, v.written_at
            FROM templates t LEFT JOIN template_versions v ON v.template_id = t.id
            WHERE t.id = \(id)
            ORDER BY v.version DESC
            """, logger: logger)
        var versions: [Version]?
        for try await (version, name, subject, body, writtenBy, writtenAt) in rows.decode((Int?, String?, String?, String?, UUID?, Date?).self) {
            var found = versions ?? []
            if let version, let name, let body, let writtenAt {
                found.append(.init(version: version, name: name, subject: subject, body: body, writtenBy: writtenBy, writtenAt: writtenAt))
            }
            versions = found
        }
        return versions
    }

    /// What a template's variables stand for on `ticketID`, for `agentID`.
    func values(ticketID: UUID, agentID: UUID, order: [String: String], on connection: PostgresConnection) async throws -> [String: String?] {
        let rows = try await connection.run("""
            SELECT t.number, t.subject, c.display_name, a.display_name
            FROM tickets t JOIN customers c ON c.id = t.customer_id, agents a
            WHERE t.id = \(ticketID) AND a.id = \(agentID)
            """, logger: logger)
        for try await (number, subject, customerName, agentName) in rows.decode((Int64, String, String?, String).self) {
            var values: [String: String?] = [
                "customer.name": customerName,
                "ticket.number": String(number),
                // On one line: a template's subject may hold it, and a subject is one header line.
                "ticket.subject": subject.isEmpty ? nil : Text.oneLine(subject),
                "agent.name": agentName,
            ]
            for (field, value) in order { values["order.\(field)"] = value }
            return values
        }
        throw Problem.validationFailed([.init(pointer: "/ticket_id", message: "there is no ticket \(ticketID.uuidString.lowercased())")])
    }
}
