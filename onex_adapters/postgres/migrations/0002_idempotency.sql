-- Which effects are done: one row per (domain, key), typically an intent id.

CREATE TABLE onex_idempotency (
    domain      text COLLATE "C" NOT NULL,
    key         text COLLATE "C" NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain, key)
);

CREATE INDEX onex_idempotency_recorded_at ON onex_idempotency (recorded_at);
