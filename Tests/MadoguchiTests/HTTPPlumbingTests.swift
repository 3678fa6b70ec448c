import Foundation
import Testing
@testable import Madoguchi

@Suite("HTTP plumbing without a server")
struct HTTPPlumbingTests {
    @Test("cursors round-trip and refuse what we did not issue")
    func cursors() throws {
        let cursor = PageCursor.encode(["1234"])
        #expect(!cursor.contains("="))
        #expect(try PageCursor.decode(cursor, count: 1) == ["1234"])
        #expect(throws: Problem.self) { try PageCursor.decode(cursor, count: 2) }
        #expect(throws: Problem.self) { try PageCursor.decode("%%%", count: 1) }
        #expect(throws: Problem.self) { try PageCursor.decode(PageCursor.encode([]).replacingOccurrences(of: "d", with: "e"), count: 0) }
        #expect(try PageCursor.limit(nil) == 50)
        #expect(try PageCursor.limit(200) == 200)
        #expect(throws: Problem.self) { try PageCursor.limit(201) }
    }

    @Test("the next page's link keeps every other parameter exactly as sent, and replaces only the cursor")
    func nextPageLink() {
        #expect(PageCursor.nextPage(of: "/v1/reports/sla-breaches?tag=c%2B%2B&cursor=old&from=2026-01-01", cursor: "abc")
                == "/v1/reports/sla-breaches?tag=c%2B%2B&from=2026-01-01&cursor=abc")
        #expect(PageCursor.nextPage(of: "/v1/tickets", cursor: "a+b/c") == "/v1/tickets?cursor=a%2Bb%2Fc")
        #expect(PageCursor.nextPage(of: "/v1/tickets?q=%E5%B1%B1+x&c%75rsor=1", cursor: "n") == "/v1/tickets?q=%E5%B1%B1+x&cursor=n")
    }

    @Test("the route table matches templates and lists allowed methods")
    func routeTable() {
        let table = RouteTable()
        table.add(method: .get, path: "/v1/tickets")
        table.add(method: .get, path: "/v1/tickets/{ticket_id}")
        table.add(method: .patch, path: "/v1/tickets/{ticket_id}")
        table.add(method: .get, path: "/v1/tickets/{ticket_id}/messages")
        #expect(table.allowedMethods(forPath: "/v1/tickets/abc") == ["GET", "HEAD", "PATCH"])
        #expect(table.allowedMethods(forPath: "/v1/tickets/abc/messages") == ["GET", "HEAD"])
        #expect(table.allowedMethods(forPath: "/v1/tickets/abc/notes") == [])
        #expect(table.allowedMethods(forPath: "/v2/tickets") == [])

        // A literal segment wins over a parameter, as in the router: /v1/inbound/email is only POST.
        table.add(method: .post, path: "/v1/inbound/email")
        table.add(method: .get, path: "/v1/inbound/{inbound_id}")
        #expect(table.allowedMethods(forPath: "/v1/inbound/email") == ["POST"])
        #expect(table.allowedMethods(forPath: "/v1/inbound/abc") == ["GET", "HEAD"])
    }

    @Test("request ids from callers are accepted only when they cannot forge a log line")
    func requestIDs() {
        typealias Middleware = ObservabilityMiddleware<Hummingbird.BasicRequestContext>
        #expect(Middleware.acceptableRequestID("3f2c1e9a-8b7d-4c6e-9f10-2a3b4c5d6e7f") != nil)
        #expect(Middleware.acceptableRequestID("gw_42.retry-1") != nil)
        #expect(Middleware.acceptableRequestID("") == nil)
        #expect(Middleware.acceptableRequestID("a b") == nil)
        #expect(Middleware.acceptableRequestID("line\nbreak") == nil)
        #expect(Middleware.acceptableRequestID(String(repeating: "a", count: 129)) == nil)
    }

    @Test("If-None-Match matches the tag, its weak form, a list, or *")
    func entityTags() {
        #expect(APIHandler.entityTags("\"3\"", match: "\"3\""))
        #expect(APIHandler.entityTags("W/\"3\"", match: "\"3\""))
        #expect(APIHandler.entityTags("\"1\", \"3\"", match: "\"3\""))
        #expect(APIHandler.entityTags("*", match: "\"3\""))
        #expect(!APIHandler.entityTags("\"2\"", match: "\"3\""))
    }
}

import Hummingbird

import HTTPTypes
import NIOCore
import NIOHTTP1
import OpenAPIRuntime

