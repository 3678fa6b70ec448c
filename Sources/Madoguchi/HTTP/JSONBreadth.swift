/// How broad a JSON text is, counted without parsing it: its separators outside strings (`:` after
/// each member name, `,` between members and elements), stopping once past a limit.
///
/// The gateways' JSON may be as large as a mail (files travel in it as base64), and every request
/// shares a cooperative pool of one thread per core: 800,000 members in a web form's `fields`
/// (12.7 MB) kept it busy for 17 s in parsing, the duplicate check and the contract check, and the
/// service stopped answering meanwhile (the security review). Real bodies hold dozens of values;
/// a few long strings are cheap to parse. Checked before anything else reads the body.
enum JSONBreadth {
    /// About 10,000 members (two separators each), which no request body of ours comes near: a
    /// form's fields, a message's attachments, a calendar's closed days are dozens.
    static let limit = 20_000

    /// Whether `json` has more than `limit` separators. Not a validity check: anything malformed is
    /// left to the parser.
    static func exceedsLimit(_ json: [UInt8], limit: Int = limit) -> Bool {
        var separators = 0
        var index = 0
        let count = json.count
        while index < count {
            switch json[index] {
            case UInt8(ascii: "\""):
                // Skip the string, escapes and all.
                index += 1
                while index < count, json[index] != UInt8(ascii: "\"") {
                    index += json[index] == UInt8(ascii: "\\") ? 2 : 1
                }
            case UInt8(ascii: ","), UInt8(ascii: ":"):
                separators += 1
                if separators > limit { return true }
            default:
                break
            }
            index += 1
        }
        return false
    }
}
