import Foundation
import Testing
@testable import Madoguchi

@Suite("CSV and the streaming pipe behind report downloads")
struct ReportCSVTests {
    @Test("RFC 4180: commas, quotes and line breaks are quoted, quotes doubled; Japanese passes as UTF-8; CRLF ends a line")
    func quoting() {
        #expect(CSV.quoted("plain") == "plain")
        #expect(CSV.quoted("a,b") == "\"a,b\"")
        #expect(CSV.quoted("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(CSV.quoted("two\nlines") == "\"two\nlines\"")
        #expect(CSV.quoted("crlf\r\nline") == "\"crlf\r\nline\"")
        #expect(CSV.quoted(" padded") == "\" padded\"")
        #expect(CSV.quoted("返品・交換") == "返品・交換")
        #expect(String(decoding: CSV.line(["返品, 交換", "x"]), as: UTF8.self) == "\"返品, 交換\",x\r\n")
        let cells: [ReportCell] = [.text("a"), .integer(3), .number(1.5), .time(Date(timeIntervalSince1970: 0)), .null]
        #expect(String(decoding: CSV.line(cells), as: UTF8.self) == "a,3,1.5,1970-01-01T00:00:00Z,\r\n")
        // As JSON writes them: a whole number without ".0", and no binary noise past a millionth.
        #expect(String(decoding: CSV.line([.number(8142), .number(ReportCell.millionths(2607.8999999999996)), .number(0.9995)]), as: UTF8.self)
                == "8142,2607.9,0.9995\r\n")
    }

    @Test("times are written as Foundation's ISO 8601 style writes them, to the second, from 1970 to 2999")
    func times() {
        var generator = SystemRandomNumberGenerator()
        let samples = [0, 951_782_400, 1_798_761_599.999, 4_102_444_800, 32_503_680_000 - 0.5, 1_700_000_000.25]
            + (0..<5000).map { _ in Double.random(in: 0..<32_503_680_000, using: &generator) }
        for seconds in samples {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(date.rfc3339UTC == date.formatted(.iso8601), "\(seconds)")
        }
    }

    @Test("a field needs quotes for a comma, quote or line break anywhere, or a space (ideographic too) at an end")
    func quotingRule() {
        for field in ["a,b", "\"", "x\ry", "x\ny", " a", "a ", "\u{3000}全角", "全角\u{3000}"] { #expect(CSV.needsQuotes(field), "\(field)") }
        for field in ["", "plain", "返品・交換", "a b", "1.5", "2026-12-02T15:04:05Z"] { #expect(!CSV.needsQuotes(field), "\(field)") }
    }

    @Test("the producer waits while the pipe is full and goes on as the consumer reads; the consumer sees every chunk in order")
    func backpressure() async throws {
        let pipe = ChunkPipe(capacity: 2)
        let sent = Task {
            for index in 0..<100 { try await pipe.send([UInt8(index)][...]) }
            pipe.finish()
        }
        var received: [UInt8] = []
        for try await chunk in pipe.reader() { received += chunk }
        try await sent.value
        #expect(received == (0..<100).map(UInt8.init))
    }

    @Test("a consumer that goes away stops the producer: its send throws instead of waiting for ever")
    func consumerGone() async throws {
        let pipe = ChunkPipe(capacity: 1)
        let producer = Self.sendThousand(into: pipe)
        do {
            var iterator = pipe.reader().makeAsyncIterator()
            _ = try await iterator.next()
        }
        // The iterator is gone: the producer is released well before it could send a thousand.
        #expect(try await producer.value < 1000)
    }

    @Test("a reader dropped before anyone reads it stops the producer too (a response refused after its handler ran)")
    func readerNeverRead() async throws {
        let pipe = ChunkPipe(capacity: 1)
        let producer = Self.sendThousand(into: pipe)
        do { _ = pipe.reader() }
        #expect(try await producer.value < 1000)
    }

    /// A producer that sends up to a thousand one-byte chunks and stops when the consumer is gone;
    /// its value is how many it sent.
    static func sendThousand(into pipe: ChunkPipe) -> Task<Int, any Error> {
        Task {
            var sent = 0
            do {
                while sent < 1000 {
                    try await pipe.send([1][...])
                    sent += 1
                }
            } catch is CancellationError {}
            return sent
        }
    }

    @Test("a failure of the producer reaches the consumer after the chunks before it")
    func failure() async throws {
        struct Broken: Error {}
        let pipe = ChunkPipe()
        try await pipe.send([7][...])
        pipe.finish(throwing: Broken())
        var iterator = pipe.reader().makeAsyncIterator()
        #expect(try await iterator.next() == [7][...])
        await #expect(throws: Broken.self) { try await iterator.next() }
    }
}