extension HTTPPlumbingTests {
    @Test("a body cut off by the client, bare or wrapped by the generated server, is a client close (499); other errors are not")
    func clientDisconnects() {
        func wrapped(_ error: any Error) -> ServerError {
            ServerError(operationID: "createApiKey", request: HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/v1/api-keys"),
                        requestBody: nil, requestMetadata: .init(), causeDescription: "Unknown", underlyingError: error)
        }
        for error: any Error in [HTTPParserError.invalidEOFState, ChannelError.ioOnClosedChannel, ChannelError.eof,
                                 IOError(errnoCode: ECONNRESET, reason: "read")] {
            #expect(ProblemMiddleware<BasicRequestContext>.isClientDisconnect(error), "\(error)")
            #expect(ProblemMiddleware<BasicRequestContext>.isClientDisconnect(wrapped(wrapped(error))), "\(error)")
        }
        for error: any Error in [Problem.internalError, ChannelError.connectTimeout(.seconds(1)), IOError(errnoCode: ENOSPC, reason: "write"),
                                 DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "x"))] {
            #expect(!ProblemMiddleware<BasicRequestContext>.isClientDisconnect(wrapped(error)), "\(error)")
        }
    }
}

extension HTTPPlumbingTests {
    @Test("a DecodingError is the client's (400) only while the request is decoded; one the handler meets in our own data is a 500")
    func decodingErrors() {
        let error = DecodingError.keyNotFound(
            AnyCodingKey("ticket_id"), .init(codingPath: [], debugDescription: "No value associated with key ticket_id."))
        var wrapped = ServerError(
            operationID: "ingestEmail", request: HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/v1/inbound/email",
                                                             headerFields: [.contentLength: "10"]),
            requestBody: nil, requestMetadata: .init(), causeDescription: "Unknown", underlyingError: error)
        #expect(ProblemMiddleware<BasicRequestContext>.problem(for: wrapped).status == .badRequest)
        wrapped.operationInput = "the decoded input"
        #expect(ProblemMiddleware<BasicRequestContext>.problem(for: wrapped).status == .internalServerError)
    }

    private struct AnyCodingKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

extension HTTPPlumbingTests {
    @Test("If-Match: *, lists, weak tags and commas inside tags are read as RFC 9110 writes them; anything else is invalid")
    func ifMatch() throws {
        #expect(try #require(IfMatch(" * ")).matches("12"))
        let list = try #require(IfMatch(#"W/"3", "4" ,"a,b""#))
        #expect(list.tags?.count == 3)
        #expect(!list.matches("3"), "weak tags never match strongly")
        #expect(list.matches("4") && list.matches("a,b") && !list.matches("5"))
        for invalid in ["", "3", #""3"#, #""3" "4""#, ",", #"W/3"#, "*, \"3\""] {
            #expect(IfMatch(invalid) == nil, "\(invalid)")
        }
    }
}

extension HTTPPlumbingTests {
    @Test("a key lookup takes its wrong-key token before it starts: lookups in flight at once cannot share the last one")
    func wrongKeyLookupsReserve() {
        let limiter = RateLimiter(limits: [:], wrongKeyLimit: RateLimit(perSecond: 0.001, burst: 2))
        let start = ContinuousClock.now
        // Three lookups started before any has answered: the third finds no token left.
        let inFlight = (0..<3).map { _ in limiter.reserveKeyLookup(from: "192.0.2.1", now: start)!.allowed }
        #expect(inFlight == [true, true, false])
        // One key proved valid: its token comes back, for one more lookup.
        limiter.giveBackKeyLookup(from: "192.0.2.1")
        #expect(limiter.reserveKeyLookup(from: "192.0.2.1", now: start)?.allowed == true)
        #expect(limiter.reserveKeyLookup(from: "192.0.2.1", now: start)?.allowed == false)
        // Valid keys cost nothing in the end, however many; never more than the burst comes back.
        let other = RateLimiter(limits: [:], wrongKeyLimit: RateLimit(perSecond: 0.001, burst: 2))
        for _ in 0..<10 {
            #expect(other.reserveKeyLookup(from: "192.0.2.2", now: start)?.allowed == true)
            other.giveBackKeyLookup(from: "192.0.2.2")
            other.giveBackKeyLookup(from: "192.0.2.2")
        }
        #expect((0..<3).map { _ in other.reserveKeyLookup(from: "192.0.2.2", now: start)!.allowed } == [true, true, false])
        #expect(RateLimiter(limits: [:]).reserveKeyLookup(from: "192.0.2.1") == nil, "unlimited without a wrong-key limit")
        // One IPv6 host holds a /64: a new address a request shares the one allowance.
        let v6 = RateLimiter(limits: [:], wrongKeyLimit: RateLimit(perSecond: 0.001, burst: 2))
        let hosts = ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:0db8:0001:0002:0:0:0:abcd"]
        #expect(hosts.map { v6.reserveKeyLookup(from: $0, now: start)!.allowed } == [true, true, false])
        #expect(v6.reserveKeyLookup(from: "2001:db8:1:3::1", now: start)?.allowed == true, "another /64 has its own")
        #expect(RateLimiter.client("::ffff:192.0.2.7") == "192.0.2.7" && RateLimiter.client("192.0.2.7") == "192.0.2.7")
        #expect(RateLimiter.client("2001:db8:1:2::1") == "20010db800010002::/64" && RateLimiter.client(nil) == "-")
    }

