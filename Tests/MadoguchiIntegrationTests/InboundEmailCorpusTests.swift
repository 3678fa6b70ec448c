import CorpusSupport
import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Synchronization
import Testing
import MadoguchiMail
@testable import Madoguchi

/// Every mail of the shared corpus through `POST /v1/inbound/email`: accepted without a 5xx, the raw
/// bytes kept byte for byte, and what was stored matching what other projects' tests assert (the
/// parser-level run, `CorpusParserTests`, prints the misses with their reasons).
@Suite("The shared mail corpus, through the endpoint", .timeLimit(.minutes(15)))
struct InboundEmailCorpusTests {
    @Test("every corpus mail is taken in and stored as its expectations say")
    func corpus() async throws {
        let directory = try Corpus.directory
        // Corpus files from different projects reuse Message-IDs; in one database the later ones would
        // rightly be replays of the first. Each round gets a fresh database and holds each id once.
        var rounds: [[(Corpus.Entry, [UInt8])]] = []
        var idsByRound: [Set<String>] = []
        for entry in try Corpus.entries(in: directory) {
            let bytes = try entry.mailBytes(in: directory)
            // The service's own notion of "the same mail": the Message-ID, else the bytes.
            let id = ParsedMail(bytes).messageID ?? SHA256.hash(data: bytes).description
            let round = idsByRound.firstIndex { !$0.contains(id) } ?? idsByRound.count
            if round == rounds.count { rounds.append([]); idsByRound.append([]) }
            rounds[round].append((entry, bytes))
            idsByRound[round].insert(id)
        }
        let tally = Mutex<(failures: [Mismatch], bySource: [String: (passed: Int, total: Int, withoutMessage: Int)])>(([], [:]))
        for round in rounds {
            try await TestApp.run { app in
                let gateway = try await app.keySecret(.gateway)
                for (entry, bytes) in round {
                    let response = try await app.postMail(gateway, bytes)
                    #expect([.created, .accepted].contains(response.status), "\(entry.path): \(response.status) \(response.text)")
                    guard response.status.code < 300 else { continue }
                    #expect(try await Self.storedCopies(app, bytes) == 1, "\(entry.path): raw bytes not kept")
                    let outcome = try response.json
                    let observation = try await Self.observe(app, outcome: outcome)
                    var mismatches = (compare(observation, with: entry) + mojibakeFindings(observation, in: entry)).filter { !$0.isDerived }
                    let madeMessage = outcome["message_id"] != nil
                    if !madeMessage {
                        // A bounce or report with no ticket makes no message: only its classification is there to compare.
                        mismatches = mismatches.filter { ["is_bounce", "is_auto_reply", "bounce_recipient", "bounce_recipients", "bounce_reasons", "bounce_status"].contains($0.field) }
                    }
                    tally.withLock { tally in
                        tally.failures += mismatches.filter { !CorpusKnownMisses.explains($0) }
                        var counts = tally.bySource[entry.source, default: (0, 0, 0)]
                        counts.total += 1
                        if mismatches.isEmpty { counts.passed += 1 }
                        if !madeMessage { counts.withoutMessage += 1 }
                        tally.bySource[entry.source] = counts
                    }
                }
            }
        }
        print("endpoint corpus: \(rounds.count) rounds (fresh databases) so that no two files share a Message-ID in one")
        let (failures, bySource) = tally.withLock { $0 }
        for (source, counts) in bySource.sorted(by: { $0.key < $1.key }) {
            print("endpoint corpus \(source): \(counts.passed)/\(counts.total) with every asserted field matching (\(counts.withoutMessage) made no message)")
        }
        #expect(failures.isEmpty, "\(failures.map(\.description).joined(separator: "\n"))")
    }

    static func storedCopies(_ app: TestApp, _ bytes: [UInt8]) async throws -> Int {
        let digest = ByteBuffer(bytes: SHA256.hash(data: bytes))
        return try await app.count("""
            SELECT count(*) FROM inbound_payloads WHERE sha256 = \(digest) AND body = \(ByteBuffer(bytes: bytes))
            """)
    }

    /// What was stored: the message row and its attachments, and the answer's bounce report.
    static func observe(_ app: TestApp, outcome: [String: Any]) async throws -> Observation {
        let recipients = (outcome["bounced_recipients"] as? [[String: Any]]) ?? []
        var observation = Observation(
            fromEmail: nil, fromName: nil, subject: nil, body: "", visible: "", quoted: "", html: nil, attachmentNames: [],
            isBounce: outcome["classification"] as? String == "bounce", isAutoReply: outcome["classification"] as? String == "auto_reply",
            bounceRecipients: recipients.compactMap { $0["address"] as? String }, bounceReasons: recipients.compactMap { $0["reason"] as? String },
            bounceStatuses: recipients.compactMap { $0["status"] as? String }, messageID: nil, inReplyTo: nil, references: [])
        guard let messageID = (outcome["message_id"] as? String).flatMap(UUID.init(uuidString:)) else { return observation }
        try await app.database.withConnection { connection in
            let rows = try await connection.query("""
                SELECT from_address, metadata->>'from_name', subject, body_text, coalesce(visible_text, ''), coalesce(quoted_text, ''), body_html,
                       email_message_id, in_reply_to, email_references
                FROM messages WHERE id = \(messageID)
                """, logger: TestCluster.logger)
            for try await (from, name, subject, body, visible, quoted, html, id, inReplyTo, references)
                in rows.decode((String?, String?, String?, String, String, String, String?, String?, String?, [String]).self)
            {
                observation.fromEmail = from; observation.fromName = name; observation.subject = subject; observation.body = body
                observation.visible = visible; observation.quoted = quoted; observation.html = html; observation.messageID = id
                observation.inReplyTo = inReplyTo; observation.references = references
            }
            let attachments = try await connection.query(
                "SELECT filename FROM attachments WHERE message_id = \(messageID) ORDER BY position", logger: TestCluster.logger)
            for try await name in attachments.decode(String.self) { observation.attachmentNames.append(name.isEmpty ? nil : name) }
        }
        return observation
    }
}
