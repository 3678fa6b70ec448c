-- A supervisor can remove a reply template (`DELETE /v1/templates/{id}`): it leaves the list and
-- can no longer be read, filled or changed, but its row and every version stay, marked removed, so
-- that what replies drafted from it said, and who wrote it, can still be looked up
-- (`GET /v1/templates/{id}/versions`). Its name is free again for a new template.
ALTER TABLE templates ADD COLUMN IF NOT EXISTS deleted_at timestamptz;
ALTER TABLE templates ADD COLUMN IF NOT EXISTS deleted_by uuid REFERENCES agents (id);
ALTER TABLE templates DROP CONSTRAINT IF EXISTS templates_name_key;
CREATE UNIQUE INDEX IF NOT EXISTS templates_name_live ON templates (name) WHERE deleted_at IS NULL;

INSERT INTO event_types (name, description) VALUES
    ('template.deleted', 'A supervisor removed a reply template.')
ON CONFLICT (name) DO NOTHING;
