-- Team-shared reply templates, versioned: every edit keeps the text it replaced.

CREATE TABLE templates (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL UNIQUE CHECK (name <> '' AND length(name) <= 200),
    subject      text CHECK (length(subject) <= 2000),
    body         text NOT NULL CHECK (length(body) <= 100000),
    version      integer NOT NULL DEFAULT 1 CHECK (version > 0),
    updated_by   uuid REFERENCES agents (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE template_versions (
    template_id  uuid NOT NULL REFERENCES templates (id),
    version      integer NOT NULL,
    name         text NOT NULL,
    subject      text,
    body         text NOT NULL,
    written_by   uuid REFERENCES agents (id),
    written_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (template_id, version)
);
