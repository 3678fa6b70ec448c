import ArgumentParser
import Foundation
import Madoguchi

/// `madoguchi mailgate`: one mail on stdin to the email gateway, for Postfix/Exim pipe transports
/// and `.forward`. Exits with the codes an MTA understands; see `deploy/postfix/`.
struct Mailgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Post one raw mail from standard input to /v1/inbound/email (for an MTA's pipe transport).",
        discussion: "Exit codes: 0 delivered, 65 the mail was refused for what it is, 75 anything else (the MTA keeps the mail queued and retries): the service unreachable, the key refused, bad configuration.")

    @Option(help: "The gateway URL, e.g. http://127.0.0.1:8080/v1/inbound/email.")
    var url: String

    @Option(help: "A file holding a gateway API key (keep it readable by the MTA's pipe user only).")
    var keyFile: String

    @Option(help: "Attempts before answering 75 and leaving the retry to the MTA's queue.")
    var attempts: Int = 4

    func run() async throws {
        let result = await deliver()
        FileHandle.standardError.write(Data("madoguchi mailgate: \(result.message)\n".utf8))
        throw ExitCode(result.code.rawValue)
    }

    private func deliver() async -> MailGate.Result {
        guard let endpoint = URL(string: url), endpoint.scheme == "http" || endpoint.scheme == "https" else {
            return .init(code: .tempFail, message: "--url \(url) is not an http(s) URL; the mail stays queued until it is fixed")
        }
        guard let keyData = FileManager.default.contents(atPath: keyFile),
              let key = String(data: keyData, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !key.isEmpty
        else {
            return .init(code: .tempFail, message: "cannot read an API key from \(keyFile); the mail stays queued until it can")
        }
        let mail = [UInt8](FileHandle.standardInput.readDataToEndOfFile())
        var gate = MailGate(endpoint: endpoint, apiKey: key)
        gate.attempts = max(1, attempts)
        return await gate.deliver(mail)
    }
}
