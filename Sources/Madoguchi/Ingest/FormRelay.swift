import MadoguchiMail

/// A web form on the shop's own site (WordPress's Contact Form 7, MW WP Form, a cart's お問い合わせ
/// page) mails each inquiry to the support address from an address of the shop's, with the customer's
/// address in Reply-To: SPF and DMARC forbid it to write the customer's address in From. Such a mail
/// is the customer's. Filed under its From, every inquiry the form sent became one customer,
/// `wordpress@shop.example`, and every answer went to that mailbox instead of the customer.
///
/// The form's addresses are named (`MADOGUCHI_FORM_MAIL_FROM`); the support address itself counts
/// as one, as forms are often set to send from it. Another sender's Reply-To is theirs to choose, and
/// a mail's sender stays its From, as any mail client answers it.
struct FormRelay: Sendable {
    /// The forms' addresses and the support address, as `AutomaticReply.baseAddress` compares them.
    let senders: Set<String>

    init(formAddresses: [String], ownAddress: String?) {
        senders = Set((formAddresses + (ownAddress.map { [$0] } ?? [])).map(AutomaticReply.baseAddress))
    }

    /// A form's mail: the form's address and the customer it came for.
    struct Relayed: Sendable {
        /// The mail's From, as written.
        let form: String
        /// The customer, their address in the form identities store it (`EmailIngest.usableSender`).
        let customer: MailAddress
        /// The customer's address as the Reply-To wrote it.
        let written: String
    }

    /// The customer a form relayed `mail` for: the first Reply-To address that is none of the shop's
    /// own, nor at the From's own domain (a colleague sending as the support address with their own
    /// Reply-To, `tanaka@shop.example`, is no customer). Nil for any other mail, and for a form's mail
    /// whose From domain disowns it (`dmarc=fail`: someone else wrote the form's address in From). A
    /// reply of ours that comes back (its Reply-To is the support address's `+t1234`) relays nobody.
    func relayed(_ mail: ParsedMail) -> Relayed? {
        guard !senders.isEmpty, mail.classification == .customer, let from = mail.from?.address,
              senders.contains(AutomaticReply.baseAddress(from)), !AutomaticReply.failsDMARC(mail) else { return nil }
        let ownDomain = Self.domain(of: from)
        for written in mail.replyTo where !senders.contains(AutomaticReply.baseAddress(written.address)) && Self.domain(of: written.address) != ownDomain {
            if let customer = EmailIngest.usableSender(written) { return Relayed(form: from, customer: customer, written: written.address) }
        }
        return nil
    }

    static func domain(of address: String) -> String {
        IdentityValue.comparable(address).split(separator: "@").last.map { $0.lowercased() } ?? ""
    }
}
