import Foundation
import Logging
import Madoguchi
import PostgresNIO

/// The service's own SQL for a kind of request, replayed through pgbench: the yardstick that says how
/// much of a request's cost is the database's (`service / own SQL` is the cost of everything else:
/// HTTP, parsing, Swift, round trips).
///
/// Nothing is copied by hand. While the service answers real requests, the server logs every
/// statement with its parameters (`log_statement = 'all'`); each transaction whose first statement
/// is the request's (for ingest, storing the raw payload) becomes one pgbench script, the parameters
/// written in as literals. Two kinds of value must differ on every replay, or the replay would not do
/// the same work (or would break a unique index):
/// - ids the transaction's own inserts generated (`INSERT … RETURNING id`, later passed back as
///   parameters): the replay keeps them with `\gset` and passes the new ones on;
/// - the request's unique tokens (the Message-ID, the provider's message id), matched by the
///   benchmark's pattern, and the identity a first contact creates: each replay appends a random
///   number to them, so a first contact stays a first contact.
/// Everything else (the API key lookup, cached a second, and the coalesced NOTIFY after the commit)
/// runs outside the request's transaction and is left out, so the replay is the least the database
/// must do for these statements. pgbench runs them as prepared statements: parsing and planning,
/// which the service pays on every request, are not part of the yardstick.
struct OwnSQLReplay: Sendable {
    struct Statement: Sendable {
        var sql: String
        /// Text as the server logged it; nil is SQL NULL.
        var parameters: [String?]
        /// The parameters' types, when known.
        var types: [String] = []
    }

    /// The statements between one BEGIN and its COMMIT.
    struct Transaction: Sendable {
        var statements: [Statement]
    }

    /// Scripts kept (pgbench takes at most 128 script files).
    static let maximumScripts = 100

