import Foundation
import MadoguchiAPI
import PostgresNIO
import Testing
@testable import Madoguchi

/// Every event a test causes is read back and decoded with its type's schema from `openapi.yaml`
/// (`<Type>EventData`, generated with `additionalProperties: false`): a member missing, misnamed,
/// of the wrong type or not documented fails the test that caused it. The switch is over the whole
/// catalogue, so a new event type does not compile here until its schema exists.
enum EventPayloadCheck {
    static func decode(_ type: EventType, data: Data) throws {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        func check<Schema: Decodable>(_ schema: Schema.Type) throws { _ = try decoder.decode(schema, from: data) }
        // The decoder takes null for any optional member; the contract allows null nowhere.
        if let null = nullMember(in: try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) {
            throw NullMember(pointer: null)
        }
        switch type {
        case .ticketCreated: try check(Components.Schemas.TicketCreatedEventData.self)
        case .ticketUpdated: try check(Components.Schemas.TicketUpdatedEventData.self)
        case .ticketMerged: try check(Components.Schemas.TicketMergedEventData.self)
        case .ticketSLAWarning: try check(Components.Schemas.TicketSlaWarningEventData.self)
        case .ticketSLABreached: try check(Components.Schemas.TicketSlaBreachedEventData.self)
        case .ticketReopened: try check(Components.Schemas.TicketReopenedEventData.self)
        case .ticketPrioritized: try check(Components.Schemas.TicketPrioritizedEventData.self)
        case .ticketClaimed: try check(Components.Schemas.TicketClaimedEventData.self)
        case .ticketClaimRenewed: try check(Components.Schemas.TicketClaimRenewedEventData.self)
        case .ticketClaimReleased: try check(Components.Schemas.TicketClaimReleasedEventData.self)
        case .ticketClaimBroken: try check(Components.Schemas.TicketClaimBrokenEventData.self)
        case .ticketRouted: try check(Components.Schemas.TicketRoutedEventData.self)
        case .ticketAssigned: try check(Components.Schemas.TicketAssignedEventData.self)
        case .messageReceived: try check(Components.Schemas.MessageReceivedEventData.self)
        case .messageUnsent: try check(Components.Schemas.MessageUnsentEventData.self)
        case .messageDeliveryUpdated: try check(Components.Schemas.MessageDeliveryUpdatedEventData.self)
        case .messageDeliveryFailed: try check(Components.Schemas.MessageDeliveryFailedEventData.self)
        case .noteAdded: try check(Components.Schemas.NoteAddedEventData.self)
        case .replyDrafted: try check(Components.Schemas.ReplyDraftedEventData.self)
        case .replyEdited: try check(Components.Schemas.ReplyEditedEventData.self)
        case .replyDiscarded: try check(Components.Schemas.ReplyDiscardedEventData.self)
        case .replySubmitted: try check(Components.Schemas.ReplySubmittedEventData.self)
        case .replyApproved: try check(Components.Schemas.ReplyApprovedEventData.self)
        case .replyReturned: try check(Components.Schemas.ReplyReturnedEventData.self)
        case .replySent: try check(Components.Schemas.ReplySentEventData.self)
        case .replyDelivered: try check(Components.Schemas.ReplyDeliveredEventData.self)
        case .replyFailed: try check(Components.Schemas.ReplyFailedEventData.self)
        case .replyBounced: try check(Components.Schemas.ReplyBouncedEventData.self)
        case .replyHeld: try check(Components.Schemas.ReplyHeldEventData.self)
        case .replyDeliveryResolved: try check(Components.Schemas.ReplyDeliveryResolvedEventData.self)
        case .replyAutomaticWithheld: try check(Components.Schemas.ReplyAutomaticWithheldEventData.self)
        case .customerCreated: try check(Components.Schemas.CustomerCreatedEventData.self)
        case .customerUpdated: try check(Components.Schemas.CustomerUpdatedEventData.self)
        case .customerMerged: try check(Components.Schemas.CustomerMergedEventData.self)
        case .customerMergeSuggested: try check(Components.Schemas.CustomerMergeSuggestedEventData.self)
        case .customerIdentityAdded: try check(Components.Schemas.CustomerIdentityAddedEventData.self)
        case .customerFollowed: try check(Components.Schemas.CustomerFollowedEventData.self)
        case .customerUnfollowed: try check(Components.Schemas.CustomerUnfollowedEventData.self)
        case .identityUndeliverable: try check(Components.Schemas.IdentityUndeliverableEventData.self)
        case .identityDeliverable: try check(Components.Schemas.IdentityDeliverableEventData.self)
        case .chatPostback: try check(Components.Schemas.ChatPostbackEventData.self)
        case .templateCreated: try check(Components.Schemas.TemplateCreatedEventData.self)
        case .templateUpdated: try check(Components.Schemas.TemplateUpdatedEventData.self)
        case .templateDeleted: try check(Components.Schemas.TemplateDeletedEventData.self)
        case .ruleCreated: try check(Components.Schemas.RuleCreatedEventData.self)
        case .ruleUpdated: try check(Components.Schemas.RuleUpdatedEventData.self)
        case .agentCreated: try check(Components.Schemas.AgentCreatedEventData.self)
        case .agentUpdated: try check(Components.Schemas.AgentUpdatedEventData.self)
        case .agentAvailabilityChanged: try check(Components.Schemas.AgentAvailabilityChangedEventData.self)
        case .agentDeactivated: try check(Components.Schemas.AgentDeactivatedEventData.self)
        case .queueCreated: try check(Components.Schemas.QueueCreatedEventData.self)
        case .queueUpdated: try check(Components.Schemas.QueueUpdatedEventData.self)
        case .queueDeleted: try check(Components.Schemas.QueueDeletedEventData.self)
        case .calendarCreated: try check(Components.Schemas.CalendarCreatedEventData.self)
        case .calendarUpdated: try check(Components.Schemas.CalendarUpdatedEventData.self)
        case .calendarDeleted: try check(Components.Schemas.CalendarDeletedEventData.self)
        case .slaPolicyCreated: try check(Components.Schemas.SlaPolicyCreatedEventData.self)
        case .slaPolicyUpdated: try check(Components.Schemas.SlaPolicyUpdatedEventData.self)
        case .slaPolicyDeleted: try check(Components.Schemas.SlaPolicyDeletedEventData.self)
        case .webhookCreated: try check(Components.Schemas.WebhookCreatedEventData.self)
        case .webhookUpdated: try check(Components.Schemas.WebhookUpdatedEventData.self)
        case .webhookDeleted: try check(Components.Schemas.WebhookDeletedEventData.self)
        case .webhookDisabled: try check(Components.Schemas.WebhookDisabledEventData.self)
        }
    }

