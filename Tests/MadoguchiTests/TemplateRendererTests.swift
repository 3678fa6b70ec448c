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

    @Test("variables are listed in order of first use")
    func variables() {
        #expect(TemplateRenderer.variables(in: "{{a.b}} {{c}} {{a.b}}") == ["a.b", "c"])
        #expect(TemplateRenderer.variables(in: "no {variables} {{ }} here").isEmpty)
    }
}
