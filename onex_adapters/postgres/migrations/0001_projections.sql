-- Generic projections (read models), keyed by (entity_id, domain), and an index of their
-- top-level datetime fields for `overdue` scans.
--
-- `version` counts the writes of a row; each deadline row carries the version that wrote it,
-- and `overdue` joins on it, so a deadline row left behind by a superseded version is ignored.
-- Text keys use the "C" collation: byte order, the same order Python sorts strings in.

CREATE TABLE onex_projections (
    entity_id  text COLLATE "C" NOT NULL,
    domain     text COLLATE "C" NOT NULL,
    state      text NOT NULL,
    data       jsonb NOT NULL,
    sequence   bigint NOT NULL CHECK (sequence >= 0),
    event_id   uuid NOT NULL,
    partition  text,
    "offset"   bigint CHECK ("offset" >= 0),
    updated_at timestamptz,
    version    bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (entity_id, domain)
);

CREATE TABLE onex_projection_deadlines (
    entity_id text COLLATE "C" NOT NULL,
    domain    text COLLATE "C" NOT NULL,
    field     text COLLATE "C" NOT NULL,
    deadline  timestamptz NOT NULL,
    version   bigint NOT NULL,
    PRIMARY KEY (entity_id, domain, field)
);

CREATE INDEX onex_projection_deadlines_due
    ON onex_projection_deadlines (domain, field, deadline, entity_id);
