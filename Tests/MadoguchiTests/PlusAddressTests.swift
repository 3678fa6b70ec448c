import Testing
@testable import Madoguchi

@Suite("Ticket tokens in plus addresses")
struct PlusAddressTests {
    @Test("only our own address's plus addresses name a ticket; any does while our address is not configured")
    func ownPlusAddresses() {
        let own = "support@shop.example"
        #expect(ThreadSubject.isPlusAddress("support+t1234@shop.example", of: own))
        #expect(ThreadSubject.isPlusAddress("Support+T1234@SHOP.example", of: own))
        #expect(!ThreadSubject.isPlusAddress("taro+t2024@gmail.com", of: own), "a friend's plus address in Cc")
        #expect(!ThreadSubject.isPlusAddress("sales+t1234@shop.example", of: own))
        #expect(!ThreadSubject.isPlusAddress("support@shop.example", of: own))
        #expect(ThreadSubject.isPlusAddress("taro+t2024@gmail.com", of: nil))
        #expect(ThreadSubject.ticketNumber(inAddress: "support+t1234@shop.example") == 1234)
    }

    @Test("a reply's subject says Re: once, whatever prefixes and old ticket tokens the customer's subject carried")
    func replySubjects() {
        for (subject, expected) in [
            ("Re: 前回の件", "Re: 前回の件 [#18]"), ("RE: 問い合わせ", "Re: 問い合わせ [#18]"), ("Ｒｅ：前回の件2", "Re: 前回の件2 [#18]"),
            ("返信: 前回の件3", "Re: 前回の件3 [#18]"), ("Fwd: Re: 前回の件4", "Re: 前回の件4 [#18]"), ("Re: 返品 [#5]", "Re: 返品 [#18]"),
            ("Re[2]: 在庫", "Re: 在庫 [#18]"), ("Reply needed", "Re: Reply needed [#18]"), ("Re:", "Re: お問い合わせ [#18]"),
            ("返品について", "Re: 返品について [#18]"),
        ] {
            #expect(ReplyDesk.replySubject(subject, number: 18) == expected, "\(subject)")
        }
    }
}
