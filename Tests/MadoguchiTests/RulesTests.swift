import Foundation
import Testing
@testable import Madoguchi

@Suite("Priority rules")
struct PriorityRulesTests {
    static func rule(_ name: String, _ priority: Ticket.Priority, keywords: [String] = [], channels: [Channel] = [], categories: [String] = [], vip: Bool = false) -> PriorityRule {
        PriorityRule(id: UUID(), name: name, priority: priority, keywords: keywords, channels: channels, categories: categories, vipOnly: vip, requiresApproval: false)
    }

    static let rules = [
        rule("クレーム", .urgent, keywords: ["クレーム", "至急"]),
        rule("返金", .high, keywords: ["返金", "届かない"]),
        rule("肌トラブル", .urgent, keywords: ["肌に合わない", "かぶれ"], channels: [.email, .webform]),
        rule("VIP", .high, vip: true),
        rule("卸", .low, categories: ["wholesale"]),
    ]

    static func subject(_ text: String, channel: Channel = .email, category: String? = nil, vip: Bool = false) -> PriorityRules.Subject {
        .init(subject: "", body: text, channel: channel, category: category, isVIP: vip)
    }

    @Test("the highest matching rule wins and says why", arguments: [
        ("商品が届かないので返金してください", Ticket.Priority.high, "rule 返金: keyword 返金"),
        ("至急！返金をお願いします", .urgent, "rule クレーム: keyword 至急"),
        ("化粧水が肌に合わないようです", .urgent, "rule 肌トラブル: keyword 肌に合わない, channel email"),
        ("ｸﾚｰﾑです", .urgent, "rule クレーム: keyword クレーム"),
    ])
    func matches(_ text: String, _ priority: Ticket.Priority, _ reason: String) {
        let match = PriorityRules.evaluate(Self.rules, for: Self.subject(text))
        #expect(match?.rule.priority == priority)
        #expect(match?.reason == reason)
    }

    @Test("every condition of a rule must hold")
    func conditions() {
        #expect(PriorityRules.evaluate(Self.rules, for: Self.subject("肌に合わない", channel: .sms)) == nil)
        #expect(PriorityRules.evaluate(Self.rules, for: Self.subject("こんにちは", vip: true))?.rule.name == "VIP")
        #expect(PriorityRules.evaluate(Self.rules, for: Self.subject("見積もり", category: "wholesale"))?.rule.priority == .low)
        #expect(PriorityRules.evaluate(Self.rules, for: Self.subject("在庫はありますか")) == nil)
    }
}
