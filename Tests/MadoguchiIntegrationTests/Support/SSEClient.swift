import Foundation
@testable import Madoguchi

#if canImport(Glibc)
import Glibc
#endif

/// A minimal Server-Sent Events reader on a plain socket, as a browser's EventSource would be: it
/// reads events as they arrive and can hang up mid-stream (to test resuming with Last-Event-ID).
final class SSEClient {
    struct Event {
        var id: String?
        var type: String?
        var data: String
    }

    private let descriptor: Int32
    private var buffer = ""
    private(set) var status: String = ""
    private(set) var sawComment = false
    /// As EventSource keeps it: the last `id:` the stream sent, in an event or in a block of its own.
    private(set) var lastEventID: String?
    /// The server ended the response (its last, empty chunk came) or closed the connection.
    private(set) var ended = false

    init(port: Int, path: String, headers: [String: String]) throws {
        let request = "GET \(path) HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n"
            + headers.map { "\($0.key): \($0.value)\r\n" }.joined() + "\r\n"
        // Reads wake every second to check the caller's deadline.
        descriptor = try RawHTTP.connectSending(port: port, request: request, timeoutSeconds: 1)
    }

    deinit { close(descriptor) }

    /// Events as they come, until `count` have or `timeout` passes. The socket blocks, so it is read
    /// on a thread of its own: on Swift's cooperative pool (a thread per core) it would stall the very
    /// server it waits for, which runs in this process.
    func read(count: Int, timeout: Duration) async -> [Event] {
        await withCheckedContinuation { continuation in
            nonisolated(unsafe) let client = self
            Thread { continuation.resume(returning: client.readBlocking(count: count, timeout: timeout)) }.start()
        }
    }

    /// Waits for the response head: from then on the stream's starting point is fixed.
    func head(timeout: Duration) async -> String {
        _ = await read(count: 0, timeout: timeout)
        return status
    }

    /// The stream's last `id:` once one came (a block of its own counts), or nil after `timeout`.
    func lastID(timeout: Duration) async -> String? {
        await withCheckedContinuation { continuation in
            nonisolated(unsafe) let client = self
            Thread {
                _ = client.readBlocking(count: 0, timeout: timeout, until: { client.lastEventID != nil })
                continuation.resume(returning: client.lastEventID)
            }.start()
        }
    }

    /// Whether the server ends the stream within `timeout`.
    func ends(within timeout: Duration) async -> Bool {
        await withCheckedContinuation { continuation in
            nonisolated(unsafe) let client = self
            Thread {
                _ = client.readBlocking(count: 0, timeout: timeout, until: { client.ended })
                continuation.resume(returning: client.ended)
            }.start()
        }
    }

    private func readBlocking(count: Int, timeout: Duration, until enough: () -> Bool = { true }) -> [Event] {
        var events: [Event] = []
        let start = ContinuousClock.now
        var bytes = [UInt8](repeating: 0, count: 65536)
        while (events.count < count || status.isEmpty || !enough()) && ContinuousClock.now - start < timeout {
            events += takeEvents(limit: count - events.count)
            if events.count >= count && !status.isEmpty && enough() { break }
            let received = recv(descriptor, &bytes, bytes.count, 0)
            if received == 0 {
                ended = true
                break
            }
            if received > 0 {
                let text = String(decoding: bytes[0..<received], as: UTF8.self)
                buffer += text
                // Chunked transfer's last chunk: "0", then an empty line.
                if (buffer.hasPrefix("0\r\n\r\n") && !status.isEmpty) || buffer.hasSuffix("\r\n0\r\n\r\n") { ended = true }
            }
        }
        return events
    }

    private func takeEvents(limit: Int) -> [Event] {
        if status.isEmpty, let headEnd = buffer.range(of: "\r\n\r\n") {
            status = String(buffer[..<headEnd.lowerBound].prefix { $0 != "\r" })
            buffer = String(buffer[headEnd.upperBound...])
        }
        guard !status.isEmpty else { return [] }
        var events: [Event] = []
        // Chunked transfer: each frame arrives as "<size>\r\n<frame>\r\n"; drop the framing.
        let pieces: [String] = buffer.components(separatedBy: "\r\n")
        let cleaned = pieces.filter { piece in !(piece.count <= 8 && !piece.isEmpty && piece.allSatisfy(\.isHexDigit)) }.joined()
        var blocks = cleaned.components(separatedBy: "\n\n")
        let rest = blocks.removeLast()
        var consumed = 0
        for block in blocks {
            var event = Event(data: "")
            var isEvent = false, isComment = false
            for line in block.split(separator: "\n") {
                if line.hasPrefix(":") { isComment = true }
                else if line.hasPrefix("id: ") { event.id = String(line.dropFirst(4)) }
                else if line.hasPrefix("event: ") { event.type = String(line.dropFirst(7)); isEvent = true }
                else if line.hasPrefix("data: ") { event.data += String(line.dropFirst(6)) }
            }
            // An event past the limit waits for the next read; a block that is no event is taken now.
            if isEvent && events.count >= limit { break }
            consumed += 1
            if isComment { sawComment = true }
            if let id = event.id { lastEventID = id }
            if isEvent { events.append(event) }
        }
        buffer = (Array(blocks.dropFirst(consumed)) + [rest]).joined(separator: "\n\n")
        return events
    }
}
