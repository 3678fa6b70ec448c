import Foundation
import PostgresNIO

/// Response and resolution targets per priority × channel, counted in business time on a calendar.
/// The clocks themselves are kept by the database (`tickets_sla_clocks`, migration 0026), so that
/// every writer of a ticket keeps them in step without knowing about them.
public struct SLAPolicy: Sendable, Equatable {
    public struct Target: Sendable, Equatable {
        public var priority: Ticket.Priority
        /// nil: every channel without a target of its own.
        public var channel: Channel?
        public var firstResponseMinutes: Int?
        public var nextResponseMinutes: Int?
        public var resolutionMinutes: Int?
    }

    public var id: UUID
    public var name: String
    public var calendarID: UUID
    public var warningFraction: Double
    public var isDefault: Bool
    public var targets: [Target]
    public var version: Int64
    public var createdAt: Date
    public var updatedAt: Date

    /// Whether its tickets' clocks count as they did under `before`: only its name or default flag
    /// changed, or nothing did (a PUT sent again: its tickets keep their versions, and agents their ETags).
    func movesNoClock(since before: SLAPolicy) -> Bool {
        calendarID == before.calendarID && warningFraction == before.warningFraction && targets == before.targets
    }

    static let columns = "id, name, calendar_id, warning_fraction, is_default, version, created_at, updated_at"

    init(row: PostgresRow) throws {
        let row = row.makeRandomAccess()
        id = try row.value("id")
        name = try row.value("name")
        calendarID = try row.value("calendar_id")
        warningFraction = try row.value("warning_fraction")
        isDefault = try row.value("is_default")
        version = try row.value("version")
        createdAt = try row.value("created_at")
        updatedAt = try row.value("updated_at")
        targets = []
    }
}

/// What a supervisor writes.
struct SLAPolicyDraft: Sendable {
    var name: String
    var calendarID: UUID
    var warningFraction: Double
    var isDefault: Bool
    var targets: [SLAPolicy.Target]

    /// What the generated decoder leaves unchecked, each naming its field.
    func problems() -> [Problem.FieldError] {
        var errors: [Problem.FieldError] = []
        if name.trimmed.isEmpty { errors.append(.init(pointer: "/name", message: "must not be blank")) }
        if name.count > 200 { errors.append(.init(pointer: "/name", message: "must be at most 200 characters")) }
        if !(warningFraction > 0 && warningFraction < 1) {
            errors.append(.init(pointer: "/warning_fraction", message: "must be between 0 and 1 (exclusive), got \(warningFraction)"))
        }
        if targets.count > 20 { errors.append(.init(pointer: "/targets", message: "at most 20 targets (4 priorities × 5 channel choices)")) }
        var seen: Set<String> = []
        for (index, target) in targets.enumerated() {
            let key = target.priority.rawValue + "/" + (target.channel?.rawValue ?? "*")
            if !seen.insert(key).inserted {
                errors.append(.init(pointer: "/targets/\(index)", message: "a second target for \(target.priority.rawValue) on \(target.channel?.rawValue ?? "every channel")"))
            }
            for (field, minutes) in [("first_response_minutes", target.firstResponseMinutes), ("next_response_minutes", target.nextResponseMinutes),
                                     ("resolution_minutes", target.resolutionMinutes)] {
                if let minutes, !(1...525_600).contains(minutes) {
                    errors.append(.init(pointer: "/targets/\(index)/\(field)", message: "must be between 1 and 525600 minutes (a year), got \(minutes)"))
                }
            }
        }
        return errors
    }
}
