-- The categories report (view `report_categories`) counts each ticket's customer messages. It found
-- them through the ticket's whole timeline (`messages_ticket_timeline`) and read every message of it
-- from the table to keep the customer's own: about eleven rows fetched for five counted, per ticket.
-- This index holds only customer messages, so the count reads the index alone. At 100,000 tickets
-- (1.06 M messages; psql, same rows): a year 1.6 s -> 0.9 s, a month 0.17–0.21 s -> 0.11–0.15 s.
--
-- Write cost: one entry for each inbound customer message (6 MB at 455,000 of them, against 78 MB
-- for the timeline index every message writes); replies, notes, bounces and auto-replies add none.
CREATE INDEX messages_customer_by_ticket ON messages (ticket_id)
    WHERE direction = 'inbound' AND classification = 'customer';
