import Foundation
import Madoguchi

#if canImport(Glibc)
import Glibc
#endif

/// A minimal blocking HTTP/1.1 client over one keep-alive loopback connection: enough for a benchmark
/// to drive the service from many threads without a client library of its own.
///
/// It blocks its thread: use it on threads of its own (`BenchmarkSupport.onThread`), never on Swift's
/// cooperative pool (a thread per core), where a wait for the in-process service it talks to can
/// take the very threads that service needs to answer.
final class LoopbackHTTPClient {
    private let descriptor: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw BenchmarkError("socket: \(String(cString: strerror(errno)))") }
        var noDelay: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
        // A server that never answers is an error after two minutes, not a thread blocked for good.
        var timeout = timeval(tv_sec: 120, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        // No close on failure here: a class whose initializer throws once every property is set still
        // runs deinit, which closes it. Closing twice could close a descriptor another thread just got.
        try Self.connect(descriptor, port: port)
    }

    /// Connects `descriptor` to 127.0.0.1:`port`.
    static func connect(_ descriptor: Int32, port: Int) throws {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw BenchmarkError("connect to 127.0.0.1:\(port): \(String(cString: strerror(errno)))") }
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// A port free on loopback now, for a server started next. Picked below the kernel's ephemeral
    /// range: a port the kernel hands out for port 0 is one it also hands to outgoing connections,
    /// which the many clients of a test run took before the server could bind it (CI failed on it).
    static func freePort() throws -> Int {
        let firstEphemeral = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))
            .flatMap { $0.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } } ?? 32768
        let candidates = 10_000..<max(10_001, min(firstEphemeral, 32768))
        for _ in 0..<200 {
            let port = Int.random(in: candidates)
            if (try? bound(port: port)) != nil { return port }
        }
        return try bound(port: 0)
    }

    /// Binds `port` (0: any) on 127.0.0.1 and lets it go; the port bound.
    private static func bound(port: Int) throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let status = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length) == 0 ? getsockname(descriptor, pointer, &length) : -1
            }
        }
        guard status == 0 else { throw BenchmarkError("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Sends one request and returns the response's status code (the body is read and dropped).
    func send(_ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8] = []) throws -> Int {
        try exchange(method, path, headers: headers, body: body, keepBody: false).status
    }

    /// Sends one request and returns the status and the body (responses with `Content-Length`).
    func exchange(_ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8] = [], keepBody: Bool = true) throws -> (status: Int, body: [UInt8]) {
        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.count)\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        let bytes = Array(request.utf8) + body
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw BenchmarkError("send: \(String(cString: strerror(errno)))") }
            sent += count
        }
        let head = try readHead()
        let lines = head.split(separator: "\r\n")
        guard let statusLine = lines.first, let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") else {
            throw BenchmarkError("malformed response head: \(head.prefix(100))")
        }
        let length = lines.dropFirst().compactMap { line -> Int? in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
            return Int(parts[1].trimmingCharacters(in: .whitespaces))
        }.first ?? 0
        while buffer.count < length { try fill() }
        let received = keepBody ? Array(buffer[0..<length]) : []
        buffer.removeFirst(length)
        return (status, received)
    }

    /// One receive buffer for the connection's life: the client shares two cores with the service it
    /// measures, so it allocates nothing per read.
    private var chunk = [UInt8](repeating: 0, count: 16384)

    private func fill() throws {
        let count = recv(descriptor, &chunk, chunk.count, 0)
        if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { throw BenchmarkError("no answer within 120 s") }
        guard count > 0 else { throw BenchmarkError("connection closed by the server") }
        buffer += chunk[0..<count]
    }

    /// The response head, up to its blank line; the search resumes where the last read left it.
    private func readHead() throws -> String {
        let separator: [UInt8] = [13, 10, 13, 10]
        var searched = 0
        while true {
            if let found = buffer[max(0, searched - 3)...].firstRange(of: separator) {
                let head = String(decoding: buffer[0..<found.lowerBound], as: UTF8.self)
                buffer.removeFirst(found.upperBound)
                return head
            }
            searched = buffer.count
            try fill()
        }
    }

}

public struct BenchmarkError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
