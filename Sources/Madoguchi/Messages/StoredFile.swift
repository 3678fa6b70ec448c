import Foundation
import Logging
import NIOCore
import PostgresNIO

/// A file kept in the database (a message's attachment, or a reply's before it goes out), read for
/// download a slice at a time: memory stays flat however large the file, and no pool connection is
/// held while a slow client reads.
struct StoredFile: Sendable {
    /// Whose file it is. Each table has its own owner (`MessageStore`, `ReplyStore`); this only reads.
    enum Owner: Sendable {
        case message
        /// A reply's file, found only under that reply.
        case reply(UUID)

        var table: String {
            switch self {
            case .message: "attachments"
            case .reply: "reply_attachments"
            }
        }
    }

    let id: UUID
    let owner: Owner
    let filename: String
    let declaredMediaType: String
    let size: Int64
    let sha256: [UInt8]
    /// The first slice, read with the facts above when asked for (a file up to `sliceSize` then costs
    /// one round trip); nil when an answer may not need the bytes at all (a `304`, a `406`).
    let firstSlice: ByteBuffer?

    /// Half a mebibyte: a compressed value is decompressed from its start for every slice, so slices
    /// much smaller make a large text file cost many times its size; much larger ones hold more
    /// memory per download.
    static let sliceSize = 512 * 1024

    /// The file `id` of `owner`, or nil.
    static func find(_ id: UUID, of owner: Owner, withFirstSlice: Bool, on connection: PostgresConnection, logger: Logger) async throws -> StoredFile? {
        // Constants, written inline.
        let columns = "filename, media_type, size, sha256, " + (withFirstSlice ? "substring(content FROM 1 FOR \(sliceSize))" : "NULL::bytea")
        let rows = switch owner {
        case .message:
            try await connection.run("SELECT \(unescaped: columns) FROM attachments WHERE id = \(id)", logger: logger)
        case .reply(let replyID):
            try await connection.run("SELECT \(unescaped: columns) FROM reply_attachments WHERE id = \(id) AND reply_id = \(replyID)", logger: logger)
        }
        for try await (name, type, size, sha, slice) in rows.decode((String, String, Int64, ByteBuffer, ByteBuffer?).self) {
            return StoredFile(id: id, owner: owner, filename: name, declaredMediaType: type, size: size, sha256: Array(buffer: sha), firstSlice: slice)
        }
        return nil
    }

    /// A strong entity tag that never changes: the bytes' digest.
    var entityTag: String { "\"" + sha256.lowercaseHex + "\"" }

    /// The type the sender declared, when it is a plain `type/subtype`; anything else (parameters,
    /// stray characters, nothing at all) is served as bytes.
    var mediaType: String {
        let declared = declaredMediaType.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let parts = declared.split(separator: "/", omittingEmptySubsequences: false)
        let tokenCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789!#$&^_.+-".utf8)
        guard declared.utf8.count <= 255, parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy(tokenCharacters.contains) }) else {
            return "application/octet-stream"
        }
        return declared
    }

    /// The bytes of `range` (all of them when nil): the first slice `find` read, for a range from the
    /// start, and then the rest as the consumer asks for them.
    func bytes(_ range: ClosedRange<Int64>? = nil, database: Database, logger: Logger) -> Slices {
        Slices(file: self, range: range ?? 0...max(size - 1, 0), database: database, logger: logger)
    }

    /// Reads one slice per step, each on a pool connection taken for that read alone. A file gone
    /// meanwhile (a reply's file taken off) ends the body with an error, so the client sees it cut short.
    struct Slices: AsyncSequence, Sendable {
        typealias Element = ArraySlice<UInt8>
        let file: StoredFile
        let range: ClosedRange<Int64>
        let database: Database
        let logger: Logger

        func makeAsyncIterator() -> Iterator { Iterator(slices: self) }

        struct Iterator: AsyncIteratorProtocol {
            let slices: Slices
            /// The next byte to send, and the first not to (the range's end, within the file).
            var offset: Int64
            let end: Int64
            var first = true

            init(slices: Slices) {
                self.slices = slices
                offset = slices.range.lowerBound
                end = Swift.min(slices.range.upperBound + 1, slices.file.size)
            }

            mutating func next() async throws -> ArraySlice<UInt8>? {
                let file = slices.file
                if first, slices.range.lowerBound == 0, let slice = file.firstSlice, slice.readableBytes > 0 {
                    first = false
                    return take(slice)
                }
                first = false
                guard offset < end else { return nil }
                let (start, length) = (offset, Swift.min(Int64(StoredFile.sliceSize), end - offset))
                do {
                    let slice = try await slices.database.withConnection { connection -> ByteBuffer? in
                        let rows = try await connection.run("""
                            SELECT substring(content FROM \(Int32(clamping: start + 1))::int FOR \(Int32(clamping: length))::int)
                            FROM \(unescaped: file.owner.table) WHERE id = \(file.id)
                            """, logger: slices.logger)
                        for try await slice in rows.decode(ByteBuffer.self) { return slice }
                        return nil
                    }
                    guard let slice, slice.readableBytes > 0 else { throw FileGone(id: file.id) }
                    return take(slice)
                } catch {
                    // The client sees only a connection closed short of Content-Length; the log says why.
                    slices.logger.error("a file download stopped", metadata: [
                        "attachment_id": "\(file.id.lowercased)", "offset": "\(start)", "error": "\(String(reflecting: error))",
                    ])
                    throw error
                }
            }

            /// The part of `slice` (read from `offset`) inside the range, and the offset moved past it.
            private mutating func take(_ slice: ByteBuffer) -> ArraySlice<UInt8> {
                let count = Int(Swift.min(Int64(slice.readableBytes), end - offset))
                offset += Int64(count)
                return ArraySlice(slice.readableBytesView.prefix(count))
            }
        }
    }

    struct FileGone: Error, CustomStringConvertible {
        let id: UUID
        var description: String { "the file \(id.uuidString.lowercased()) went away while it was being read" }
    }

    /// `Content-Disposition` for saving under the sender's name (RFC 6266): `filename` for old
    /// clients, ASCII only; `filename*` with the name itself in UTF-8 (RFC 8187).
    var contentDisposition: String {
        let name = filename.isEmpty ? "attachment" : filename
        let fallback = String(name.unicodeScalars.map { scalar -> Character in
            scalar.isASCII && scalar.value >= 0x20 && scalar.value != 0x7F && scalar != "\"" && scalar != "\\" ? Character(scalar) : "_"
        })
        let attributeCharacters = Set("!#$&+-.^_`|~".utf8)
        let encoded = name.utf8.map { byte -> String in
            let isAlphanumeric = (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
            return isAlphanumeric || attributeCharacters.contains(byte) ? String(UnicodeScalar(byte)) : String(format: "%%%02X", byte)
        }.joined()
        return "attachment; filename=\"\(fallback)\"; filename*=UTF-8''\(encoded)"
    }
}
