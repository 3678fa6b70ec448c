import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
@testable import Madoguchi

/// The real SMTP server of the delivery tests (`smtp_sink.py`, on aiosmtpd), in a directory of its
/// own: what it received, message by message, and a control file the tests change while it runs.
final class SMTPSink: Sendable {
    let directory: String
    let port: Int
    let tls: TLS?
    let implicitTLS: Bool
    let auth: String?
    private let process: Mutex<ChildProcess?>

    struct TLS: Sendable {
        let certificate: String
        let key: String
    }

    struct Received: Sendable {
        let bytes: [UInt8]
        let mailFrom: String
        let recipients: [String]
        let mailOptions: [String]
        /// The server's answer to the final dot; nil when it dropped the connection instead.
        let reply: String?
        let overTLS: Bool
        var accepted: Bool { reply?.hasPrefix("250") ?? false }
        var text: String { String(decoding: bytes, as: UTF8.self) }
    }

    /// Debian's interpreter: python3-aiosmtpd is installed for it (the one on PATH may be another).
    static var python: String { FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3" }
    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("smtp_sink.py").path
    }

    /// Starts a sink (on `port`, or any free one).
    init(port: Int = 0, tls: TLS? = nil, implicitTLS: Bool = false, auth: String? = nil, garbage: Bool = false) async throws {
        directory = try TestCluster.makeTemporaryDirectory(prefix: "smtp-sink")
        self.tls = tls
        self.implicitTLS = implicitTLS
        self.auth = auth
        try "{}".write(toFile: directory + "/control.json", atomically: true, encoding: .utf8)
        let (process, port) = try await Self.launch(directory: directory, port: port, tls: tls, implicitTLS: implicitTLS, auth: auth, garbage: garbage)
        self.port = port
        self.process = Mutex(process)
    }

    private static func launch(
        directory: String, port: Int, tls: TLS?, implicitTLS: Bool, auth: String?, garbage: Bool
    ) async throws -> (ChildProcess, Int) {
        let portFile = directory + "/port-\(UUID().uuidString.prefix(6)).log"
        var arguments = [script, "--dir", directory, "--control", directory + "/control.json", "--port", String(port)]
        if let tls { arguments += ["--cert", tls.certificate, "--key", tls.key] }
        if implicitTLS { arguments.append("--implicit-tls") }
        if let auth { arguments += ["--auth", auth] }
        if garbage { arguments.append("--garbage") }
        let process = try ChildProcess.start(python, arguments, log: portFile)
        for _ in 0..<200 {
            if let line = process.output.split(separator: "\n").first(where: { $0.hasPrefix("port ") }), let port = Int(line.dropFirst(5)) {
                return (process, port)
            }
            guard process.isRunning else { throw EmbeddedPostgresError("the SMTP sink exited: \(process.output)") }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw EmbeddedPostgresError("the SMTP sink did not start: \(process.output)")
    }

    /// What the relay URL for this sink is.
    var url: String { implicitTLS ? "smtps://localhost:\(port)" : "smtp://localhost:\(port)?starttls=\(tls == nil ? "off" : "required")" }

    func control(_ json: String) throws {
        let temporary = directory + "/control.tmp"
        try json.write(toFile: temporary, atomically: false, encoding: .utf8)
        rename(temporary, directory + "/control.json")
    }

    var received: [Received] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".eml") }.sorted()
        return names.compactMap { name in
            let base = directory + "/" + name.dropLast(4)
            guard let bytes = FileManager.default.contents(atPath: base + ".eml"), let meta = FileManager.default.contents(atPath: base + ".json"),
                  let json = try? JSONSerialization.jsonObject(with: meta) as? [String: Any] else { return nil }
            return Received(bytes: [UInt8](bytes), mailFrom: json["mail_from"] as? String ?? "", recipients: json["rcpt_tos"] as? [String] ?? [],
                            mailOptions: json["mail_options"] as? [String] ?? [], reply: json["reply"] as? String, overTLS: json["tls"] as? Bool ?? false)
        }
    }

    /// Copies a customer could have got: accepted ones, and ones the server had when it hung up.
    func copies(ofMessageID id: String) -> Int {
        received.filter { ($0.accepted || $0.reply == nil) && $0.text.contains("Message-ID: <\(id)>") }.count
    }

    func stop() async {
        let process = self.process.withLock { $0 }
        await process?.stop(SIGKILL)
        self.process.withLock { $0 = nil }
    }

    /// Starts again on the same port (a relay that was down comes back).
    func restart() async throws {
        let (process, _) = try await Self.launch(directory: directory, port: port, tls: tls, implicitTLS: implicitTLS, auth: auth, garbage: false)
        self.process.withLock { $0 = process }
    }

    deinit {
        if let process = process.withLock({ $0 }) { kill(process.pid, SIGKILL) }
    }

    /// A throwaway certificate for `localhost`, its own CA.
    /// A self-signed certificate and its key, for `subjectAltName` (`DNS:localhost`, `IP:127.0.0.1`).
    static func makeCertificate(subjectAltName: String = "DNS:localhost") async throws -> TLS {
        let directory = try TestCluster.makeTemporaryDirectory(prefix: "smtp-tls")
        let certificate = directory + "/cert.pem", key = directory + "/key.pem"
        let process = try ChildProcess.start("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate, "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=\(subjectAltName)",
        ], log: directory + "/openssl.log")
        await process.exit()
        guard FileManager.default.fileExists(atPath: certificate) else { throw EmbeddedPostgresError("openssl failed: \(process.output)") }
        return TLS(certificate: certificate, key: key)
    }
}
