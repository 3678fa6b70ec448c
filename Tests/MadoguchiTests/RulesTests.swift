import Foundation
import Testing
@testable import Madoguchi

@Suite("Rules: priority and routing")
struct RulesTests {
    static func rule(
        _ name: String, _ priority: Ticket.Priority? = nil, position: Int = 1, keywords: [String] = [], channels: [Channel] = [],
        categories: [String] = [], recipients: [String] = [], vip: Bool = false, queue: String? = nil, category: String? = nil,
        tags: [String] = []
    ) -> Rule {
        Rule(id: UUID(), name: name, position: position, keywords: keywords, channels: channels, categories: categories,
             recipients: recipients, vipOnly: vip, priority: priority, requiresApproval: false, queue: queue, category: category,
             tags: tags, requiredSkill: nil)
    }

    static let rules = [
        rule("クレーム", .urgent, keywords: ["クレーム", "至急"]),
        rule("返金", .high, keywords: ["返金", "届かない"]),
        rule("肌トラブル", .urgent, keywords: ["肌に合わない", "かぶれ"], channels: [.email, .webform]),
        rule("VIP", .high, vip: true),
        rule("卸", .low, categories: ["wholesale"]),
    ]

    static func subject(_ text: String, channel: Channel = .email, category: String? = nil, to recipients: [String] = [], vip: Bool = false)
        -> Rules.Subject
    {
        .init(subject: "", body: text, channel: channel, category: category, recipients: recipients, isVIP: vip)
    }

    @Test("the highest matching rule wins and says why", arguments: [
        ("商品が届かないので返金してください", Ticket.Priority.high, "rule 返金: keyword 返金"),
        ("至急！返金をお願いします", .urgent, "rule クレーム: keyword 至急"),
        ("化粧水が肌に合わないようです", .urgent, "rule 肌トラブル: keyword 肌に合わない, channel email"),
        ("ｸﾚｰﾑです", .urgent, "rule クレーム: keyword クレーム"),
    ])
    func matches(_ text: String, _ priority: Ticket.Priority, _ reason: String) {
        let match = Rules.evaluate(Self.rules, for: Self.subject(text)).priority
        #expect(match?.rule.priority == priority)
        #expect(match?.reason == reason)
    }

    @Test("at one position, rules run in code-point order of their names whatever order they come in; keywords are looked for at the top of a huge body")
    func orderAndReach() {
        let tied = [Self.rule("b-returns", position: 1, keywords: ["返品"], queue: "returns"), Self.rule("B-vip", position: 1, keywords: ["返品"], queue: "vip")]
        #expect(Rules.evaluate(tied, for: Self.subject("返品したい")).queue == "vip", "B (0x42) before b (0x62)")
        #expect(Rules.evaluate(tied.reversed(), for: Self.subject("返品したい")).queue == "vip")
        let top = "返品したい\n" + String(repeating: "あ", count: 1_000_000)
        #expect(Rules.evaluate(tied, for: Self.subject(top)).queue == "vip")
        let buried = String(repeating: "あ", count: Rules.searchedCharacters) + "返品"
        #expect(Rules.evaluate(tied, for: Self.subject(buried)).queue == nil)
    }

    @Test("every condition of a rule must hold")
    func conditions() {
        #expect(Rules.evaluate(Self.rules, for: Self.subject("肌に合わない", channel: .sms)).priority == nil)
        #expect(Rules.evaluate(Self.rules, for: Self.subject("こんにちは", vip: true)).priority?.rule.name == "VIP")
        #expect(Rules.evaluate(Self.rules, for: Self.subject("見積もり", category: "wholesale")).priority?.rule.priority == .low)
        #expect(Rules.evaluate(Self.rules, for: Self.subject("在庫はありますか")) == Rules.Outcome())
    }

    static let routing = [
        rule("返品 mailbox", position: 1, recipients: ["Returns@"], queue: "returns", tags: ["返品"]),
        rule("返品 words", position: 2, keywords: ["返品", "henpin"], queue: "returns", category: "返品・交換"),
        rule("wholesale desk", position: 3, keywords: ["卸"], queue: "wholesale", category: "卸"),
        rule("exchange follows category", position: 4, categories: ["返品・交換"], tags: ["交換"]),
    ]

    @Test("routing: a recipient mailbox at any domain, keywords full-width or not; the first rule to set a field wins, tags add up")
    func routes() {
        let mailbox = Rules.evaluate(Self.routing, for: Self.subject("こんにちは", to: ["RETURNS@shop.example"]))
        #expect(mailbox.queue == "returns")
        #expect(mailbox.routingReason == "rule 返品 mailbox: recipient returns@shop.example")
        #expect(Rules.evaluate(Self.routing, for: Self.subject("hi", to: ["returns-desk@shop.example"])).queue == nil)

        let wide = Rules.evaluate(Self.routing, for: Self.subject("ｈｅｎｐｉｎ希望、卸の件です"))
        #expect(wide.queue == "returns", "the earlier rule decides the conflict")
        #expect(wide.category == "返品・交換")
        #expect(wide.tags == ["交換"], "a later rule sees the category an earlier one set")
        #expect(wide.routing.map(\.rule.name) == ["返品 words", "wholesale desk", "exchange follows category"])

        let both = Rules.evaluate(Self.routing, for: Self.subject("返品します", to: ["returns@other.example"]))
        #expect(both.tags == ["返品", "交換"])
    }
}
