import Foundation
import PostgresNIO

/// One value of a report row, as the report's SQL produced it.
enum ReportCell: Sendable, Equatable {
    case text(String)
    case integer(Int64)
    case number(Double)
    case time(Date)
    case null

    /// Decoded by the column's type: the report queries cast every column to text, bigint, double
    /// precision or timestamptz.
    init(_ cell: PostgresCell) throws {
        guard cell.bytes != nil else {
            self = .null
            return
        }
        switch cell.dataType {
        case .int2, .int4, .int8: self = .integer(try cell.decode(Int64.self))
        case .float4, .float8: self = .number(try cell.decode(Double.self))
        case .timestamptz, .timestamp: self = .time(try cell.decode(Date.self))
        default: self = .text(try cell.decode(String.self))
        }
    }

    var integer: Int64 { if case .integer(let value) = self { value } else { 0 } }
    var number: Double? { if case .number(let value) = self { value } else if case .integer(let value) = self { Double(value) } else { nil } }
    var text: String { if case .text(let value) = self { value } else { "" } }
    var time: Date { if case .time(let value) = self { value } else { .distantPast } }
}

/// CSV as RFC 4180 writes it: UTF-8, CRLF line ends, a field quoted (quotes doubled) when it holds a
/// comma, a quote, a line break or leading or trailing space; times in RFC 3339 UTC as in the JSON.
enum CSV {
    /// The byte-order mark Excel needs to read UTF-8 (日本語 otherwise turns into mojibake).
    static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

    static func line(_ fields: [String]) -> [UInt8] {
        Array((fields.map(quoted).joined(separator: ",") + "\r\n").utf8)
    }

    static func line(_ cells: [ReportCell]) -> [UInt8] {
        line(cells.map(field))
    }

    static func field(_ cell: ReportCell) -> String {
        switch cell {
        case .text(let text): text
        case .integer(let value): String(value)
        case .number(let value): value.isFinite ? String(value) : ""
        case .time(let date): date.formatted(.iso8601)
        case .null: ""
        }
    }

    static func quoted(_ field: String) -> String {
        let needsQuotes = field.contains { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }
            || field.first?.isWhitespace == true || field.last?.isWhitespace == true
        return needsQuotes ? "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : field
    }
}
