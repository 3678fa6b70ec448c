import Foundation
import Logging
import ServiceLifecycle

/// The feed as Server-Sent Events (text/event-stream): every event as an `id:` (its cursor),
/// `event:` (its type) and `data:` (its JSON) block, pushed as it commits; a comment line (with the
/// cursor as `id:`) when nothing happened for `heartbeat`, so proxies keep an idle stream open.
///
/// Pulled, not pushed: the next page is read only when the response writer asks for more, so a slow
/// client slows its own stream instead of making the server buffer (or drop) events for it. It ends
/// when the client goes away (the next write fails and the writer stops pulling), the server shuts
/// down, retention removes events it has not sent yet, or the key that opened it is revoked (looked
/// at, with the feed, at most every `keyCheckInterval`): a key checked only when the stream opened
/// went on reading every event, recipients and comments included, for as long as the connection lasted.
struct EventStream: AsyncSequence, Sendable {
    typealias Element = ArraySlice<UInt8>

    let database: Database
    let feed: EventFeed
    let notifier: EventNotifier
    let key: FeedCursor.Key
    let filter: EventFeed.Filter
    let start: FeedCursor
    /// The key the stream was opened with (nil: none to watch).
    let keyID: UUID?
    let logger: Logger
    var heartbeat: Duration = .seconds(15)
    var keyCheckInterval: Duration = .seconds(1)

    func makeAsyncIterator() -> Iterator { Iterator(stream: self, cursor: start) }

    struct Iterator: AsyncIteratorProtocol {
        let stream: EventStream
        var cursor: FeedCursor
        var greeted = false
        var quietSince = ContinuousClock.now
        var keyCheckedAt = ContinuousClock.now

        mutating func next() async throws -> ArraySlice<UInt8>? {
            if !greeted {
                greeted = true
                // How long EventSource waits before reconnecting, and where it resumes if it must
                // before any event came: an `id` alone sets its last event id (the SSE spec sets it
                // before it drops a block with no data). Without it, a stream opened at "now" that
                // broke while quiet came back at a later "now", and what happened between was lost.
                return ArraySlice("retry: 2000\nid: \(cursor.encoded(with: stream.key))\n\n".utf8)
            }
            // Ends when the server shuts down: EventSource reconnects (to another instance) and resumes.
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                let seen = stream.notifier.generation
                var heldBack = false
                do {
                    let (feed, after, filter, logger) = (stream.feed, cursor, stream.filter, stream.logger)
                    let keyToCheck = ContinuousClock.now - keyCheckedAt >= stream.keyCheckInterval ? stream.keyID : nil
                    let (inForce, page, removedAt) = try await stream.database.withConnection { connection in
                        if let keyToCheck, try await !APIKeyStore(logger: logger).isInForce(keyToCheck, on: connection) {
                            return (false, nil as EventFeed.Page?, nil as Date?)
                        }
                        let page = try await feed.page(after: after, filter: filter, limit: 200, on: connection)
                        return (true, page, try await feed.removedAfter(after, on: connection))
                    }
                    if keyToCheck != nil { keyCheckedAt = .now }
                    guard inForce, let page else {
                        stream.logger.info("event stream ended: its key was revoked", metadata: ["key_id": "\(keyToCheck?.uuidString.lowercased() ?? "")"])
                        return nil
                    }
                    // Retention removed events the stream had not reached yet (a follower catching up
                    // slowly on a month's backlog): it ends rather than pass them over, and the client
                    // coming back with its last id is told `410 cursor-expired`, as a poll would be.
                    if let removedAt {
                        stream.logger.info("event stream ended: retention removed events it had not sent",
                                           metadata: ["removed_at": "\(removedAt.rfc3339UTC)"])
                        return nil
                    }
                    cursor = page.next
                    heldBack = page.heldBack
                    if !page.events.isEmpty {
                        quietSince = .now
                        return try frames(page.events)
                    }
                } catch {
                    stream.logger.warning("event stream: reading the feed failed", metadata: ["error": "\(String(reflecting: error))"])
                    try? await Task.sleep(for: .seconds(1))
                }
                let quiet = ContinuousClock.now - quietSince
                if quiet >= stream.heartbeat {
                    quietSince = .now
                    // With the cursor past events the filter skipped, so a reconnect does not read them again.
                    return ArraySlice(": keep-alive\nid: \(cursor.encoded(with: stream.key))\n\n".utf8)
                }
                // Committed events held back by an older transaction bring no second notification
                // when that one ends: look again shortly.
                // Woken at least every `keyCheckInterval` to look at the key again.
                await stream.notifier.wait(after: seen, upTo: heldBack ? .milliseconds(100) : Swift.min(stream.heartbeat - quiet, stream.keyCheckInterval))
            }
            return nil
        }

        /// One page's events as one chunk of SSE blocks.
        private func frames(_ events: [FeedEvent]) throws -> ArraySlice<UInt8> {
            var chunk: [UInt8] = []
            for event in events {
                chunk.append(contentsOf: "id: \(event.cursor.encoded(with: stream.key))\nevent: \(event.type)\ndata: ".utf8)
                chunk.append(contentsOf: try event.json(key: stream.key))
                chunk.append(contentsOf: "\n\n".utf8)
            }
            return chunk[...]
        }
    }
}
