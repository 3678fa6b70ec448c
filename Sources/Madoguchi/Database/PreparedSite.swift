import Logging
import PostgresNIO
import Synchronization

/// A statement every request of the hot path runs (ingest's payload, ticket and message inserts),
/// written where it is used as any other `PostgresQuery`, but parsed and planned once per connection
/// as a named prepared statement instead of on every request. With pgbench replaying ingest's own
/// SQL, prepared statements commit 1.2–1.5× the mails of the same statements parsed every time.
///
/// A site is a caseless enum naming one place in the code. Its text is the one the first execution
/// brings (the interpolation makes the same `$1 … $n` text every time); a later execution bringing
/// another text runs as an ordinary statement, logged, rather than under a name that means something
/// else.
///
/// The server infers the parameters' types from the statement (a prepared statement declares none),
/// so a parameter given a type by a cast must be cast from text, `\(json)::text::jsonb`: cast
/// straight to jsonb, the parameter would be jsonb, whose binary form is not the text sent.
protocol PreparedSite {
    static var name: String { get }
}

/// The texts sites were first run with.
private let preparedSiteTexts = Mutex<[ObjectIdentifier: String]>([:])

private struct PreparedSiteStatement<Site: PreparedSite>: PostgresPreparedStatement {
    static var name: String { Site.name }
    static var sql: String { preparedSiteTexts.withLock { $0[ObjectIdentifier(Site.self)] } ?? "" }
    typealias Row = PostgresRow

    let bindings: PostgresBindings

    func makeBindings() throws -> PostgresBindings { bindings }
    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

extension PostgresConnection {
    /// `query` run as the prepared statement of `site`; its rows (a hot statement returns a few).
    ///
    /// PostgresNIO 1.33 keeps a failed preparation for the connection's life: every later use of the
    /// name on it fails the same way. A valid statement fails to prepare inside a transaction already
    /// aborted (SQLSTATE 25P02, which the service does not continue), or when it cannot lock a table
    /// or runs out of time (a migration holding a lock). So after any server error but those only
    /// execution raises (data 22, integrity 23 — the races callers settle —, rollback 40), the
    /// connection is closed and the pool replaces it, instead of failing each request that gets it.
    func rows<Site: PreparedSite>(
        _ query: PostgresQuery, preparedAs site: Site.Type, logger: Logger, file: String = #fileID, line: Int = #line
    ) async throws -> [PostgresRow] {
        let key = ObjectIdentifier(site)
        let same = preparedSiteTexts.withLock { texts -> Bool in
            if let known = texts[key] { return known == query.sql }
            texts[key] = query.sql
            return true
        }
        var rows: [PostgresRow] = []
        guard same else {
            logger.warning("a prepared site ran another text; ran unprepared", metadata: ["site": "\(site.name)"])
            for try await row in try await run(query, logger: logger, file: file, line: line) { rows.append(row) }
            return rows
        }
        do {
            for try await row in try await run(PreparedSiteStatement<Site>(bindings: query.binds), logger: logger, file: file, line: line) {
                rows.append(row)
            }
        } catch {
            if error.mayComeFromPreparing { try? await close() }
            throw error
        }
        return rows
    }
}
