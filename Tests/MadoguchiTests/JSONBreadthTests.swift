import Testing
@testable import Madoguchi

@Suite("JSON breadth: separators outside strings, counted before a body is parsed")
struct JSONBreadthTests {
    @Test("separators inside strings, escaped quotes included, are not counted; those outside are, up to the limit")
    func counting() {
        #expect(!JSONBreadth.exceedsLimit(Array(#"{"a":"x,y:z","b":[1,2,3]}"#.utf8), limit: 5))
        #expect(JSONBreadth.exceedsLimit(Array(#"{"a":"x","b":[1,2,3,4]}"#.utf8), limit: 5))
        #expect(!JSONBreadth.exceedsLimit(Array(#"{"a":"say \",\",\",\" done"}"#.utf8), limit: 1))
        #expect(!JSONBreadth.exceedsLimit(Array(#"{"a":"ends with a backslash \\","b":1}"#.utf8), limit: 3))
        #expect(JSONBreadth.exceedsLimit(Array(#"{"a":"ends with a backslash \\","b":1,"c":2}"#.utf8), limit: 3))
        // An unterminated string stops the count: the parser says what is wrong.
        #expect(!JSONBreadth.exceedsLimit(Array(#"{"a":"never closed,,,,,,"#.utf8), limit: 2))
    }
}
