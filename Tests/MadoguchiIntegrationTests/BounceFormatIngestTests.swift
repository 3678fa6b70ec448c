import Foundation
import MadoguchiMail
import Testing

/// Every bounce, complaint and notice format of `Tests/BounceFixtures` through `POST /v1/inbound/email`
/// against a real PostgreSQL: none opens a ticket or makes its sender a customer, exactly the
/// permanently failed recipients become undeliverable, and the bystanders the reports mention (a help
/// desk, a list's control address, a Message-ID, us) stay as they were.
@Suite("Bounce formats through the real endpoint", .timeLimit(.minutes(15)))
struct BounceFormatIngestTests {
    /// file → recipients the report fails for good / addresses it names that must stay deliverable.
    static let cases: [(file: String, undeliverable: [String], untouched: [String])] = [
        ("kddi-au-two-recipients", ["taro-1999@au.com"], ["hanako.yamada@ezweb.ne.jp", "support@dion.ne.jp"]),
        ("fml-not-member", [], ["neko-ml@lists.example.org", "neko-ml-ctl@lists.example.org"]),
        ("x2-three-recipients", ["ichiro@mail.example", "saburo@mail.example"], ["jiro@mail.example"]),
        ("exchange2003-unknown", ["kenji.sato@corp.example"], ["admin@corp.example"]),
        ("opensmtpd-error", ["yuki@mail.example"], ["hanako@mail.example"]),
        ("opensmtpd-delayed", [], ["hanako@mail.example"]),
        ("exim-delay-warning", [], ["hanako@mail.example"]),
        ("james-bounce", ["saburo@mail.example"], []),
        ("qmail-prose-addresses", ["ichiro@isp.example"], ["hanako@isp.example", "help-desk@isp.example"]),
        ("ses-sns-bounce", ["ichiro@mail.example"], ["jiro@mail.example"]),
        ("ses-sns-complaint", [], ["hanako@mail.example"]),
        ("ses-delivery-bare", [], ["hanako@mail.example"]),
        ("jmrp-complaint", [], ["hanako@hotmail.example"]),
    ]

    static func fixture(_ name: String) throws -> [UInt8] {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("BounceFixtures")
        return try [UInt8](Data(contentsOf: directory.appendingPathComponent(name + ".eml")))
    }

