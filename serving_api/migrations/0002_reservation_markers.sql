-- An order whose reservation was released may never reserve again: a late ReserveStock (say, a
-- retry that arrives after the compensation) is refused instead of holding stock forever.
-- depends: 0001_oltp

CREATE TABLE inventory_released_orders (
    order_id    text PRIMARY KEY,
    released_at timestamptz NOT NULL DEFAULT now()
);
