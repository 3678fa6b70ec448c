import Testing
@testable import Madoguchi

@Suite("What a reply becomes on LINE")
struct ProviderTextTests {
    @Test("a push goes to a user id as stored, or to the group or room a conversation was known by; other chat identities to nobody")
    func pushTargets() {
        #expect(ProviderDelivery.linePushTarget("U4af4980629") == "U4af4980629")
        #expect(ProviderDelivery.linePushTarget("line:C1234567890abcdef") == "C1234567890abcdef")
        #expect(ProviderDelivery.linePushTarget("line:R1234567890abcdef") == "R1234567890abcdef")
        #expect(ProviderDelivery.linePushTarget("intercom:12345") == nil)
        #expect(ProviderDelivery.linePushTarget("line:U123") == nil)
        #expect(ProviderDelivery.linePushTarget("line:C1:x") == nil)
    }

    @Test("texts are cut at 5,000 UTF-16 units, as LINE counts, at a line break where one is near; at most five, the rest said to be left out")
    func texts() {
        #expect(ProviderDelivery.lineTexts("こんにちは") == ["こんにちは"])
        // 𠮷 is two UTF-16 units: 2,501 of them are one unit too many for one message.
        let wide = String(repeating: "𠮷", count: 2501)
        let split = ProviderDelivery.lineTexts(wide)
        #expect(split.count == 2 && split.allSatisfy { $0.utf16.count <= 5000 } && split.joined() == wide)
        let lines = (1...800).map { "行\($0)：ご確認ください" }.joined(separator: "\n")
        let byLines = ProviderDelivery.lineTexts(lines)
        #expect(byLines.allSatisfy { $0.utf16.count <= 5000 } && byLines.joined() == lines)
        #expect(byLines.dropLast().allSatisfy { $0.hasSuffix("\n") }, "cut after a line break")
        let long = ProviderDelivery.lineTexts(String(repeating: "あ", count: 30_000))
        #expect(long.count == 5 && long.allSatisfy { $0.utf16.count <= 5000 })
        #expect(long.last?.hasSuffix("…(以下省略)") == true)
    }
}
