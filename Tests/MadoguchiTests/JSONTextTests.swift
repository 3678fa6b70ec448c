import Foundation
import Testing
@testable import Madoguchi

@Suite("JSON text for jsonb columns, without JSONSerialization's cost")
struct JSONTextTests {
    /// Both texts read back by Foundation's parser are the same document.
    private func sameDocument(_ object: [String: Any], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let ours = try JSONText.object(object)
        let foundation = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        let read = { (text: String) in try JSONSerialization.jsonObject(with: Data(text.utf8)) as! NSDictionary }
        #expect(try read(ours) == read(foundation), "\(ours) vs \(foundation)", sourceLocation: sourceLocation)
    }

    @Test("event data and metadata: the same documents as JSONSerialization, keys sorted")
    func sameAsFoundation() throws {
        try sameDocument([:])
        try sameDocument(["channel": "email", "number": 180, "raised": true, "quiet": false, "ratio": 0.25, "whole": 2.0,
                          "big": Int64(9_007_199_254_740_993), "small": Int32(-7), "none": NSNull()])
        try sameDocument(["identities": [["kind": "email", "value": "hanako@example.jp"]], "tags": ["返品", "至急"], "empty": [String]()])
        try sameDocument(["text": "引用 \"quoted\" back\\slash\nnew line\r\ttab \u{8}\u{c} \u{1} \u{1f} é 🇯🇵 e\u{301} /slash/"])
        try sameDocument(["deep": ["a": ["b": ["c": [1, "two", ["three": 3]]]]]])
        #expect(try JSONText.object(["b": 1, "a": "x", "c": true]) == #"{"a":"x","b":1,"c":true}"#)
        #expect(try JSONText.object(["s": "\"\\\n\u{0}"]) == #"{"s":"\"\\\n\u0000"}"#)
    }

    @Test("an NSNumber or another Foundation value goes to JSONSerialization whole; a value it refuses is still refused")
    func foundationValues() throws {
        let parsed = try JSONSerialization.jsonObject(with: Data(#"{"flag":true,"count":1,"ratio":1.5}"#.utf8)) as! [String: Any]
        try sameDocument(["fields": parsed])
        #expect(throws: (any Error).self) { try JSONText.object(["infinite": Double.infinity]) }
    }
}
