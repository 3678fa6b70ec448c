import Foundation
import HTTPTypes
import PostgresNIO
import Testing
@testable import Madoguchi

/// The response is RFC 9457 problem+json of `type` with `status`, a detail, and the request's id.
func expectProblem(
    _ response: some HTTPTestResponse, _ status: HTTPResponse.Status, _ type: String, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    #expect(response.status == status, "\(response.text)", sourceLocation: sourceLocation)
    #expect(response.headers[.contentType] == "application/problem+json", sourceLocation: sourceLocation)
    let body = try response.json
    #expect(body["type"] as? String == "https://madoguchi.dev/problems/\(type)", sourceLocation: sourceLocation)
    #expect(body["status"] as? Int == status.code, sourceLocation: sourceLocation)
    #expect((body["detail"] as? String)?.isEmpty == false, sourceLocation: sourceLocation)
    #expect(body["request_id"] as? String == response.headers[.xRequestID], sourceLocation: sourceLocation)
}

extension Database {
    /// The single integer a `SELECT count(*) …` returns (-1 when it returns no row).
    func count(_ query: PostgresQuery) async throws -> Int {
        try await withConnection { connection in
            let rows = try await connection.query(query, logger: TestCluster.logger)
            for try await count in rows.decode(Int.self) { return count }
            return -1
        }
    }
}

extension TestApp {
    func count(_ query: PostgresQuery) async throws -> Int {
        try await database.count(query)
    }

    /// The first column of every row, as text.
    func strings(_ query: PostgresQuery) async throws -> [String] {
        try await database.withConnection { connection in
            let rows = try await connection.query(query, logger: TestCluster.logger)
            var values: [String] = []
            for try await value in rows.decode(String.self) { values.append(value) }
            return values
        }
    }

    /// The types of the ticket's events, oldest first.
    func eventTypes(ticket: UUID) async throws -> [String] {
        try await database.withConnection { connection in
            let rows = try await connection.query("SELECT type FROM events WHERE ticket_id = \(ticket) ORDER BY id", logger: TestCluster.logger)
            var types: [String] = []
            for try await type in rows.decode(String.self) { types.append(type) }
            return types
        }
    }
}
