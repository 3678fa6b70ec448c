import Crypto
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Writes a message's files, in the order the sender gave them, with size and sha256 computed from
/// the bytes themselves (the table's CHECK holds size to the content). Every channel's ingest uses it.
struct AttachmentWriter: Sendable {
    let logger: Logger

    struct File: Sendable {
        var filename: String
        var mediaType: String
        var content: [UInt8]
        var contentID: String? = nil
        var isInline: Bool = false
    }

    func insert(_ files: [File], messageID: UUID, on connection: PostgresConnection) async throws {
        for (position, file) in files.enumerated() {
            try await connection.query("""
                INSERT INTO attachments (message_id, position, filename, media_type, size, sha256, content_id, inline, content)
                VALUES (\(messageID), \(position), \(file.filename), \(file.mediaType), \(Int64(file.content.count)),
                        \(ByteBuffer(bytes: SHA256.hash(data: file.content))), \(file.contentID), \(file.isInline), \(ByteBuffer(bytes: file.content)))
                """, logger: logger)
        }
    }
}
