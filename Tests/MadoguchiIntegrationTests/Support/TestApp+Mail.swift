import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

/// A small RFC 5322 mail for tests (LF line ends; `postMail` sends CRLF).
func testMail(from: String = "Hanako Yamada <hanako@example.jp>", to: String = "support@shop.example", subject: String,
              id: String, headers: String = "", body: String = "お世話になっております。") -> String {
    "From: \(from)\nTo: \(to)\nSubject: \(subject)\nMessage-ID: <\(id)>\nMIME-Version: 1.0\n\(headers)Content-Type: text/plain; charset=UTF-8\n\n\(body)\n"
}

extension TestApp {
    /// Big mails in a debug build on two busy cores can take longer than the test client's default
    /// 15–20 s read timeout; a timeout here would be the test's, not the service's, failure.
    static let patient = TestClient.Configuration(timeout: .seconds(180))

    /// `POST /v1/inbound/email` with `key`, on a connection of its own with the patient timeout.
    func postMail(_ key: String, _ mail: [UInt8], idempotencyKey: String? = nil) async throws -> TestClient.Response {
        var headers: HTTPFields = [.authorization: "Bearer \(key)", .contentType: "message/rfc822"]
        if let idempotencyKey { headers[HTTPField.Name("Idempotency-Key")!] = idempotencyKey }
        let request = TestClient.Request("/v1/inbound/email", method: .post, headers: headers, body: ByteBuffer(bytes: mail))
        return try await TestClient.withClient(host: "localhost", port: try #require(client.port), configuration: Self.patient) {
            try await $0.execute(request)
        }
    }

    func postMail(_ key: String, _ mail: String, idempotencyKey: String? = nil) async throws -> TestClient.Response {
        try await postMail(key, Array(mail.replacingOccurrences(of: "\n", with: "\r\n").utf8), idempotencyKey: idempotencyKey)
    }
}