    struct NullMember: Error, CustomStringConvertible {
        let pointer: String
        var description: String { "\(pointer) is null, which no schema in openapi.yaml allows (leave the member out)" }
    }

    /// The JSON pointer of the first null in `value`.
    static func nullMember(in value: Any, at pointer: String = "") -> String? {
        switch value {
        case is NSNull: return pointer
        case let object as [String: Any]:
            for (key, member) in object.sorted(by: { $0.key < $1.key }) {
                if let found = nullMember(in: member, at: pointer + "/" + key) { return found }
            }
            return nil
        case let array as [Any]:
            for (index, item) in array.enumerated() {
                if let found = nullMember(in: item, at: pointer + "/\(index)") { return found }
            }
            return nil
        default: return nil
        }
    }

    /// Records an issue for each stored event its schema refuses (up to 50 of each type).
    static func expectDocumented(in database: Database) async throws {
        let events = try await database.withConnection { connection in
            // The first 50 of each type: every writer of a type shows up in its first events in all but
            // the load tests, whose thousands of claims are alike and would cost seconds of CPU to decode.
            let rows = try await connection.query("""
                SELECT id, type, data::text FROM (SELECT *, row_number() OVER (PARTITION BY type ORDER BY id) AS nth FROM events) AS e
                WHERE nth <= 50 ORDER BY id
                """, logger: TestCluster.logger)
            var events: [(Int64, String, String)] = []
            for try await row in rows.decode((Int64, String, String).self) { events.append(row) }
            return events
        }
        if let path = ProcessInfo.processInfo.environment["MADOGUCHI_TEST_EVENT_TYPES_SEEN"],
           let file = FileHandle(forWritingAtPath: path) {
            // Which types the suite exercises at all: `MADOGUCHI_TEST_EVENT_TYPES_SEEN=/tmp/seen swift test`.
            file.seekToEndOfFile()
            file.write(Data(events.map { $0.1 + "\n" }.joined().utf8))
            try? file.close()
        }
        // Decoding thousands of events is seconds of CPU in a debug build: off the cooperative threads,
        // which every other test in the process shares.
        let failures = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var failures: [String] = []
                for (id, name, data) in events {
                    guard let type = EventType(rawValue: name) else {
                        failures.append("event \(id) has a type outside the catalogue: \(name)")
                        continue
                    }
                    do {
                        try decode(type, data: Data(data.utf8))
                    } catch {
                        failures.append("event \(id) (\(name)) does not match its schema in openapi.yaml: \(error)\n  data: \(data)")
                    }
                }
                continuation.resume(returning: failures)
            }
        }
        for failure in failures { Issue.record(Comment(rawValue: failure)) }
    }
}