    @Test("a key's bucket: the burst, then one request per 1/rate seconds; each key and role on its own")
    func rateLimiter() throws {
        let limiter = RateLimiter(limits: [.agent: RateLimit(perSecond: 2, burst: 3)])
        let (key, other) = (UUID(), UUID())
        let start = ContinuousClock.now
        let burst = (0..<4).map { _ in limiter.take(keyID: key, role: .agent, now: start)! }
        #expect(burst.map(\.allowed) == [true, true, true, false])
        #expect(burst.map { $0.headers[.rateLimitRemaining] } == ["2", "1", "0", "0"])
        #expect(burst[3].retryAfter == 1)
        #expect(limiter.take(keyID: other, role: .agent, now: start)?.allowed == true, "another key has its own bucket")
        #expect(limiter.take(keyID: key, role: .gateway, now: start) == nil, "a role without a limit is not limited")
        // Half a second refills one token at 2/s.
        #expect(limiter.take(keyID: key, role: .agent, now: start + .milliseconds(500))?.allowed == true)
        #expect(limiter.take(keyID: key, role: .agent, now: start + .milliseconds(500))?.allowed == false)
        // Idle long enough, the bucket is full again, never more.
        let later = start + .seconds(60)
        #expect((0..<4).map { _ in limiter.take(keyID: key, role: .agent, now: later)!.allowed } == [true, true, true, false])
        let webhooks = RateLimiter(limits: [:], providerLimit: RateLimit(perSecond: 1, burst: 1))
        #expect(webhooks.takeProviderWebhook(from: "192.0.2.1", now: start)?.allowed == true)
        #expect(webhooks.takeProviderWebhook(from: "192.0.2.1", now: start)?.allowed == false)
        #expect(webhooks.takeProviderWebhook(from: "192.0.2.2", now: start)?.allowed == true, "another address has its own bucket")
        #expect(RateLimiter(limits: [:]).takeProviderWebhook(from: "192.0.2.1") == nil, "unlimited without a provider limit")
        #expect(RateLimit("20/200") == RateLimit(perSecond: 20, burst: 200))
        #expect(RateLimit("20") == nil && RateLimit("0/5") == nil && RateLimit("x/y") == nil)
        // So small that the time to refill overflowed: refused as a setting, not a crash at the first request.
        #expect(RateLimit("1e-17/1") == nil && RateLimit("0.001/10000000") != nil)
        let slowest = RateLimiter(limits: [.agent: RateLimit("0.001/1")!])
        #expect((0..<3).map { _ in slowest.take(keyID: key, role: .agent, now: start)!.allowed } == [true, false, false])
        #expect(slowest.take(keyID: key, role: .agent, now: start)?.retryAfter == 1000)
    }

    @Test("the provider webhooks' buckets, one per client address, do not grow for ever: refilled ones are dropped")
    func rateLimiterForgetsRefilledBuckets() {
        let limiter = RateLimiter(limits: [:], providerLimit: RateLimit(perSecond: 100, burst: 10))
        let start = ContinuousClock.now
        // 30,000 addresses over 30 s, each calling once (rotating IPv6 addresses, say); a bucket refills in 10 ms.
        for n in 0..<30_000 {
            _ = limiter.takeProviderWebhook(from: "2001:db8::\(String(n, radix: 16))", now: start + .milliseconds(n))
        }
        #expect(limiter.bucketCount <= RateLimiter.sweepAbove + 1_000, "\(limiter.bucketCount) buckets")
        // A bucket still refilling is kept: its address is still limited.
        let busy = RateLimiter(limits: [:], providerLimit: RateLimit(perSecond: 1, burst: 1))
        #expect(busy.takeProviderWebhook(from: "192.0.2.9", now: start)?.allowed == true)
        for n in 0..<(RateLimiter.sweepAbove + 10) {
            _ = busy.takeProviderWebhook(from: "198.51.100.\(n)", now: start + .milliseconds(500))
        }
        #expect(busy.takeProviderWebhook(from: "192.0.2.9", now: start + .milliseconds(600))?.allowed == false)
    }
}

extension HTTPPlumbingTests {
    @Test("body limits by route: templates match one segment, empty segments count for nothing")
    func bodyLimitRoutes() {
        let limits = ["/v1/inbound/email": 25, "/v1/replies/{reply_id}/attachments": 14]
        #expect(BodyLimitMiddleware<MadoguchiRequestContext>.limit(for: "/v1/inbound/email", in: limits) == 25)
        #expect(BodyLimitMiddleware<MadoguchiRequestContext>.limit(for: "/v1/inbound/email/", in: limits) == 25)
        #expect(BodyLimitMiddleware<MadoguchiRequestContext>.limit(for: "//v1//inbound/email", in: limits) == 25)
        #expect(BodyLimitMiddleware<MadoguchiRequestContext>.limit(for: "/v1/replies/0b7e/attachments", in: limits) == 14)
        #expect(BodyLimitMiddleware<MadoguchiRequestContext>.limit(for: "/v1/replies/0b7e", in: limits) == nil)
        #expect(BodyLimitMiddleware<MadoguchiRequestContext>.limit(for: "/v1/inbound/emails", in: limits) == nil)
    }
}
