import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// How long each step of an SMTP conversation may take before the connection is given up.
/// RFC 5321 §4.5.3.2 suggests minutes; a relay that slow is better retried later than waited on,
/// except after the final dot, where giving up makes the delivery uncertain.
public struct SMTPTimeouts: Sendable {
    public var connect: TimeAmount = .seconds(15)
    public var command: TimeAmount = .seconds(60)
    /// The reply to the final `.` of DATA: the relay may be scanning the message.
    public var dataEnd: TimeAmount = .seconds(180)
    public init() {}
}

/// One open connection to a relay, greeted, secured and authenticated as the relay's settings ask,
/// ready to carry mail. A session is used by one delivery at a time (the pool sees to that) and can
/// carry many messages in turn (`RSET` between them).
package final class SMTPSession: Sendable {
    struct Capabilities: Sendable {
        var keywords: [String: String] = [:]
        func offers(_ keyword: String) -> Bool { keywords[keyword] != nil }
        /// SIZE's limit; nil when none is announced (or 0, "no fixed limit").
        var sizeLimit: Int? { keywords["SIZE"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil } }
        var authMechanisms: Set<String> { Set((keywords["AUTH"] ?? "").uppercased().split(separator: " ").map(String.init)) }

        init(ehlo reply: SMTPReply) {
            // The first line is the server's name; each later line a keyword and its parameters.
            for line in reply.lines.dropFirst() {
                let parts = line.split(separator: " ", maxSplits: 1)
                guard let keyword = parts.first else { continue }
                keywords[keyword.uppercased()] = parts.count > 1 ? String(parts[1]) : ""
            }
        }

        init() {}
    }

    let relay: SMTPRelay
    let channel: any NIOCore.Channel
    private let handler: SMTPReplyHandler
    let capabilities: Capabilities
    let isSecure: Bool
    private let timeouts: SMTPTimeouts

    private init(relay: SMTPRelay, channel: any NIOCore.Channel, handler: SMTPReplyHandler, capabilities: Capabilities, isSecure: Bool, timeouts: SMTPTimeouts) {
        self.relay = relay
        self.channel = channel
        self.handler = handler
        self.capabilities = capabilities
        self.isSecure = isSecure
        self.timeouts = timeouts
    }

    var isOpen: Bool { channel.isActive }

    // MARK: - Opening

    /// Connects, reads the greeting, says EHLO, upgrades to TLS and authenticates as configured.
    package static func open(relay: SMTPRelay, tls: NIOSSLContext?, timeouts: SMTPTimeouts, group: any EventLoopGroup) async throws -> SMTPSession {
        let eventLoop = group.next()
        let handler = SMTPReplyHandler(eventLoop: eventLoop)
        let implicitTLS = relay.security == .implicitTLS
        if implicitTLS && tls == nil { throw SMTPError.session(.unsupported("smtps:// needs a TLS context")) }
        let serverName = TLSServerName.forHost(relay.host)
        let channel: any NIOCore.Channel
        do {
            channel = try await ClientBootstrap(group: eventLoop)
                .connectTimeout(timeouts.connect)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if implicitTLS, let tls {
                            try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName))
                        }
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                }
                .connect(host: relay.host, port: relay.port).get()
        } catch {
            throw SMTPError.connection("cannot connect to \(relay.host):\(relay.port): \(error)")
        }
        var session = SMTPSession(relay: relay, channel: channel, handler: handler, capabilities: .init(), isSecure: implicitTLS, timeouts: timeouts)
        do {
            let greeting = try await session.read(step: "the greeting")
            guard greeting.code == 220 else { throw SMTPError.rejected(command: "(connect)", reply: greeting) }
            var capabilities = try await session.ehlo()
            if !implicitTLS, relay.security != .plain {
                if capabilities.offers("STARTTLS"), let tls {
                    try session.expect(try await session.command("STARTTLS"), 220, "STARTTLS")
                    // On the event loop, so that no clear-text byte can arrive between the check and TLS.
                    try await channel.eventLoop.submit {
                        guard handler.isDrained else {
                            throw SMTPError.garbled("the relay sent more in clear text after agreeing to STARTTLS; the connection is not trusted")
                        }
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName), position: .first)
                    }.get()
                    session = SMTPSession(relay: relay, channel: channel, handler: handler, capabilities: capabilities, isSecure: true, timeouts: timeouts)
                    // RFC 3207 §4.2: forget everything learnt before TLS and ask again.
                    capabilities = try await session.ehlo()
                } else if relay.security == .startTLSRequired {
                    throw SMTPError.unsupported("\(relay.host) does not offer STARTTLS, which MADOGUCHI_SMTP_URL requires (starttls=required)")
                }
            }
            session = SMTPSession(relay: relay, channel: channel, handler: handler, capabilities: capabilities, isSecure: session.isSecure, timeouts: timeouts)
            try await session.authenticate()
            return session
        } catch let error as SMTPError {
            try? await channel.close()
            throw SMTPError.session(error)
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// EHLO, else HELO for a relay that does not know EHLO (500 or 502: an old relay or an
    /// appliance; RFC 5321 §3.2): it offers no extensions, so no STARTTLS (refused when the URL
    /// requires it), no AUTH and no pipelining. Before, every attempt stopped at the 502 and the
    /// replies waited for hours, then failed.
    private func ehlo() async throws -> Capabilities {
        let reply = try await command("EHLO \(relay.heloName)")
        if reply.code == 500 || reply.code == 502 {
            try expect(try await command("HELO \(relay.heloName)"), 250, "HELO")
            return Capabilities()
        }
        try expect(reply, 250, "EHLO")
        return Capabilities(ehlo: reply)
    }

    /// AUTH PLAIN, else LOGIN (RFC 4954), and only over TLS unless the relay is this machine.
    private func authenticate() async throws {
        guard let username = relay.username, let password = relay.password else { return }
        guard isSecure || relay.isLoopback else {
            throw SMTPError.unsupported("\(relay.host) offered no TLS; the SMTP password is not sent in clear text")
        }
        let mechanisms = capabilities.authMechanisms
        if mechanisms.contains("PLAIN") {
            let token = Data(([0] + Array(username.utf8) + [0] + Array(password.utf8))).base64EncodedString()
            try expect(try await command("AUTH PLAIN \(token)", logged: "AUTH PLAIN ***"), 235, "AUTH PLAIN")
        } else if mechanisms.contains("LOGIN") {
            try expect(try await command("AUTH LOGIN"), 334, "AUTH LOGIN")
            try expect(try await command(Data(username.utf8).base64EncodedString(), logged: "(user)"), 334, "AUTH LOGIN user")
            try expect(try await command(Data(password.utf8).base64EncodedString(), logged: "(password)"), 235, "AUTH LOGIN password")
        } else {
            throw SMTPError.unsupported("\(relay.host) offers no AUTH mechanism we speak (PLAIN, LOGIN); it offers \(mechanisms.sorted())")
        }
    }

    // MARK: - Mail

    package struct Envelope: Sendable {
        package var from: String
        package var recipients: [String]
        /// The message needs the relay's SMTPUTF8 (RFC 6531): an address is not ASCII.
        package var needsSMTPUTF8: Bool
        package init(from: String, recipients: [String], needsSMTPUTF8: Bool) {
            self.from = from
            self.recipients = recipients
            self.needsSMTPUTF8 = needsSMTPUTF8
        }
    }

    package struct Outcome: Sendable {
        package var accepted: [String] = []
        /// Recipients refused for good (5xx) or for now (4xx), with the relay's reply.
        var refused: [(recipient: String, reply: SMTPReply)] = []
        /// The reply to the final dot, when DATA was sent.
        package var finalReply: SMTPReply?
        /// The reply to DATA when it was not 354: nothing was sent, and `accepted` got nothing.
        package var refusedData: SMTPReply?
    }

    /// `address` as RFC 5321 §4.1.2 writes it in a command: a local part that is no dot-string (a
    /// carrier address such as `taro..yamada.@docomo.ne.jp`, from before the carriers enforced the
    /// rules) goes as a quoted string, as Postfix quotes it when it relays; sent bare, strict relays
    /// answer 501 5.1.3, which would mark a working address undeliverable.
    static func envelopeForm(_ address: String) -> String {
        guard let at = address.lastIndex(of: "@") else { return address }
        let local = address[..<at]
        let atext = Set("!#$%&'*+-/=?^_`{|}~".utf8)
        let isDotString = !local.isEmpty && local.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { atom in
            !atom.isEmpty && atom.utf8.allSatisfy { $0 >= 0x80 || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || atext.contains($0) }
        }
        guard !isDotString, !(local.hasPrefix("\"") && local.hasSuffix("\"") && local.count >= 2) else { return address }
        let escaped = local.utf8.reduce(into: "") { quoted, byte in
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { quoted.append("\\") }
            quoted.unicodeScalars.append(Unicode.Scalar(byte))
        }
        return "\"" + (local.utf8.allSatisfy { $0 < 0x80 } ? escaped : String(local)) + "\"" + address[at...]
    }

    /// Failures after the final dot was sent: the relay may have taken the mail, so the caller must
    /// not simply try again.
    /// `refused`: what the relay said to the recipients it refused before the dot, which stands
    /// whatever became of the mail.
    struct AfterFinalDot: Error, CustomStringConvertible {
        let underlying: any Error
        var refused: [(recipient: String, reply: SMTPReply)] = []
        var description: String { "after the message was handed over: \(underlying)" }
    }

    /// Sends one message. `pointOfNoReturn` runs after the whole body is written and before the
    /// final `.` that commits it: what it records is how a crash between the two is told apart from
    /// a crash before (see `OutboxWorker`). If it throws, the dot is never sent and the relay
    /// discards the message.
    package func send(_ message: [UInt8], envelope: Envelope, pointOfNoReturn: @Sendable () async throws -> Void) async throws -> Outcome {
        var outcome = Outcome()
        if let limit = capabilities.sizeLimit, message.count > limit {
            throw SMTPError.rejected(command: "SIZE", reply: SMTPReply(code: 552, lines: ["the message is \(message.count) bytes; \(relay.host) takes at most \(limit)"]))
        }
        if envelope.needsSMTPUTF8 && !capabilities.offers("SMTPUTF8") {
            throw SMTPError.unsupported("an address is not ASCII and \(relay.host) does not offer SMTPUTF8")
        }
        var mailFrom = "MAIL FROM:<\(envelope.from)>"
        if capabilities.offers("SIZE") { mailFrom += " SIZE=\(message.count)" }
        if capabilities.offers("8BITMIME") && message.contains(where: { $0 >= 0x80 }) { mailFrom += " BODY=8BITMIME" }
        if envelope.needsSMTPUTF8 { mailFrom += " SMTPUTF8" }
        let envelopeCommands = [mailFrom] + envelope.recipients.map { "RCPT TO:<\(Self.envelopeForm($0))>" }
        let replies: [SMTPReply]
        var dataReply: SMTPReply?
        if capabilities.offers("PIPELINING") {
            // RFC 2920: the envelope and DATA in one write, their replies read in order — one round
            // trip instead of two plus one per recipient, which a distant relay makes worth having.
            let all = try await commands(envelopeCommands + ["DATA"])
            replies = Array(all.dropLast())
            dataReply = all.last
        } else {
            var sequential: [SMTPReply] = []
            for line in envelopeCommands {
                let reply = try await command(line)
                sequential.append(reply)
                if sequential.count == 1 && reply.code != 250 { break }
            }
            replies = sequential
        }
        try expect(replies[0], 250, "MAIL FROM")
        for (recipient, reply) in zip(envelope.recipients, replies.dropFirst()) {
            if reply.code == 250 || reply.code == 251 { outcome.accepted.append(recipient) } else { outcome.refused.append((recipient, reply)) }
        }
        guard !outcome.accepted.isEmpty else {
            // A pipelining server that still said 354 wants its (empty) message ended first.
            if dataReply?.code == 354 { _ = try? await exchange(".\r\n", step: "an empty DATA", timeout: timeouts.command) }
            await resetOrClose()
            return outcome
        }
        if dataReply == nil { dataReply = try await command("DATA") }
        if let refused = dataReply, refused.code != 354 {
            // What each recipient was told stands; the accepted ones got no mail, for the reason DATA gives.
            outcome.refusedData = refused
            await resetOrClose()
            return outcome
        }
        try await write(Self.dotStuffed(message))
        do {
            try await pointOfNoReturn()
        } catch {
            // Without the dot the relay keeps nothing; closing is the only way to say so mid-DATA.
            try? await channel.close()
            throw error
        }
        do {
            let reply = try await exchange(".\r\n", step: "the end of DATA", timeout: timeouts.dataEnd)
            outcome.finalReply = reply
            return outcome
        } catch {
            try? await channel.close()
            throw AfterFinalDot(underlying: error, refused: outcome.refused)
        }
    }

    /// Ends the transaction the relay refused, so the connection can carry the next message; if
    /// RSET is not answered 250, the connection is closed rather than pooled (the next, unrelated
    /// reply would meet "503 sender already specified", a permanent refusal, and fail for good).
    private func resetOrClose() async {
        if let reply = try? await command("RSET"), reply.code == 250 { return }
        try? await channel.close()
    }

    /// Readies the connection for the next message.
    func reset() async throws {
        try expect(try await command("RSET"), 250, "RSET")
    }

    package func close() async {
        if channel.isActive { _ = try? await exchange("QUIT\r\n", step: "QUIT", timeout: .seconds(5)) }
        try? await channel.close()
    }

    /// The body with CRLF line ends ensured at the end and every line starting with "." doubled
    /// (RFC 5321 §4.5.2), without the final dot.
    static func dotStuffed(_ message: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.count + message.count / 50 + 2)
        var lineStart = true
        for byte in message {
            if lineStart && byte == UInt8(ascii: ".") { out.append(byte) }
            out.append(byte)
            lineStart = byte == UInt8(ascii: "\n")
        }
        if !out.isEmpty && !lineStart { out += [0x0D, 0x0A] }
        return out
    }

    // MARK: - Exchanges

    func command(_ line: String, logged: String? = nil) async throws -> SMTPReply {
        guard !line.contains("\r"), !line.contains("\n") else { throw SMTPError.unsupported("a command with a line break: \(logged ?? line)") }
        return try await exchange(line + "\r\n", step: logged ?? String(line.prefix(40)), timeout: timeouts.command)
    }

    /// Several commands in one write; their replies, in order.
    private func commands(_ lines: [String]) async throws -> [SMTPReply] {
        guard lines.allSatisfy({ !$0.contains("\r") && !$0.contains("\n") }) else { throw SMTPError.unsupported("a command with a line break") }
        let text = lines.map { $0 + "\r\n" }.joined()
        var replies: [SMTPReply] = []
        let fired = TimeoutFlag()
        let timer = channel.eventLoop.scheduleTask(in: timeouts.command) { [channel] in
            fired.set()
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        let futures = try await channel.eventLoop.submit { [handler, channel] in
            let futures = lines.map { _ in handler.nextReply() }
            channel.writeAndFlush(ByteBuffer(string: text), promise: nil)
            return futures
        }.get()
        do {
            for future in futures { replies.append(try await future.get()) }
        } catch {
            if fired.isSet { throw SMTPError.timedOut(step: "\(lines.first?.prefix(10) ?? "") and what followed it") }
            throw error
        }
        return replies
    }

    private func read(step: String) async throws -> SMTPReply {
        try await withTimeout(timeouts.command, step: step) { [handler, channel] in
            channel.eventLoop.flatSubmit { handler.nextReply() }
        }
    }

    /// Asks for the next reply before writing, so it cannot slip past.
    private func exchange(_ text: String, step: String, timeout: TimeAmount) async throws -> SMTPReply {
        try await withTimeout(timeout, step: step) { [handler, channel] in
            channel.eventLoop.flatSubmit {
                let reply = handler.nextReply()
                channel.writeAndFlush(ByteBuffer(string: text), promise: nil)
                return reply
            }
        }
    }

    /// The message, before its final dot. A relay that stops reading (its window stays shut) would
    /// hold the write forever, and with it the worker's slot and connection: after the end-of-DATA
    /// timeout the connection is closed, and without the dot the relay keeps nothing.
    /// The timer is armed and cancelled on the channel's event loop, in the hop the write makes anyway:
    /// armed from outside, each would wake the loop once more per message.
    private func write(_ bytes: [UInt8]) async throws {
        let fired = TimeoutFlag()
        let timeout = timeouts.dataEnd
        do {
            try await channel.eventLoop.flatSubmit { [channel] in
                let timer = channel.eventLoop.scheduleTask(in: timeout) {
                    fired.set()
                    channel.close(promise: nil)
                }
                return channel.writeAndFlush(ByteBuffer(bytes: bytes)).always { _ in timer.cancel() }
            }.get()
        } catch {
            if fired.isSet { throw SMTPError.timedOut(step: "writing the message") }
            throw SMTPError.connection("writing the message failed: \(error)")
        }
    }

    private func withTimeout(
        _ timeout: TimeAmount, step: String, _ start: @Sendable @escaping () -> EventLoopFuture<SMTPReply>
    ) async throws -> SMTPReply {
        let fired = TimeoutFlag()
        let timer = channel.eventLoop.scheduleTask(in: timeout) { [channel] in
            fired.set()
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        do {
            return try await start().get()
        } catch {
            if fired.isSet { throw SMTPError.timedOut(step: step) }
            throw error
        }
    }

    @discardableResult
    func expect(_ reply: SMTPReply, _ code: Int, _ command: String) throws -> SMTPReply {
        guard reply.code == code else { throw SMTPError.rejected(command: command, reply: reply) }
        return reply
    }
}

/// Set once by a timer, read by the task it cut short.
private final class TimeoutFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
