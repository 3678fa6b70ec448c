import MadoguchiMail

/// Identities in the one form they are stored and matched in, whoever supplies them (ingest, the order
/// system, a supervisor): email with its domain lower-cased and the local part as sent, phone in
/// E.164 (Japan the default region), chat as `provider:user id`, the rest trimmed.
enum IdentityValue {
    /// Characters, as PostgreSQL counts them: the column's limit.
    static let maximumLength = 512

    /// The stored form, or a 422 naming `field` and saying what is wrong.
    static func normalize(_ kind: Customer.Identity.Kind, _ raw: String, field: String) throws -> String {
        let value = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        func invalid(_ message: String) -> Problem { Problem.validationFailed([.init(pointer: field, message: message)]) }
        guard !value.isEmpty else { throw invalid("is empty") }
        guard !value.contains("\u{0}") else { throw invalid("contains a NUL character") }
        // The column's own check (customer_identities.value) would refuse it too, naming no field.
        guard Text.length(value) <= maximumLength else { throw invalid("is longer than \(maximumLength) characters") }
        switch kind {
        case .email:
            let address = MailAddress.normalize(value)
            guard let at = address.lastIndex(of: "@"), at != address.startIndex, address.index(after: at) != address.endIndex,
                  !address.contains(where: { $0.isWhitespace })
            else { throw invalid("'\(value)' is not an email address") }
            return address
        case .phone:
            switch PhoneNumber.normalize(value) {
            case .valid(let e164): return e164
            case .invalid(let reason): throw invalid("'\(value)' is not a phone number: \(reason)")
            }
        case .chat:
            guard let colon = value.firstIndex(of: ":"), colon != value.startIndex, value.index(after: colon) != value.endIndex else {
                throw invalid("a chat identity is 'provider:user id', e.g. 'intercom:12345'")
            }
            return value
        case .external, .line:
            return value
        }
    }

    /// For comparing an address someone typed with stored identities: trimmed, and an email's
    /// domain lower-cased as identities are stored (the local part is kept as written).
    static func comparable(_ address: String) -> String {
        let trimmed = address.trimmingCharacters(in: .whitespaces)
        guard let at = trimmed.lastIndex(of: "@") else { return trimmed }
        return String(trimmed[..<at]) + trimmed[at...].lowercased()
    }
}
