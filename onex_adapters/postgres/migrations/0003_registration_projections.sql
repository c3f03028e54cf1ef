-- The node-registration projection: one row per node, written by the registration storage
-- effect. The last_applied_* columns order the events that wrote a row (the staleness rule:
-- an older event never overwrites a newer one); the *_emitted_at markers make each timeout
-- event fire once; the partial indexes serve the runtime tick's two timeout scans.

CREATE TABLE registration_projections (
    entity_id                   text COLLATE "C" NOT NULL,
    domain                      text COLLATE "C" NOT NULL DEFAULT 'registration',
    current_state               text NOT NULL CHECK (current_state IN (
                                    'pending_registration', 'accepted', 'awaiting_ack',
                                    'ack_received', 'active', 'ack_timed_out', 'rejected',
                                    'liveness_expired', 'failed')),
    node_type                   text NOT NULL CHECK (node_type IN (
                                    'effect', 'compute', 'reducer', 'orchestrator')),
    node_version                text NOT NULL DEFAULT '1.0.0',
    capabilities                jsonb NOT NULL DEFAULT '{}',
    endpoints                   jsonb NOT NULL DEFAULT '{}',
    ack_deadline                timestamptz,
    liveness_deadline           timestamptz,
    last_heartbeat_at           timestamptz,
    ack_timeout_emitted_at      timestamptz,
    liveness_timeout_emitted_at timestamptz,
    last_applied_event_id       uuid NOT NULL,
    last_applied_offset         bigint CHECK (last_applied_offset >= 0),
    last_applied_sequence       bigint NOT NULL CHECK (last_applied_sequence >= 0),
    last_applied_partition      text,
    registered_at               timestamptz NOT NULL,
    updated_at                  timestamptz NOT NULL,
    correlation_id              uuid,
    PRIMARY KEY (entity_id, domain)
);

-- Overdue ACKs: nodes waiting for an ACK whose timeout event was not yet emitted.
CREATE INDEX registration_projections_ack_due
    ON registration_projections (domain, ack_deadline, entity_id)
    WHERE ack_deadline IS NOT NULL
      AND ack_timeout_emitted_at IS NULL
      AND current_state IN ('accepted', 'awaiting_ack');

-- Overdue liveness: active nodes whose expiry event was not yet emitted.
CREATE INDEX registration_projections_liveness_due
    ON registration_projections (domain, liveness_deadline, entity_id)
    WHERE liveness_deadline IS NOT NULL
      AND liveness_timeout_emitted_at IS NULL
      AND current_state = 'active';
