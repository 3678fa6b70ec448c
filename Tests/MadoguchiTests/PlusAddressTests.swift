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
}
