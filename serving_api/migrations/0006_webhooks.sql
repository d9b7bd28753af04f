-- Partner webhooks (partner-webhook-dispatcher, seed Phase 4): an admin subscribes a partner's
-- endpoint to event types; every POST to it is recorded as one attempt. A delivery (one event to
-- one subscription, `delivery_id` stable across its retries) ends at most once: DELIVERED, or
-- DEAD after its last retry (then it is in the DLQ and has left as webhook.delivery.failed).
-- depends: 0005_payment_attempts

CREATE TABLE webhook_subscriptions (
    id           text PRIMARY KEY,
    partner_id   text NOT NULL CHECK (partner_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    target_url   text NOT NULL CHECK (target_url ~ '^https?://'),
    event_types  text[] NOT NULL CHECK (cardinality(event_types) > 0),
    -- the HMAC key: needed in clear to sign; shown to the admin once, at creation
    secret       text NOT NULL CHECK (length(secret) >= 16),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    deleted_by   text,
    deleted_at   timestamptz
);
CREATE INDEX webhook_subscriptions_partner ON webhook_subscriptions (partner_id) WHERE deleted_at IS NULL;

CREATE TABLE webhook_delivery_attempts (
    id               bigserial PRIMARY KEY,
    delivery_id      uuid NOT NULL,
    subscription_id  text NOT NULL REFERENCES webhook_subscriptions (id),
    event_id         uuid NOT NULL,
    event_type       text NOT NULL,
    attempt          int NOT NULL CHECK (attempt >= 1),
    -- RETRY: failed, queued for the next attempt; DEAD: the last attempt failed
    outcome          text NOT NULL CHECK (outcome IN ('DELIVERED', 'RETRY', 'DEAD')),
    status_code      int,
    error            text,
    duration_ms      int NOT NULL CHECK (duration_ms >= 0),
    attempted_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_delivery_attempts_delivery ON webhook_delivery_attempts (delivery_id, attempt);
CREATE INDEX webhook_delivery_attempts_subscription ON webhook_delivery_attempts (subscription_id, attempted_at);
-- a delivery ends once
CREATE UNIQUE INDEX webhook_delivery_attempts_final ON webhook_delivery_attempts (delivery_id)
    WHERE outcome IN ('DELIVERED', 'DEAD');
