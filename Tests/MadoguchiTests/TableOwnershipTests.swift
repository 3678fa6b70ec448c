import Foundation
import Testing

/// One writer per table (DESIGN.md, README's layout): every `INSERT`, `UPDATE` and `DELETE` of a
/// table several use cases write sits in its store's files, so a change to how a ticket or a reply
/// is written is made, and reviewed, in one place.
@Suite("Table ownership")
struct TableOwnershipTests {
    /// Each table and the file-name prefixes of its store.
    static let owners: [String: [String]] = [
        "tickets": ["TicketStore"],
        "messages": ["MessageStore"],
        "replies": ["ReplyStore"],
        "outbox": ["OutboxStore"],
        "customers": ["CustomerStore"],
        "customer_identities": ["IdentityStore"],
        "events": ["EventStore"],
    ]

    /// Writes outside the owner, each for a reason written where it is.
    static let exceptions: Set<String> = [
        // The queue's pull writes its `ticket.claimed` in the claiming statement: one round trip.
        "TicketStore+Queue.swift events",
        // A migration step in Swift (0062), run once inside the migration's transaction.
        "EmailIdentitySpellings.swift customer_identities",
    ]

    @Test("every table with several writers is written only by its store")
    func oneWriterPerTable() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/Madoguchi")
        let files = try #require(FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil))
        let write = try Regex(#"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+([a-z_]+)\b"#)
        var offenders: [String] = []
        var excepted: Set<String> = []
        for case let file as URL in files where file.pathExtension == "swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let code = line.trimmingCharacters(in: .whitespaces)
                guard !code.hasPrefix("//"), !code.hasPrefix("--") else { continue }
                for match in line.matches(of: write) {
                    guard let table = match.output[1].substring.map(String.init), let owners = Self.owners[table] else { continue }
                    let name = file.lastPathComponent
                    if owners.contains(where: { name.hasPrefix($0) }) { continue }
                    if Self.exceptions.contains("\(name) \(table)") {
                        excepted.insert("\(name) \(table)")
                        continue
                    }
                    offenders.append("\(name):\(number + 1) writes \(table)")
                }
            }
        }
        #expect(offenders.isEmpty, "write through the table's store (\(Self.owners)): \(offenders)")
        // An exception no longer needed goes from the list.
        #expect(excepted == Self.exceptions, "exceptions that no longer occur: \(Self.exceptions.subtracting(excepted))")
    }
}
