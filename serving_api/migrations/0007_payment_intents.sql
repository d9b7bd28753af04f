-- Captures in flight (order service): `pay` records one and commits before it calls the gateways,
-- so no connection or row lock is held across the call (a slow gateway cannot drain the pool or
-- block the order's other requests), then books the outcome in a second transaction and deletes
-- it. While an intent is fresh, another pay or a cancel of the order is refused (409
-- payment-in-progress); one left behind by an API that died mid-capture expires after
-- `payment_intent_ttl` seconds (longer than the adapter's worst case). Not captured by CDC.
-- depends: 0006_webhooks

CREATE TABLE payment_intents (
    order_id       text PRIMARY KEY REFERENCES orders (id),
    started_at     timestamptz NOT NULL DEFAULT now(),
    correlation_id text
);
