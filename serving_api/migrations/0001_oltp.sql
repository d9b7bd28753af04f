-- OLTP schema of the writers (domain spec §5): catalog with SCD2 prices, carts, orders,
-- payments, inventory, the transactional outbox and idempotency keys.
-- depends:

CREATE TABLE products (
    id          text PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text,
    active      boolean NOT NULL DEFAULT true,
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- SCD2: one row per price version; the open one (valid_to IS NULL) is the current price
CREATE TABLE product_price_history (
    product_id   text NOT NULL REFERENCES products (id),
    version      integer NOT NULL CHECK (version > 0),
    amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
    currency     char(3) NOT NULL,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,
    changed_by   text NOT NULL,
    PRIMARY KEY (product_id, version),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE UNIQUE INDEX product_price_current ON product_price_history (product_id) WHERE valid_to IS NULL;

CREATE TABLE inventory_stock (
    product_id text PRIMARY KEY REFERENCES products (id),
    on_hand    integer NOT NULL CHECK (on_hand >= 0),
    reserved   integer NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand),
    version    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- one row per (order, product): makes ReserveStock idempotent per order
CREATE TABLE inventory_reservations (
    order_id   text NOT NULL,
    product_id text NOT NULL REFERENCES products (id),
    qty        integer NOT NULL CHECK (qty > 0),
    status     text NOT NULL CHECK (status IN ('RESERVED', 'RELEASED', 'COMMITTED')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, product_id)
);

CREATE TABLE inventory_adjustment (
    id         bigserial PRIMARY KEY,
    product_id text NOT NULL REFERENCES products (id),
    delta      integer NOT NULL CHECK (delta <> 0),
    reason     text NOT NULL CHECK (reason IN ('RESERVATION', 'RELEASE', 'RESTOCK', 'SENSOR', 'MANUAL', 'OTHER')),
    order_id   text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inventory_adjustment_product ON inventory_adjustment (product_id, created_at);

CREATE TABLE carts (
    id         uuid PRIMARY KEY,
    user_id    text NOT NULL,
    status     text NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'CHECKED_OUT')),
    order_id   text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX carts_user ON carts (user_id);

CREATE TABLE cart_items (
    cart_id    uuid NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    product_id text NOT NULL REFERENCES products (id),
    qty        integer NOT NULL CHECK (qty > 0 AND qty <= 1000),
    PRIMARY KEY (cart_id, product_id)
);

CREATE TABLE orders (
    id             text PRIMARY KEY,
    user_id        text NOT NULL,
    status         text NOT NULL CHECK (status IN ('PENDING', 'PAID', 'FULFILLED', 'CANCELED')),
    total_minor    bigint NOT NULL CHECK (total_minor >= 0),
    currency       char(3) NOT NULL,
    correlation_id text NOT NULL,
    version        integer NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_user ON orders (user_id, created_at DESC);

CREATE TABLE order_items (
    order_id         text NOT NULL REFERENCES orders (id),
    line             integer NOT NULL,
    product_id       text NOT NULL REFERENCES products (id),
    qty              integer NOT NULL CHECK (qty > 0),
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, line)
);

CREATE TABLE order_status_history (
    id          bigserial PRIMARY KEY,
    order_id    text NOT NULL REFERENCES orders (id),
    from_status text,
    to_status   text NOT NULL,
    changed_by  text NOT NULL,
    reason      text,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_status_history_order ON order_status_history (order_id, id);

CREATE TABLE payments (
    id           text PRIMARY KEY,
    order_id     text NOT NULL REFERENCES orders (id),
    amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
    currency     char(3) NOT NULL,
    status       text NOT NULL CHECK (status IN ('APPROVED', 'DECLINED')),
    gateway      text NOT NULL,
    gateway_ref  text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_order ON payments (order_id);

-- Transactional outbox, in the column layout of Debezium's EventRouter. The payload is the event
-- already in the Confluent Avro wire format. A row is inserted and deleted in the same transaction:
-- the insert reaches the WAL (and Debezium), the table stays empty.
CREATE TABLE outbox (
    id             uuid PRIMARY KEY,
    aggregatetype  text NOT NULL,
    aggregateid    text NOT NULL,
    type           text NOT NULL,
    payload        bytea NOT NULL,
    correlation_id text NOT NULL,
    traceparent    text,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Idempotency-Key storage: the key (scoped by user) and a hash of the request; the response is
-- replayed for the same key and body for 24 hours.
CREATE TABLE idempotency_keys (
    user_id      text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    status_code  integer,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
