import Foundation
import Testing
@testable import MadoguchiMail

/// The fuzzer's seed corpus (`Tests/Fuzz/corpus`), and every input it ever crashed on once fixed, read
/// the way `Tests/Fuzz/MailFuzzer` reads them: a crash found by fuzzing stays fixed.
@Suite("The fuzz corpus reads without a crash")
struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/corpus")

    @Test("every corpus input parses, and its bytes decode as header values")
    func replay() throws {
        let files = try FileManager.default.contentsOfDirectory(at: Self.corpus, includingPropertiesForKeys: nil)
        #expect(files.count >= 10)
        for file in files {
            let bytes = Array(try Data(contentsOf: file))
            let mail = ParsedMail(bytes)
            #expect(!mail.isUnreadable || bytes.isEmpty || !bytes.contains(UInt8(ascii: ":")), "\(file.lastPathComponent)")
            _ = (mail.visibleText, mail.classification, mail.attachments.map(\.content.count))
            _ = MailAddress.list(bytes)
            _ = HeaderText.decode(bytes)
            _ = MessageIDs.parse(bytes)
        }
    }
}
