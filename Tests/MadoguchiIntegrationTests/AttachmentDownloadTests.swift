import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import MadoguchiMail
import Testing

@Suite("Files open: a message's attachments and a reply's files, downloaded as they were sent", .timeLimit(.minutes(10)))
struct AttachmentDownloadTests {
    /// Bytes that do not compress (a linear congruential sequence), so the database stores them as they are.
    static func noise(_ count: Int, seed: UInt32) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 1_664_525 &+ 1_013_904_223
            return UInt8(truncatingIfNeeded: state >> 24)
        }
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// A mail with a PDF under a Japanese name (RFC 2231), a page with a script, a photo of 1.3 MB
    /// (three slices) and a text file of 1.2 MB that the database compresses.
    static func mailWithFiles(pdf: [UInt8], photo: [UInt8], log: [UInt8]) -> [UInt8] {
        func part(_ headers: String, _ content: [UInt8]) -> String {
            "--b\r\n\(headers)\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                + Data(content).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed]) + "\r\n"
        }
        let mail = "From: Hanako <hanako@example.jp>\r\nTo: support@shop.example\r\nSubject: 破損の件\r\nMessage-ID: <files-1@example.jp>\r\n"
            + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            + "--b\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n箱が潰れていました。写真を添付します。\r\n"
            + part("Content-Type: application/pdf\r\nContent-Disposition: attachment; filename*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8%20%22A%22.pdf", pdf)
            + part("Content-Type: text/html\r\nContent-Disposition: attachment; filename=page.html", Array("<script>alert(1)</script>".utf8))
            + part("Content-Type: image/jpeg\r\nContent-Disposition: attachment; filename=photo.jpg", photo)
            + part("Content-Type: text/plain\r\nContent-Disposition: attachment; filename=log.txt", log)
            + "--b--\r\n"
        return Array(mail.utf8)
    }

    @Test("a range of a file: resumed past a slice boundary, from the end, cut at the end; 416 past it; If-Range for another file, several ranges or nonsense get the whole file")
    func ranges() async throws {
        try await TestApp.run { app in
            let photo = Self.noise(1_300_000, seed: 11)
            let log = Array(String(repeating: "2026-12-01 注文 1234 発送済み\n", count: 40_000).utf8)
            let ingested = try await app.postMail(try await app.keySecret(.gateway), Self.mailWithFiles(pdf: Array("%PDF".utf8), photo: photo, log: log))
            let ticket = try #require(try ingested.json["ticket_id"] as? String)
            let agent = try await app.keySecret(.agent)
            let timeline = try await app.request(.get, "/v1/tickets/\(ticket)/messages", key: agent).json
            let files = try #require(((timeline["items"] as? [[String: Any]])?.first?["attachments"]) as? [[String: Any]])
            let (photoPath, logPath) = ("/v1/attachments/\(try #require(files[2]["id"] as? String))", "/v1/attachments/\(try #require(files[3]["id"] as? String))")
            func get(_ path: String, _ range: String, ifRange: String? = nil) async throws -> TestClient.Response {
                var headers: HTTPFields = [.range: range]
                if let ifRange { headers[.ifRange] = ifRange }
                return try await app.request(.get, path, key: agent, headers: headers)
            }

            let whole = try await app.request(.get, photoPath, key: agent)
            #expect(whole.headers[.acceptRanges] == "bytes")
            // A download cut at 1,000,000 bytes resumes across the slice boundary at 1,048,576.
            let rest = try await get(photoPath, "bytes=1000000-", ifRange: whole.headers[.eTag])
            #expect(rest.status == .partialContent)
            #expect(rest.headers[.contentRange] == "bytes 1000000-1299999/1300000")
            #expect(rest.headers[.contentLength] == "300000")
            #expect(Array(buffer: rest.bodyBuffer) == Array(photo[1_000_000...]))
            let middle = try await get(photoPath, "bytes=524000-524999")
            #expect(Array(buffer: middle.bodyBuffer) == Array(photo[524_000...524_999]))
            let tail = try await get(photoPath, "bytes=-5")
            #expect(tail.headers[.contentRange] == "bytes 1299995-1299999/1300000")
            #expect(Array(buffer: tail.bodyBuffer) == Array(photo.suffix(5)))
            let cut = try await get(photoPath, "bytes=1299990-9999999")
            #expect(cut.headers[.contentRange] == "bytes 1299990-1299999/1300000")
            #expect(Array(buffer: cut.bodyBuffer) == Array(photo.suffix(10)))
            // The compressed file reads the same way.
            let logPart = try await get(logPath, "bytes=600000-600099")
            #expect(Array(buffer: logPart.bodyBuffer) == Array(log[600_000...600_099]))

            let past = try await get(photoPath, "bytes=1300000-")
            #expect(past.status == .rangeNotSatisfiable, "\(past.text)")
            #expect(past.headers[.contentRange] == "bytes */1300000")
            #expect(try past.json["type"] as? String == "https://madoguchi.dev/problems/range-not-satisfiable")
            for ignored in ["bytes=0-1,5-6", "bytes=abc", "lines=1-2", "bytes=9-3", "bytes=-", "bytes=1-2-3"] {
                let answer = try await get(photoPath, ignored)
                #expect(answer.status == .ok, "\(ignored)")
                #expect(answer.headers[.contentLength] == "1300000", "\(ignored)")
            }
            // A HEAD describes the whole file, whatever the Range (RFC 9110 §14.2).
            let head = try await app.request(.head, photoPath, key: agent, headers: [.range: "bytes=0-9"])
            #expect(head.status == .ok)
            #expect(head.headers[.contentLength] == "1300000")
            #expect(head.headers[.contentRange] == nil)
            let changed = try await get(photoPath, "bytes=0-9", ifRange: "\"0000\"")
            #expect(changed.status == .ok)
            #expect(Array(buffer: changed.bodyBuffer) == photo)
        }
    }

    @Test("every attachment downloads byte for byte, under its name, never as a page of this origin; 304, 404, 406 and 403 where due")
    func messageAttachments() async throws {
        try await TestApp.run { app in
            let pdf = Array("%PDF-1.4\n請求書\n%%EOF".utf8)
            let photo = Self.noise(1_300_000, seed: 7)
            let log = Array(String(repeating: "2026-12-01 注文 1234 発送済み\n", count: 40_000).utf8)
            let gateway = try await app.keySecret(.gateway)
            let ingested = try await app.postMail(gateway, Self.mailWithFiles(pdf: pdf, photo: photo, log: log))
            #expect(ingested.status == .created, "\(ingested.text)")
            let ticket = try #require(try ingested.json["ticket_id"] as? String)
            let agent = try await app.keySecret(.agent)
            let timeline = try await app.request(.get, "/v1/tickets/\(ticket)/messages", key: agent).json
            let files = try #require(((timeline["items"] as? [[String: Any]])?.first?["attachments"]) as? [[String: Any]])
            #expect(files.map { $0["filename"] as? String } == ["請求書 \"A\".pdf", "page.html", "photo.jpg", "log.txt"])
            func id(_ index: Int) throws -> String { try #require(files[index]["id"] as? String) }

            let pdfAnswer = try await app.request(.get, "/v1/attachments/\(try id(0))", key: agent)
            #expect(pdfAnswer.status == .ok)
            #expect(Array(buffer: pdfAnswer.bodyBuffer) == pdf)
            #expect(pdfAnswer.headers[.contentType] == "application/pdf")
            #expect(pdfAnswer.headers[.contentDisposition]
                    == #"attachment; filename="___ _A_.pdf"; filename*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8%20%22A%22.pdf"#)
            #expect(pdfAnswer.headers[.xContentTypeOptions] == "nosniff")
            #expect(pdfAnswer.headers[.contentSecurityPolicy] == "sandbox; default-src 'none'")
            let tag = "\"\(Self.hex(SHA256.hash(data: pdf)))\""
            #expect(pdfAnswer.headers[.eTag] == tag)
            #expect(files[0]["sha256"] as? String == Self.hex(SHA256.hash(data: pdf)))

            // The page is the customer's: saved, never run as part of the API's origin.
            let page = try await app.request(.get, "/v1/attachments/\(try id(1))", key: agent)
            #expect(page.headers[.contentType] == "text/html")
            #expect(page.headers[.contentDisposition]?.hasPrefix("attachment;") == true)
            #expect(page.headers[.contentSecurityPolicy] == "sandbox; default-src 'none'")

            // Larger than one slice, stored raw and stored compressed: the same bytes either way.
            let photoAnswer = try await app.request(.get, "/v1/attachments/\(try id(2))", key: agent)
            #expect(photoAnswer.headers[.contentLength] == "\(photo.count)")
            #expect(Array(buffer: photoAnswer.bodyBuffer) == photo)
            let logAnswer = try await app.request(.get, "/v1/attachments/\(try id(3))", key: agent)
            #expect(Array(buffer: logAnswer.bodyBuffer) == log)
            #expect(try await app.count("SELECT count(*) FROM attachments WHERE filename = 'log.txt' AND pg_column_compression(content) = 'lz4'") == 1)

            // Asked again with its tag: nothing to send.
            let again = try await app.request(.get, "/v1/attachments/\(try id(0))", key: agent, headers: [.ifNoneMatch: tag])
            #expect(again.status == .notModified)
            #expect(again.bodyBuffer.readableBytes == 0)
            // Another tag: the whole file, its first slice read after all.
            let other = try await app.request(.get, "/v1/attachments/\(try id(2))", key: agent, headers: [.ifNoneMatch: tag])
            #expect(other.status == .ok)
            #expect(Array(buffer: other.bodyBuffer) == photo)
            // Not acceptable comes before not modified: 304 stands only for an answer that would be 200.
            try expectProblem(try await app.request(.get, "/v1/attachments/\(try id(0))", key: agent, headers: [.ifNoneMatch: tag, .accept: "image/*"]),
                              .notAcceptable, "not-acceptable")
            // Accept is weighed against the file's own type.
            #expect(try await app.request(.get, "/v1/attachments/\(try id(0))", key: agent, headers: [.accept: "application/pdf"]).status == .ok)
            try expectProblem(try await app.request(.get, "/v1/attachments/\(try id(0))", key: agent, headers: [.accept: "image/*"]),
                              .notAcceptable, "not-acceptable")

            // A declared type that is no plain type/subtype is served as bytes.
            try await app.execute("UPDATE attachments SET media_type = 'text/html; charset=\"x\r\nSet-Cookie: a\"' WHERE filename = 'page.html'")
            #expect(try await app.request(.get, "/v1/attachments/\(try id(1))", key: agent).headers[.contentType] == "application/octet-stream")
            try await app.execute("UPDATE attachments SET media_type = E'Image/PNG\\n' WHERE filename = 'photo.jpg'")
            #expect(try await app.request(.get, "/v1/attachments/\(try id(2))", key: agent).headers[.contentType] == "image/png")

            try expectProblem(try await app.request(.get, "/v1/attachments/\(UUID().uuidString.lowercased())", key: agent), .notFound, "not-found")
            try expectProblem(try await app.request(.get, "/v1/attachments/\(try id(0))", key: try await app.keySecret(.dashboard)),
                              .forbidden, "forbidden")
        }
    }

    @Test("a reply's file opens before it goes, only under its own reply; the wrong file comes off a draft, and a sent reply keeps its files")
    func replyFiles() async throws {
        let sink = try await SMTPSink()
        try await TestApp.run(configure: DeliveryTests.configure(sink)) { app in
            let conversation = try await DeliveryTests.customerWrites(app, from: "files@example.jp")
            let draft = try await app.request(.post, "/v1/tickets/\(conversation.ticket)/replies", key: conversation.agent,
                                              json: #"{"body":"請求書を添付いたします。"}"#)
            let reply = try #require(try draft.json["id"] as? String)
            func attach(_ name: String, _ content: [UInt8]) async throws -> String {
                let answer = try await app.request(.post, "/v1/replies/\(reply)/attachments", key: conversation.agent,
                                                   json: #"{"filename":"\#(name)","media_type":"application/pdf","content_base64":"\#(Data(content).base64EncodedString())"}"#)
                #expect(answer.status == .created, "\(answer.text)")
                return try #require((try answer.json["attachments"] as? [[String: Any]])?.last?["id"] as? String)
            }
            let wrong = try await attach("請求書 佐藤様.pdf", Array("%PDF 佐藤様".utf8))
            let right = try await attach("請求書 山田様.pdf", Self.noise(700_000, seed: 3))

            // The supervisor asked to approve opens the file itself.
            let opened = try await app.request(.get, "/v1/replies/\(reply)/attachments/\(wrong)", key: conversation.supervisor)
            #expect(Array(buffer: opened.bodyBuffer) == Array("%PDF 佐藤様".utf8))
            #expect(opened.headers[.contentDisposition]?.contains("filename*=UTF-8''") == true)
            #expect(Array(buffer: try await app.request(.get, "/v1/replies/\(reply)/attachments/\(right)", key: conversation.agent).bodyBuffer)
                    == Self.noise(700_000, seed: 3))
            // Not under another reply, nor as a message's file.
            let other = try await app.request(.post, "/v1/tickets/\(conversation.ticket)/replies", key: conversation.agent, json: #"{"body":"別件"}"#)
            let otherReply = try #require(try other.json["id"] as? String)
            try expectProblem(try await app.request(.get, "/v1/replies/\(otherReply)/attachments/\(wrong)", key: conversation.agent), .notFound, "not-found")
            try expectProblem(try await app.request(.get, "/v1/attachments/\(wrong)", key: conversation.agent), .notFound, "not-found")
            try expectProblem(try await app.request(.delete, "/v1/replies/\(otherReply)/attachments/\(wrong)", key: conversation.agent), .notFound, "not-found")
            let unchanged = try await app.request(.get, "/v1/replies/\(reply)/attachments/\(wrong)", key: conversation.agent,
                                                  headers: [.ifNoneMatch: try #require(opened.headers[.eTag])])
            #expect(unchanged.status == .notModified)

            // Submitted for approval, then the wrong file comes off: a draft again, one file left.
            #expect(try await app.request(.post, "/v1/replies/\(reply)/submit", key: conversation.agent,
                                          json: #"{"last_seen_message_id":"\#(conversation.lastMessage)"}"#).status == .ok)
            try expectProblem(try await app.request(.delete, "/v1/replies/\(reply)/attachments/\(wrong)", key: try await app.keySecret(.agent)),
                              .conflict, "claim-held")
            let removed = try await app.request(.delete, "/v1/replies/\(reply)/attachments/\(wrong)", key: conversation.agent)
            #expect(removed.status == .ok, "\(removed.text)")
            let after = try removed.json
            #expect(after["state"] as? String == "draft")
            #expect((after["attachments"] as? [[String: Any]])?.map { $0["id"] as? String } == [right])
            try expectProblem(try await app.request(.delete, "/v1/replies/\(reply)/attachments/\(wrong)", key: conversation.agent), .notFound, "not-found")
            #expect(try await app.count("SELECT count(*) FROM events WHERE type = 'reply.edited' AND data->>'removed' = '請求書 佐藤様.pdf'") == 1)

            // Sent: the customer got one file, and the reply keeps it.
            #expect(try await app.request(.post, "/v1/replies/\(reply)/send", key: conversation.agent,
                                          json: #"{"last_seen_message_id":"\#(conversation.lastMessage)"}"#).status == .ok)
            #expect(DeliveryTests.state(try await DeliveryTests.delivery(conversation, reply)) == "sent")
            #expect(ParsedMail(try #require(sink.received.first).bytes).attachments.map(\.filename) == ["請求書 山田様.pdf"])
            try expectProblem(try await app.request(.delete, "/v1/replies/\(reply)/attachments/\(right)", key: conversation.agent),
                              .conflict, "reply-not-draft")
        }
    }
}
