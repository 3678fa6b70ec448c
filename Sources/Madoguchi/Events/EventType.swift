/// Every kind of change the service records in `events`: the one list of names. The database
/// accepts only these (`event_types`, migration 0017) and `openapi.yaml` documents them
/// (`EventType`); `EventCatalogueTests` holds the three equal.
///
/// Names are dotted, subject first (Chatwoot's `lib/events/types.rb` does the same), and never
/// change once shipped: the feed and webhooks hand them to other systems.
enum EventType: String, CaseIterable, Sendable {
    // MARK: Tickets
    /// A ticket was opened (by a customer's first message, or a message after its ticket closed).
    case ticketCreated = "ticket.created"
    /// Someone changed a ticket's status, priority, queue, category, tags or assignee.
    case ticketUpdated = "ticket.updated"
    /// A pending or solved ticket opened again: the customer wrote, or a reply did not reach them.
    case ticketReopened = "ticket.reopened"
    /// A priority rule set a new ticket's priority.
    case ticketPrioritized = "ticket.prioritized"
    /// An agent claimed a ticket (directly, or from the queue).
    case ticketClaimed = "ticket.claimed"
    /// The holder of a claim extended it.
    case ticketClaimRenewed = "ticket.claim_renewed"
    /// The holder let go of a claim.
    case ticketClaimReleased = "ticket.claim_released"
    /// A supervisor took another agent's live claim away.
    case ticketClaimBroken = "ticket.claim_broken"
    /// Rules set a new ticket's queue, category, tags or required skill.
    case ticketRouted = "ticket.routed"
    /// Auto-assignment gave a waiting ticket to an available agent of its queue.
    case ticketAssigned = "ticket.assigned"
    /// A duplicate ticket was merged into another of the same customer: closed, and its later
    /// messages join the other.
    case ticketMerged = "ticket.merged"
    /// A ticket's SLA clock passed its warning point: its response or resolution falls due soon.
    case ticketSLAWarning = "ticket.sla_warning"
    /// A ticket's SLA clock passed its due time without the response or resolution it measures.
    case ticketSLABreached = "ticket.sla_breached"

    // MARK: Messages
    /// A customer's message (or a bounce or report about our mail) joined a ticket.
    case messageReceived = "message.received"
    /// The customer withdrew a chat message (LINE unsend); it stays on the timeline, marked.
    case messageUnsent = "message.unsent"
    /// A provider reported progress on a text we sent.
    case messageDeliveryUpdated = "message.delivery_updated"
    /// A provider reported that a text we sent did not arrive.
    case messageDeliveryFailed = "message.delivery_failed"
    /// An agent wrote an internal note (申し送り), never sent to the customer.
    case noteAdded = "note.added"

    // MARK: Replies
    /// An agent started a reply.
    case replyDrafted = "reply.drafted"
    /// An agent changed a reply's text, subject or recipients.
    case replyEdited = "reply.edited"
    /// An agent asked a supervisor to approve a reply.
    case replySubmitted = "reply.submitted"
    /// A draft, or a reply waiting for approval, was thrown away unsent.
    case replyDiscarded = "reply.discarded"
    /// A supervisor approved a reply, which was sent at once.
    case replyApproved = "reply.approved"
    /// A supervisor sent a reply back to its author with a comment.
    case replyReturned = "reply.returned"
    /// A reply passed every guard and was queued for delivery as an outbound message.
    case replySent = "reply.sent"
    /// The relay or provider took a reply for its recipients (some may have been refused).
    case replyDelivered = "reply.delivered"
    /// A reply could not be delivered to any recipient; the ticket is flagged `delivery-failed`.
    case replyFailed = "reply.failed"
    /// A bounce came back for a reply the relay had taken.
    case replyBounced = "reply.bounced"
    /// A reply's handover may or may not have happened; it waits for a person, never resent by itself.
    case replyHeld = "reply.held"
    /// A person resolved a held delivery: sent again, recorded as sent, or cancelled.
    case replyDeliveryResolved = "reply.delivery_resolved"
    /// An automatic reply was not sent: the sender is a machine, a list, ourselves, or already got enough today.
    case replyAutomaticWithheld = "reply.automatic_withheld"

    // MARK: Customers
    /// A customer was made: by a first contact, or by the order system.
    case customerCreated = "customer.created"
    /// The order system or a supervisor changed a customer's name, VIP flag or notes.
    case customerUpdated = "customer.updated"
    /// Two customers became one; the other's identities, tickets and messages moved to the survivor.
    case customerMerged = "customer.merged"
    /// A message named contacts of two different customers; a supervisor may merge them.
    case customerMergeSuggested = "customer.merge_suggested"
    /// An identity (email, phone, order-system id, chat id) was linked to a customer.
    case customerIdentityAdded = "customer.identity_added"
    /// A LINE user followed the account again: their LINE identity is deliverable.
    case customerFollowed = "customer.followed"
    /// A LINE user blocked the account: nothing pushed reaches them.
    case customerUnfollowed = "customer.unfollowed"
    /// A hard bounce marked an address undeliverable.
    case identityUndeliverable = "identity.undeliverable"
    /// A customer wrote in from an address marked undeliverable: it is deliverable again.
    case identityDeliverable = "identity.deliverable"

    // MARK: Chat
    /// A customer tapped a button or rich-menu item in a chat (LINE postback).
    case chatPostback = "chat.postback"

    // MARK: Team configuration
    /// A supervisor created a reply template.
    case templateCreated = "template.created"
    /// A supervisor changed a reply template (a new version).
    case templateUpdated = "template.updated"
    /// A supervisor removed a reply template.
    case templateDeleted = "template.deleted"
    /// A supervisor created a priority rule.
    case ruleCreated = "rule.created"
    /// A supervisor changed a priority rule.
    case ruleUpdated = "rule.updated"
    /// An admin or supervisor added an agent.
    case agentCreated = "agent.created"
    /// An agent's name, email, queues, skills, capacity or approval flag changed.
    case agentUpdated = "agent.updated"
    /// An agent went available, away or offline.
    case agentAvailabilityChanged = "agent.availability_changed"
    /// An agent left: keys revoked, claims released, open tickets back in their queues.
    case agentDeactivated = "agent.deactivated"
    /// A supervisor added a queue.
    case queueCreated = "queue.created"
    /// A supervisor changed a queue's description, SLA policy or auto-assignment.
    case queueUpdated = "queue.updated"
    /// A supervisor removed a queue no ticket or rule names.
    case queueDeleted = "queue.deleted"
    /// A supervisor added a business calendar.
    case calendarCreated = "calendar.created"
    /// A supervisor changed a business calendar (hours, zone, holidays or closed days).
    case calendarUpdated = "calendar.updated"
    /// A supervisor removed a business calendar.
    case calendarDeleted = "calendar.deleted"
    /// A supervisor added an SLA policy.
    case slaPolicyCreated = "sla_policy.created"
    /// A supervisor changed an SLA policy (targets, calendar, warning point or default).
    case slaPolicyUpdated = "sla_policy.updated"
    /// A supervisor removed an SLA policy; its tickets keep the due times they had.
    case slaPolicyDeleted = "sla_policy.deleted"

    // MARK: Webhooks
    /// An admin added a webhook endpoint.
    case webhookCreated = "webhook.created"
    /// An admin changed a webhook endpoint (address, event types, secrets, re-enabled).
    case webhookUpdated = "webhook.updated"
    /// An admin removed a webhook endpoint.
    case webhookDeleted = "webhook.deleted"
    /// A webhook endpoint failed too many times in a row and was disabled.
    case webhookDisabled = "webhook.disabled"
}
