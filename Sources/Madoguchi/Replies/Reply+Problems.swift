import Foundation

extension Problem {
    /// A guard refused the reply: one 422 whose `type` is the first finding's kind, listing every
    /// finding with its line and column.
    static func sendGuard(_ kind: SendGuard.Finding.Kind, _ findings: [SendGuard.Finding]) -> Problem {
        var problem = Problem(
            Problem.Kind(rawValue: kind.rawValue), status: .unprocessableContent, title: "The reply cannot be sent",
            detail: findings.map { finding in
                (finding.line.map { "line \($0), column \(finding.column ?? 1): " } ?? "") + finding.message
            }.joined(separator: "; "))
        problem.members["findings"] = .array(findings.map { finding in
            var object: [String: Problem.Member] = ["type": .string(finding.kind.rawValue), "message": .string(finding.message)]
            if let line = finding.line { object["line"] = .int(line) }
            if let column = finding.column { object["column"] = .int(column) }
            if let text = finding.text { object["text"] = .string(text) }
            return .object(object)
        })
        return problem
    }

    static func replyNotDraft(_ reply: Reply) -> Problem {
        Problem(.replyNotDraft, status: .conflict, title: "Not a draft", detail: "The reply is \(reply.state.rawValue); only a draft can be edited or sent.")
    }

    static func replyNotSubmittable(_ reply: Reply) -> Problem {
        let detail = reply.state == .submitted
            ? "You submitted this reply already; it waits for a supervisor's approval."
            : "The reply is \(reply.state.rawValue); only a draft, or a reply someone else submitted, can be submitted."
        return Problem(.replyNotDraft, status: .conflict, title: "Not a draft", detail: detail)
    }

    static func replyNotSubmitted(_ reply: Reply) -> Problem {
        Problem(.replyNotDraft, status: .conflict, title: "Not submitted", detail: "The reply is \(reply.state.rawValue); only a submitted reply can be approved or returned.")
    }

    static func replyChanged(_ reply: Reply, approved version: Int64) -> Problem {
        replyChanged(reply, read: version, action: "approving")
    }

    static func replyChanged(_ reply: Reply, read version: Int64, action: String) -> Problem {
        Problem(.replyChanged, status: .conflict, title: "Reply changed",
                detail: "The reply is at version \(reply.version), not \(version): it was edited since it was read. Read it again before \(action) it.")
    }

    /// Closed is final: the customer's answer to a reply from a closed ticket would start a new
    /// ticket, away from the conversation it answers.
    static func ticketClosed(_ ticketID: UUID) -> Problem {
        Problem(.ticketClosed, status: .conflict, title: "Ticket closed",
                detail: "Ticket \(ticketID.lowercased) is closed and takes no reply; answer on the customer's newer ticket, or open one.")
    }

    static func claimRequired(_ ticketID: UUID) -> Problem {
        Problem(.claimRequired, status: .conflict, title: "Claim required",
                detail: "Claim the ticket first (POST /v1/tickets/\(ticketID.lowercased)/claim); a reply needs your live claim.")
    }

    /// Mail to this address bounced for good (or the LINE account blocked us): sending again needs
    /// `confirm_undeliverable`, and the customer's other identities are offered instead.
    static func recipientUndeliverable(_ recipients: [(String, String)], alternatives: [(kind: String, value: String)]) -> Problem {
        var problem = Problem(
            .recipientUndeliverable, status: .unprocessableContent, title: "Recipient undeliverable",
            detail: recipients.map { "\($0.0) is marked undeliverable (\($0.1))" }.joined(separator: "; ")
                + (alternatives.isEmpty ? "; the customer has no other deliverable identity" : "; the customer can also be reached at "
                    + alternatives.map { "\($0.kind) \($0.value)" }.joined(separator: ", "))
                + ". Send with confirm_undeliverable to try anyway.")
        problem.members["undeliverable"] = .strings(recipients.map(\.0))
        problem.members["alternatives"] = .array(alternatives.map { .object(["kind": .string($0.kind), "value": .string($0.value)]) })
        return problem
    }
}
