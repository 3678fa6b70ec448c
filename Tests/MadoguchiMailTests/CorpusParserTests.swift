import CorpusSupport
import Foundation
import MadoguchiMail
import Testing

/// Every mail of the shared corpus through the parser alone: no crash, the fields other projects'
/// tests assert, and no mojibake in Japanese mail. The same corpus goes through the real endpoint in
/// `InboundEmailCorpusTests`.
@Suite("The shared mail corpus, parsed")
struct CorpusParserTests {
    @Test("peer-asserted fields match")
    func corpus() throws {
        let directory = try Corpus.directory
        let entries = try Corpus.entries(in: directory)
        var failures: [Mismatch] = []
        var warnings: [Mismatch] = []
        var passedBySource: [String: (passed: Int, total: Int)] = [:]
        for entry in entries {
            let mail = ParsedMail(try entry.mailBytes(in: directory))
            let observation = Observation(mail)
            let mismatches = compare(observation, with: entry) + mojibakeFindings(observation, in: entry)
            failures += mismatches.filter { !$0.isDerived }
            warnings += mismatches.filter(\.isDerived)
            let passed = mismatches.allSatisfy(\.isDerived) ? 1 : 0
            passedBySource[entry.source, default: (0, 0)].passed += passed
            passedBySource[entry.source, default: (0, 0)].total += 1
        }
        for (source, counts) in passedBySource.sorted(by: { $0.key < $1.key }) {
            print("corpus \(source): \(counts.passed)/\(counts.total) mails with every asserted field matching")
        }
        print("corpus: \(failures.count) asserted mismatches, \(warnings.count) derived-field warnings")
        for failure in failures { print("  FAIL \(failure)") }
        for warning in warnings { print("  warn \(warning)") }
        // Known misses are listed with reasons in CorpusKnownMisses; anything else is a regression.
        let unexpected = failures.filter { !CorpusKnownMisses.explains($0) }
        #expect(unexpected.isEmpty, "\(unexpected.map(\.description).joined(separator: "\n"))")
        let mended = CorpusKnownMisses.list.filter { known in !failures.contains { $0.path == known.path && $0.field == known.field } }
        for entry in mended { print("  known miss now passes, remove it from KnownMisses.tsv: \(entry.path) \(entry.field)") }
    }
}

extension Observation {
    init(_ mail: ParsedMail) {
        let report = mail.deliveryReport?.recipients ?? []
        self.init(
            fromEmail: mail.from?.address, fromName: mail.from?.name, subject: mail.subject, body: mail.text,
            visible: mail.visibleText, quoted: mail.quotedText, html: mail.html,
            attachmentNames: mail.attachments.map(\.filename), isBounce: mail.classification == .bounce,
            isAutoReply: mail.classification == .autoReply,
            bounceRecipients: report.map(\.address),
            bounceReasons: report.map(\.reason), bounceStatuses: report.compactMap(\.status),
            messageID: mail.messageID, inReplyTo: mail.inReplyTo.first, references: mail.references)
    }
}
