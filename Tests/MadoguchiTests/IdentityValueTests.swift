import Testing
@testable import Madoguchi

@Suite("Email identities as the order system and web forms give them")
struct IdentityValueTests {
    static func email(_ raw: String) -> String? { try? IdentityValue.normalize(.email, raw, field: "/value") }

    static func refusal(_ raw: String) -> String? {
        do {
            _ = try IdentityValue.normalize(.email, raw, field: "/value")
            return nil
        } catch let problem as Problem {
            return problem.errors.first?.message
        } catch {
            return "\(error)"
        }
    }

    @Test("an address pasted with its name, in angle brackets or with a comment is the address inside")
    func addressInside() {
        #expect(Self.email("Taro Yamada <Taro@Example.JP>") == "taro@example.jp")
        #expect(Self.email("<taro@example.jp>") == "taro@example.jp")
        #expect(Self.email("taro@example.jp (自宅)") == "taro@example.jp")
        #expect(Self.email("山田太郎 ＜ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ＞") == "taro@example.jp")
        // Carrier addresses that break RFC 5322 are real mailboxes, kept as written.
        #expect(Self.email("taro..yamada.@docomo.ne.jp") == "taro..yamada.@docomo.ne.jp")
        #expect(Self.email("\"taro..yamada.\"@docomo.ne.jp") == "taro..yamada.@docomo.ne.jp")
        #expect(Self.email("taro@[192.0.2.1]") == "taro@[192.0.2.1]")
        // A domain written with the root's dot is the same domain.
        #expect(Self.email("hanako@example.jp.") == "hanako@example.jp")
        #expect(IdentityValue.email("Hanako@Example.JP.") == "hanako@example.jp")
    }

    @Test("two addresses, or characters no relay takes, are refused saying why")
    func refused() {
        #expect(Self.refusal("a@x.jp,b@y.jp")?.contains("holds 2 addresses (a@x.jp, b@y.jp)") == true)
        #expect(Self.refusal("a@x.jp; b@y.jp")?.contains("holds 2 addresses") == true)
        #expect(Self.refusal("taro@exa mple.jp")?.contains("is not an email address") == true)
        #expect(Self.refusal("taro@example.jp/")?.contains("'/' cannot appear there") == true)
        #expect(Self.refusal("ta\\ro@example.jp")?.contains("'\\' cannot appear there") == true)
        #expect(Self.refusal("<>")?.contains("is not an email address") == true)
    }

    @Test("a lookup's name and address keep their spaces, and a national number its stray one: no + is put back into them")
    func plusNotRestoredInNames() {
        #expect(APIHandler.plusRestored("Taro Yamada <taro@example.jp>", kind: .email) == "Taro Yamada <taro@example.jp>")
        #expect(APIHandler.plusRestored("taro shop@example.jp", kind: .email) == "taro+shop@example.jp")
        #expect(APIHandler.plusRestored(" 819012345678", kind: .phone) == "+819012345678")
        // A stray space before a national number is not a lost +.
        #expect(APIHandler.plusRestored(" 03-1234-5678", kind: .phone) == " 03-1234-5678")
    }
}
