-- The catalogue of event types (Swift's EventType, openapi's EventType): events name one of these,
-- so a misspelt type fails the transaction that records it instead of reaching the feed.

CREATE TABLE event_types (
    name         text PRIMARY KEY CHECK (name ~ '^[a-z_]+(\.[a-z_]+)+$'),
    description  text NOT NULL
);

INSERT INTO event_types (name, description) VALUES
    ('ticket.created', 'A ticket was opened (by a customer''s first message, or a message after its ticket closed).'),
    ('ticket.updated', 'Someone changed a ticket''s status, priority, queue, category, tags or assignee.'),
    ('ticket.reopened', 'A customer wrote on a pending or solved ticket, which opened again.'),
    ('ticket.prioritized', 'A priority rule set a new ticket''s priority.'),
    ('ticket.claimed', 'An agent claimed a ticket (directly, or from the queue).'),
    ('ticket.claim_renewed', 'The holder of a claim extended it.'),
    ('ticket.claim_released', 'The holder let go of a claim.'),
    ('ticket.claim_broken', 'A supervisor took another agent''s live claim away.'),
    ('message.received', 'A customer''s message (or a bounce or report about our mail) joined a ticket.'),
    ('message.unsent', 'The customer withdrew a chat message (LINE unsend); it stays on the timeline, marked.'),
    ('message.delivery_updated', 'A provider reported progress on a text we sent.'),
    ('message.delivery_failed', 'A provider reported that a text we sent did not arrive.'),
    ('note.added', 'An agent wrote an internal note (申し送り), never sent to the customer.'),
    ('reply.drafted', 'An agent started a reply.'),
    ('reply.edited', 'An agent changed a reply''s text, subject or recipients.'),
    ('reply.submitted', 'An agent asked a supervisor to approve a reply.'),
    ('reply.approved', 'A supervisor approved a reply, which was sent at once.'),
    ('reply.returned', 'A supervisor sent a reply back to its author with a comment.'),
    ('reply.sent', 'A reply passed every guard and was queued for delivery as an outbound message.'),
    ('customer.created', 'A customer was made: by a first contact, or by the order system.'),
    ('customer.updated', 'The order system or a supervisor changed a customer''s name, VIP flag or notes.'),
    ('customer.merged', 'Two customers became one; the other''s identities, tickets and messages moved to the survivor.'),
    ('customer.merge_suggested', 'A message named contacts of two different customers; a supervisor may merge them.'),
    ('customer.identity_added', 'An identity (email, phone, order-system id, chat id) was linked to a customer.'),
    ('customer.followed', 'A LINE user followed the account again: their LINE identity is deliverable.'),
    ('customer.unfollowed', 'A LINE user blocked the account: nothing pushed reaches them.'),
    ('identity.undeliverable', 'A hard bounce marked an address undeliverable.'),
    ('chat.postback', 'A customer tapped a button or rich-menu item in a chat (LINE postback).'),
    ('template.created', 'A supervisor created a reply template.'),
    ('template.updated', 'A supervisor changed a reply template (a new version).'),
    ('rule.created', 'A supervisor created a priority rule.'),
    ('rule.updated', 'A supervisor changed a priority rule.');

ALTER TABLE events ADD CONSTRAINT events_type_known FOREIGN KEY (type) REFERENCES event_types (name);