    @Test("no report opens a ticket; only the recipients it fails for good are marked undeliverable")
    func reports() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            // Every address any report names is a customer of ours, each with an open ticket on which
            // we wrote to them yesterday; a report quoting our mail's Message-ID names that mail.
            let agent = try await app.key(.agent)
            let everyone = Set(Self.cases.flatMap { $0.undeliverable + $0.untouched })
            var anyTicket: UUID?
            for address in everyone {
                let ticket = try await app.ticket(customer: try await app.customer(name: address, email: address))
                anyTicket = ticket
                try await app.execute("""
                    INSERT INTO messages (ticket_id, direction, channel, author_agent_id, to_addresses, body_text, created_at)
                    VALUES (\(ticket), 'outbound', 'email', \(agent.record.agentID!), \([address]), '回答です', now() - interval '1 day')
                    """)
            }
            for report in Self.cases {
                guard let original = ParsedMail(try Self.fixture(report.file)).deliveryReport?.originalMessageID else { continue }
                try await app.execute("""
                    INSERT INTO messages (ticket_id, direction, channel, author_agent_id, to_addresses, body_text, email_message_id)
                    VALUES (\(anyTicket!), 'outbound', 'email', \(agent.record.agentID!), \(report.undeliverable + report.untouched), '回答です', \(original))
                    """)
            }
            let tickets = try await app.count("SELECT count(*) FROM tickets")
            let customers = try await app.count("SELECT count(*) FROM customers")
            var undeliverable: Set<String> = []
            for report in Self.cases {
                let response = try await app.postMail(gateway, try Self.fixture(report.file))
                #expect(response.status == .created, "\(report.file): \(response.text)")
                #expect(try response.json["classification"] as? String != "customer", "\(report.file)")
                #expect(try await app.count("SELECT count(*) FROM tickets") == tickets, "\(report.file) opened a ticket")
                #expect(try await app.count("SELECT count(*) FROM customers") == customers, "\(report.file) made a customer")
                undeliverable.formUnion(report.undeliverable)
                let marked = try await app.strings("SELECT value FROM customer_identities WHERE undeliverable_at IS NOT NULL ORDER BY value")
                #expect(Set(marked) == undeliverable, "after \(report.file)")
                for bystander in report.untouched where !undeliverable.contains(bystander) {
                    #expect(!marked.contains(bystander), "\(report.file) blamed \(bystander)")
                }
            }
            // A replayed report changes nothing more.
            let replay = try await app.postMail(gateway, try Self.fixture("x2-three-recipients"))
            #expect(replay.status == .ok || replay.status == .created)
            #expect(try await app.count("SELECT count(*) FROM tickets") == tickets)
        }
    }

    @Test("customers who forward a bounce or write about a failed delivery still open tickets")
    func customersStillWrite() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            // Each names somebody else's address; the other customer must keep their deliverability.
            for address in ["hanako@example.org", "cto@example.com"] {
                _ = try await app.customer(name: address, email: address)
            }
            let files = ["customer-forwards-bounce", "customer-delivery-failure-subject", "customer-pasted-gmail-bounce", "customer-ses-json"]
            for file in files {
                let response = try await app.postMail(gateway, try Self.fixture(file))
                #expect(response.status == .created, "\(file)")
                #expect(try response.json["classification"] as? String == "customer", "\(file)")
                #expect(try response.json["ticket_id"] as? String != nil, "\(file)")
            }
            #expect(try await app.count("SELECT count(*) FROM tickets") == files.count)
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE undeliverable_at IS NOT NULL") == 0)
        }
    }

    @Test("a forwarded mail is one attachment, the files inside it listed under it on the timeline")
    func attachedMessageFiles() async throws {
        try await TestApp.run { app in
            let gateway = try await app.keySecret(.gateway)
            let agent = try await app.keySecret(.agent)
            // The inner file's name carries a NUL (=00), which jsonb refuses: made harmless as any file name is, and the ingest goes through.
            let mail = """
                From: Taro <taro@example.jp>
                To: support@shop.example
                Subject: Fwd: invoice
                Message-ID: <fwd-invoice@example.jp>
                MIME-Version: 1.0
                Content-Type: multipart/mixed; boundary=outer

                --outer
                Content-Type: text/plain

                Please see the forwarded invoice.
                --outer
                Content-Type: message/rfc822

                From: billing@vendor.example
                Subject: invoice
                MIME-Version: 1.0
                Content-Type: multipart/mixed; boundary=inner

                --inner
                Content-Type: text/plain

                Invoice attached.
                --inner
                Content-Type: application/pdf; name="=?utf-8?Q?inv=00oice.pdf?="
                Content-Transfer-Encoding: base64

                JVBERi0xLjQK
                --inner--
                --outer--
                """
            let response = try await app.postMail(gateway, mail)
            #expect(response.status == .created, "\(response.text)")
            let ticket = try #require(try response.json["ticket_id"] as? String)
            let timeline = try await app.request(.get, "/v1/tickets/\(ticket)/messages", key: agent)
            let message = try #require((try timeline.json["items"] as? [[String: Any]])?.first)
            let attachments = try #require(message["attachments"] as? [[String: Any]])
            #expect(attachments.count == 1)
            #expect(attachments.first?["media_type"] as? String == "message/rfc822")
            let contained = try #require(attachments.first?["contains"] as? [[String: Any]])
            #expect(contained.count == 1)
            #expect(contained.first?["filename"] as? String == "inv_oice.pdf")
            #expect(contained.first?["media_type"] as? String == "application/pdf")
            #expect(contained.first?["size"] as? Int == 9)
        }
    }

    @Test("a delay notice for one of our replies is recorded on its delivery; the reply stays sent and the address deliverable")
    func delayNoticeOnTheReply() async throws {
        let sink = try await SMTPSink()
        try await TestApp.run(configure: DeliveryTests.configure(sink)) { app in
            let conversation = try await DeliveryTests.customerWrites(app, from: "hanako@mail.example")
            let reply = try await DeliveryTests.answer(conversation, "明日発送いたします。")
            #expect(DeliveryTests.state(try await DeliveryTests.delivery(conversation, reply)) == "sent")
            let tickets = try await app.count("SELECT count(*) FROM tickets")
            let notice = String(decoding: try Self.fixture("opensmtpd-delayed"), as: UTF8.self)
                .replacingOccurrences(of: "<reply-delayed@shop.example>", with: "<reply-\(reply)@shop.example>")
            let gateway = try await app.keySecret(.gateway)
            let response = try await app.postMail(gateway, notice)
            #expect(response.status == .created, "\(response.text)")
            #expect(try response.json["classification"] as? String == "delivery_report")

            let read = try await app.request(.get, "/v1/replies/\(reply)", key: conversation.agent).json
            let delivery = try #require(read["delivery"] as? [String: Any])
            #expect(delivery["state"] as? String == "sent")
            let notices = try #require(delivery["notices"] as? [[String: Any]], "\(delivery)")
            #expect(notices.count == 1)
            #expect(notices.first?["recipient"] as? String == "hanako@mail.example")
            #expect(notices.first?["action"] as? String == "delayed")
            #expect(notices.first?["status"] as? String == "4.4.2")
            #expect(try await app.count("SELECT count(*) FROM customer_identities WHERE undeliverable_at IS NOT NULL") == 0)
            #expect(try await app.count("SELECT count(*) FROM tickets") == tickets)
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'reply.bounced'") == 0)
        }
    }
}
