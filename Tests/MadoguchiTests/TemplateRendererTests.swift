import Testing
@testable import Madoguchi

@Suite("Template rendering")
struct TemplateRendererTests {
    let renderer = TemplateRenderer(values: [
        "customer.name": "山田 花子", "ticket.number": "1234", "agent.name": "佐藤", "customer.company": nil, "order.number": "A-77",
    ])

    @Test("known variables are filled, with or without inner spaces")
    func fills() throws {
        let text = try renderer.render(["{{customer.name}} 様\nご注文 {{ order.number }} の件（#{{ticket.number}}）\n担当：{{agent.name}}"])
        #expect(text == ["山田 花子 様\nご注文 A-77 の件（#1234）\n担当：佐藤"])
    }

    @Test("unknown and unfilled variables are all named, and nothing is rendered")
    func refuses() {
        #expect(throws: TemplateRenderer.Failure(unknown: ["custmer.name"], unfilled: ["customer.company", "order.date"])) {
            try renderer.render(["{{custmer.name}} {{customer.company}}", "{{order.date}} {{order.date}}"])
        }
    }

    @Test("a value that shows nothing (line breaks, a zero-width space) is unfilled; one with them around text is filled")
    func invisibleValues() throws {
        let renderer = TemplateRenderer(values: ["customer.name": "\n", "order.note": "\u{200B}\u{3000}", "order.number": "\u{200B}A-77\n"])
        #expect(throws: TemplateRenderer.Failure(unknown: [], unfilled: ["customer.name", "order.note"])) {
            try renderer.render(["{{customer.name}}様 {{order.note}}"])
        }
        #expect(try renderer.render(["{{order.number}}"]) == ["\u{200B}A-77\n"])
    }

    @Test("a variable named in Japanese or with spaces is unknown, not text left in the reply; one typed full-width is filled")
    func anyName() throws {
        #expect(throws: TemplateRenderer.Failure(unknown: ["お名前", "customer name"], unfilled: [])) {
            try renderer.render(["{{お名前}} 様", "{{ customer name }}"])
        }
        #expect(try renderer.render(["｛｛ｃｕｓｔｏｍｅｒ．ｎａｍｅ｝｝ 様（{{ticket.number}}）"]) == ["山田 花子 様（1234）"])
        #expect(TemplateRenderer.variables(in: "{{お名前}} {{customer.name}}") == ["お名前", "customer.name"])
    }

    @Test("an empty {{ }} is a variable no ticket fills; a marker followed by a combining or joining character is filled all the same")
    func oddMarkers() throws {
        #expect(TemplateRenderer.problems(in: "{{ }}様、{{ticket.number}}").contains { $0.contains("empty {{ }}") })
        #expect(TemplateRenderer.problems(in: "{{|お客}}様").contains { $0.contains("empty {{ }}") })
        #expect(throws: TemplateRenderer.Failure(unknown: [""], unfilled: [])) { try renderer.render(["{{　}}様"]) }
        let combined = try renderer.render(["{{customer.name}}\u{0301}様 {{ticket.number}}"])
        #expect(combined == ["山田 花子\u{0301}様 1234"], "\(combined.map { $0.unicodeScalars.map { String($0.value, radix: 16) } })")
        let joined = try renderer.render(["{{ticket.number}}\u{200D}番"])
        #expect(joined == ["1234\u{200D}番"], "\(joined.map { $0.unicodeScalars.map { String($0.value, radix: 16) } })")
        #expect(TemplateRenderer.firstUse(of: "ticket.number", in: "一行目\n{{customer.name}}\u{0301} {{ticket.number}}")! == (2, 19))
    }

    @Test("variables are listed in order of first use")
    func variables() {
        #expect(TemplateRenderer.variables(in: "{{a.b}} {{c}} {{a.b}}") == ["a.b", "c"])
        #expect(TemplateRenderer.variables(in: "no {variables} {{ }} here").isEmpty)
    }

    @Test("a stand-in after | fills a variable with no value, and only then; an empty one is no stand-in")
    func standIns() throws {
        let nameless = TemplateRenderer(values: ["customer.name": nil, "ticket.number": "1234", "order.number": "A-77"])
        #expect(try nameless.render(["{{customer.name|お客}}様（#{{ticket.number|?}}）"]) == ["お客様（#1234）"])
        #expect(try renderer.render(["{{ customer.name | お客 }}様"]) == ["山田 花子様"])
        #expect(try nameless.render(["{{order.date｜近日中}}にお届けします"]) == ["近日中にお届けします"], "a full-width bar, as an input method types it")
        #expect(try nameless.render(["{{customer.name|ＯＯ}}"]) == ["ＯＯ"], "the stand-in as written, not folded")
        #expect(throws: TemplateRenderer.Failure(unknown: [], unfilled: ["customer.name"])) { try nameless.render(["{{customer.name|}}様"]) }
        #expect(throws: TemplateRenderer.Failure(unknown: ["お名前"], unfilled: [])) { try nameless.render(["{{お名前|お客}}様"]) }
        #expect(TemplateRenderer.variables(in: "{{customer.name|お客}} {{customer.name}}") == ["customer.name"])
        #expect(TemplateRenderer.problems(in: "{{customer.name|お客}}様").isEmpty)
        #expect(TemplateRenderer.problems(in: "{{customer.name| }}様").first?.contains("empty stand-in") == true)
    }
}