    /// The transactions `body` makes the service run whose first statement contains
    /// `firstStatement`, read back from the server log.
    static func capture(
        cluster: EmbeddedPostgres, database: Database, logger: Logger, firstStatement: String, during body: () async throws -> Void
    ) async throws -> [Transaction] {
        let start = (try? FileManager.default.attributesOfItem(atPath: cluster.logFile)[.size] as? Int) ?? 0
        try await setLogging(on: true, database, logger: logger)
        do {
            try await body()
        } catch {
            try? await setLogging(on: false, database, logger: logger)
            throw error
        }
        try await setLogging(on: false, database, logger: logger)
        guard let handle = FileHandle(forReadingAtPath: cluster.logFile) else { throw BenchmarkError("cannot read \(cluster.logFile)") }
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(start))
        let log = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
        return transactions(inLog: log, firstStatement: firstStatement)
    }

    private static func setLogging(on: Bool, _ database: Database, logger: Logger) async throws {
        try await database.withConnection { connection in
            if on {
                try await connection.query("ALTER SYSTEM SET log_statement = 'all'", logger: logger)
                try await connection.query("ALTER SYSTEM SET log_line_prefix = '%m [%p] '", logger: logger)
                try await connection.query("ALTER SYSTEM SET log_parameter_max_length = -1", logger: logger)
            } else {
                try await connection.query("ALTER SYSTEM RESET log_statement", logger: logger)
            }
            try await connection.query("SELECT pg_reload_conf()", logger: logger)
        }
        // Every backend rereads the settings before its next command; give the idle ones a moment.
        try await Task.sleep(for: .milliseconds(300))
    }

    /// What the benchmarks' requests make unique (so that none is a replay of another): Message-IDs,
    /// LINE webhook event and message ids, Twilio message SIDs, web-form submission ids.
    nonisolated(unsafe) static let benchmarkTokens = /bench-[a-z0-9]+-\d+(?:@bench)?|m-[a-z0-9]+-\d+|SMbench[a-z0-9]+x\d+/

    /// What a kind of request asks of the database: pgbench scripts, and its round trips.
    struct Captured: Sendable {
        var scripts: [String]
        /// Statements per request's transaction, BEGIN and COMMIT included (each is one round trip),
        /// averaged over every request captured: the figure a change to the statements moves.
        var roundTrips: Double
    }

    /// Captures the ingest transactions of one client sending `make`'s requests for a second, as
    /// pgbench scripts; `make` should spread its requests over everything the benchmark sends.
    static func captureIngest(
        port: Int, cluster: EmbeddedPostgres, database: Database, logger: Logger,
        _ make: @escaping @Sendable (_ sequence: Int) throws -> BenchmarkSupport.Request
    ) async throws -> Captured {
        let transactions = try await capture(cluster: cluster, database: database, logger: logger, firstStatement: "INSERT INTO inbound_payloads") {
            _ = try await BenchmarkSupport.drive(port: port, clients: 1, seconds: 1) { _, sequence in try make(sequence) }
        }
        let statements = transactions.reduce(0) { $0 + $1.statements.count + 2 }
        return Captured(scripts: try await scripts(for: transactions, uniqueTokens: benchmarkTokens, database: database, logger: logger),
                        roundTrips: Double(statements) / Double(max(transactions.count, 1)))
    }

    // MARK: - Reading the log

    /// One logged message: its process and text, continuation lines joined back.
    private struct Entry {
        var pid: Substring
        var level: Substring
        var text: String
    }

    private static func entries(_ log: String) -> [Entry] {
        var entries: [Entry] = []
        for line in log.split(separator: "\n", omittingEmptySubsequences: false) {
            // The server writes a tab after every newline inside a message.
            if line.hasPrefix("\t"), !entries.isEmpty {
                entries[entries.count - 1].text += "\n" + line.dropFirst()
                continue
            }
            // "2026-12-03 06:23:05.911 UTC [27581] LOG:  statement: …"
            guard let open = line.firstIndex(of: "["), let close = line[open...].firstIndex(of: "]"),
                  let colon = line[close...].range(of: ":  ")
            else { continue }
            let pid = line[line.index(after: open)..<close]
            let level = line[line.index(close, offsetBy: 2)..<colon.lowerBound]
            entries.append(Entry(pid: pid, level: level, text: String(line[colon.upperBound...])))
        }
        return entries
    }

    static func transactions(inLog log: String, firstStatement: String) -> [Transaction] {
        var open: [Substring: [Statement]] = [:]
        var finished: [Transaction] = []
        var last: (pid: Substring, index: Int)?
        for entry in entries(log) {
            if entry.level == "DETAIL", entry.text.hasPrefix("parameters: "), let (pid, index) = last, pid == entry.pid, open[pid] != nil {
                open[pid]![index].parameters = parameters(entry.text.dropFirst("parameters: ".count))
                continue
            }
            guard entry.level == "LOG", let sql = statementText(entry.text) else { continue }
            let verb = sql.trimmingCharacters(in: .whitespacesAndNewlines).uppercased()
            switch verb {
            case "BEGIN", "START TRANSACTION":
                open[entry.pid] = []
                last = nil
            case "COMMIT", "END":
                if let statements = open.removeValue(forKey: entry.pid), let first = statements.first, first.sql.contains(firstStatement) {
                    finished.append(Transaction(statements: statements))
                }
                last = nil
            case "ROLLBACK":
                open[entry.pid] = nil
                last = nil
            default:
                guard open[entry.pid] != nil else { continue }
                open[entry.pid]!.append(Statement(sql: sql, parameters: []))
                last = (entry.pid, open[entry.pid]!.count - 1)
            }
        }
        return finished
    }

    /// The statement of "statement: …" (simple protocol) or "execute <unnamed>: …" (extended).
    private static func statementText(_ text: String) -> String? {
        if text.hasPrefix("statement: ") { return String(text.dropFirst("statement: ".count)) }
        guard text.hasPrefix("execute "), let colon = text.range(of: ": ") else { return nil }
        return String(text[colon.upperBound...])
    }

    /// `$1 = 'a', $2 = NULL, $3 = 'it''s'` as the server writes it.
    static func parameters(_ text: Substring) -> [String?] {
        var values: [Int: String?] = [:]
        var rest = text[...]
        while let dollar = rest.firstIndex(of: "$") {
            rest = rest[rest.index(after: dollar)...]
            let digits = rest.prefix { $0.isNumber }
            guard let number = Int(digits) else { break }
            rest = rest.dropFirst(digits.count)
            guard rest.hasPrefix(" = ") else { break }
            rest = rest.dropFirst(3)
            if rest.hasPrefix("NULL") {
                values[number] = .some(nil)
                rest = rest.dropFirst(4)
                continue
            }
            guard rest.first == "'" else { break }
            rest = rest.dropFirst()
            var value = ""
            while let quote = rest.firstIndex(of: "'") {
                value += rest[..<quote]
                rest = rest[rest.index(after: quote)...]
                if rest.first == "'" {
                    value += "'"
                    rest = rest.dropFirst()
                } else {
                    break
                }
            }
            values[number] = .some(value)
        }
        let count = values.keys.max() ?? 0
        return (0..<count).map { values[$0 + 1] ?? nil }
    }

    // MARK: - Writing the scripts

    /// pgbench scripts for up to `maximumScripts` of `transactions`, spread over all of them.
    static func scripts(
        for transactions: [Transaction], uniqueTokens: Regex<Substring>, database: Database, logger: Logger
    ) async throws -> [String] {
        guard !transactions.isEmpty else { throw BenchmarkError("no request's transaction was found in the server log") }
        let step = max(1, (transactions.count + maximumScripts - 1) / maximumScripts)
        var scripts: [String] = []
        // Most statements recur in every transaction: each text is prepared once.
        var typesOf: [String: [String]] = [:]
        for index in stride(from: 0, to: transactions.count, by: step) {
            let transaction = transactions[index]
            let generated = try await generatedIDs(in: transaction, database: database, logger: logger)
            var typed = transaction
            for position in typed.statements.indices {
                let sql = typed.statements[position].sql
                if typesOf[sql] == nil { typesOf[sql] = try await parameterTypes(of: sql, database: database, logger: logger) }
                typed.statements[position].types = typesOf[sql]!
            }
            scripts.append(script(for: typed, generated: generated, uniqueTokens: uniqueTokens))
        }
        return scripts
    }

    /// The types PostgreSQL gives the statement's parameters when none is declared, as a literal
    /// gets: what an expression standing in for one is cast to (`'a' || 'b'` is text, which a
    /// `text[]` or `jsonb` column would refuse).
    static func parameterTypes(of sql: String, database: Database, logger: Logger) async throws -> [String] {
        guard sql.contains("$") else { return [] }
        return try await database.withConnection { connection in
            do {
                try await connection.query(PostgresQuery(unsafeSQL: "PREPARE own_sql_types AS " + sql), logger: logger)
            } catch {
                return []
            }
            let rows = try await connection.query(
                "SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = 'own_sql_types'", logger: logger)
            var types: [String] = []
            for try await found in rows.decode([String].self) { types = found }
            try await connection.query("DEALLOCATE own_sql_types", logger: logger)
            return types
        }
    }

    /// For each id one of the transaction's own inserts returned and a later statement passed back:
    /// the insert's position. Found by looking the value up in the inserted table.
    static func generatedIDs(in transaction: Transaction, database: Database, logger: Logger) async throws -> [String: Int] {
        var generated: [String: Int] = [:]
        var seen = Set<String>()
        try await database.withConnection { connection in
            for (position, statement) in transaction.statements.enumerated() {
                seen.formUnion(statement.parameters.compactMap { $0 })
                guard let table = insertedTable(statement.sql), statement.sql.range(of: "RETURNING", options: .caseInsensitive) != nil,
                      try await hasUUIDKey(table, on: connection, logger: logger)
                else { continue }
                let later = Set(transaction.statements[(position + 1)...].flatMap { $0.parameters.compactMap { $0 } })
                    .filter { UUID(uuidString: $0) != nil && !seen.contains($0) && generated[$0] == nil }
                for value in later.sorted() {
                    let rows = try await connection.query(
                        PostgresQuery(unsafeSQL: "SELECT EXISTS (SELECT 1 FROM \(table) WHERE id = $1)", binds: try binds(UUID(uuidString: value)!)),
                        logger: logger)
                    for try await exists in rows.decode(Bool.self) where exists { generated[value] = position }
                }
            }
        }
        return generated
    }

    private static func hasUUIDKey(_ table: String, on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.query("""
            SELECT EXISTS (SELECT 1 FROM information_schema.columns
                           WHERE table_schema = current_schema() AND table_name = \(table) AND column_name = 'id' AND data_type = 'uuid')
            """, logger: logger)
        for try await exists in rows.decode(Bool.self) { return exists }
        return false
    }

    private static func binds(_ id: UUID) throws -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(id)
        return bindings
    }

    /// `INSERT INTO tickets (…` → "tickets"; also inside a `WITH` (the statement returns its ids).
    private static func insertedTable(_ sql: String) -> String? {
        guard let insert = sql.range(of: "INSERT INTO ", options: .caseInsensitive) else { return nil }
        let table = sql[insert.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" }
        return table.isEmpty ? nil : String(table)
    }

    static func script(for transaction: Transaction, generated: [String: Int], uniqueTokens: Regex<Substring>) -> String {
        let identities = newIdentities(in: transaction)
        var script = "\\set unique random(1, 9000000000000000)\nBEGIN;\n"
        let returning = Set(generated.values)
        for (position, statement) in transaction.statements.enumerated() {
            let sql = substitute(statement.sql) { number in
                guard number >= 1, number <= statement.parameters.count, let value = statement.parameters[number - 1] else { return "NULL" }
                let type = number <= statement.types.count ? statement.types[number - 1] : nil
                // Typed: pgbench passes variables as parameters of no declared type.
                if let source = generated[value] { return "CAST(:s\(source)_id AS \(type ?? "uuid"))" }
                let written = literal(value, uniqueTokens: uniqueTokens, values: identities)
                // An expression (a token made unique) is text; a plain literal takes its type from where it stands.
                guard written.hasPrefix("("), let type else { return written }
                return "CAST(\(written) AS \(type))"
            }
            script += sql + (returning.contains(position) ? " \\gset s\(position)_\n" : ";\n")
        }
        return script + "COMMIT;\n"
    }

    /// `sql` with every `$n` replaced.
    private static func substitute(_ sql: String, _ replacement: (Int) -> String) -> String {
        var result = ""
        var rest = sql[...]
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[..<dollar]
            let digits = rest[rest.index(after: dollar)...].prefix { $0.isNumber }
            if let number = Int(digits) {
                result += replacement(number)
            } else {
                result += "$"
            }
            rest = rest[rest.index(dollar, offsetBy: 1 + digits.count)...]
        }
        return result + rest
    }

    /// A quoted literal; the request's unique tokens (and `values`) get the replay's random number appended.
    private static func literal(_ value: String, uniqueTokens: Regex<Substring>, values: [String]) -> String {
        /// pgbench takes every `:name` in a statement for a variable, inside quotes too (a time, a
        /// Message-ID, JSON): a colon is written as a Unicode escape, which is still a plain literal.
        func quoted(_ text: some StringProtocol) -> String {
            let escaped = text.replacingOccurrences(of: "'", with: "''")
            guard escaped.contains(":") else { return "'" + escaped + "'" }
            return "U&'" + escaped.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ":", with: "\\003A") + "'"
        }
        var found = value.matches(of: uniqueTokens).map(\.range)
        for unique in values where !unique.isEmpty { found += value.ranges(of: unique) }
        guard !found.isEmpty else { return quoted(value) }
        var parts: [String] = []
        var rest = value[...]
        for range in found.sorted(by: { $0.lowerBound < $1.lowerBound }) where range.lowerBound >= rest.startIndex {
            parts.append(quoted(value[rest.startIndex..<range.upperBound] + "."))
            parts.append("CAST(:unique AS text)")
            rest = value[range.upperBound...]
        }
        parts.append(quoted(rest))
        return "(" + parts.joined(separator: " || ") + ")"
    }

    /// A first contact's new identities (`INSERT INTO customer_identities`, whose third and fourth
    /// parameters are the values and their raw spellings, as arrays) must be new on every replay too,
    /// or the replay breaks their unique index.
    static func newIdentities(in transaction: Transaction) -> [String] {
        transaction.statements.filter { $0.sql.hasPrefix("INSERT INTO customer_identities") }
            .flatMap { $0.parameters.dropFirst(2).prefix(2).compactMap { $0 }.flatMap(arrayElements) }
    }

    /// The elements of an array literal as the server logs it (`{a,"b c"}`); a plain value as itself.
    static func arrayElements(_ literal: String) -> [String] {
        guard literal.hasPrefix("{"), literal.hasSuffix("}") else { return [literal] }
        var elements: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for character in literal.dropFirst().dropLast() {
            if escaped { current.append(character); escaped = false; continue }
            switch character {
            case "\\" where quoted: escaped = true
            case "\"": quoted.toggle()
            case "," where !quoted: elements.append(current); current = ""
            default: current.append(character)
            }
        }
        elements.append(current)
        return elements.filter { !$0.isEmpty && $0 != "NULL" }
    }
}
