import Testing
@testable import Madoguchi

@Suite("API key text")
struct APIKeySecretTests {
    @Test("generated keys have the documented shape, parse back, and differ")
    func generate() throws {
        let key = APIKeySecret.generate()
        #expect(key.text.count == 4 + 8 + 1 + 32)
        #expect(key.text.hasPrefix("mdg_"))
        #expect(key.prefix.count == 12)
        #expect(try #require(APIKeySecret(key.text)) == key)
        #expect(key.hash.count == 32)
        let many = Set((0..<1000).map { _ in APIKeySecret.generate().text })
        #expect(many.count == 1000)
    }

    @Test("anything not of our shape is refused before any database lookup", arguments: [
        "", "mdg_", "mdg_abcdefgh", "mdg_abcdefgh_", "xyz_abcdefgh_abcdefghabcdefghabcdefghabcdefgh",
        "mdg_abcdefg_abcdefghabcdefghabcdefghabcdefghX", "mdg_abcdefgh_abcdefghabcdefghabcdefghabcdefg!",
        "mdg_abcdefgh_abcdefghabcdefghabcdefghabcdefgh_", "mdg_abcdéfgh_abcdefghabcdefghabcdefghabcdefgh",
    ])
    func malformed(_ text: String) {
        #expect(APIKeySecret(text) == nil)
    }

    @Test("hash comparison is exact")
    func constantTimeEquals() {
        #expect(APIKeySecret.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!APIKeySecret.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!APIKeySecret.constantTimeEquals([1, 2, 3], [1, 2]))
        #expect(!APIKeySecret.constantTimeEquals([], [0]))
    }
}
