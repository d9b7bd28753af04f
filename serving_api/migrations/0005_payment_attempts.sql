-- Payment attempts (payment adapter, seed Phase 4): every capture the order service asks for, with
-- the path that answered (soap-legacy, or the rest-sim fallback and why) and its outcome. A capture
-- that failed on both paths is recorded here only (the order stays PENDING); approved and declined
-- ones also have their `payments` row, whose `gateway` names the path.
-- depends: 0004_product_category

CREATE TABLE payment_attempts (
    id             bigserial PRIMARY KEY,
    order_id       text NOT NULL REFERENCES orders (id),
    amount_minor   bigint NOT NULL CHECK (amount_minor >= 0),
    currency       char(3) NOT NULL,
    outcome        text NOT NULL CHECK (outcome IN ('APPROVED', 'DECLINED', 'FAILED')),
    gateway        text NOT NULL,
    payment_id     text REFERENCES payments (id),
    soap_attempts  smallint NOT NULL CHECK (soap_attempts >= 0),
    fallback       text CHECK (fallback IN ('circuit-open', 'soap-exhausted')),
    reason         text,
    correlation_id text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_attempts_order ON payment_attempts (order_id, id);
