-- A draft can be thrown away (`DELETE /v1/replies/{id}`): its author's, or by whoever holds the
-- ticket's claim, or a supervisor. Drafts written twice, or left on tickets answered since, stood in
-- the author's list of unsent drafts for good. Only a reply that never left goes (a draft, or one
-- waiting for approval); its files with it. The event keeps that it existed.
INSERT INTO event_types (name, description) VALUES
    ('reply.discarded', 'A draft, or a reply waiting for approval, was thrown away unsent.')
ON CONFLICT (name) DO NOTHING;
