-- Flash sales (pricing, seed Phase 4): an admin starts a sale for a product, and may end it
-- early; each change leaves through the outbox (flash_sale.started / flash_sale.ended).
-- Fulfilment now records its stock movement too (reason SHIPMENT: on hand and reserved drop,
-- available does not, so its delta is 0).
-- depends: 0002_reservation_markers

CREATE TABLE flash_sales (
    id             text PRIMARY KEY,
    product_id     text NOT NULL REFERENCES products (id),
    price_minor    bigint NOT NULL CHECK (price_minor >= 0),
    currency       char(3) NOT NULL,
    regular_minor  bigint NOT NULL CHECK (regular_minor >= 0),
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    ended_at       timestamptz,
    created_by     text NOT NULL,
    ended_by       text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at),
    CHECK (price_minor < regular_minor)
);
CREATE INDEX flash_sales_product ON flash_sales (product_id, ends_at);

ALTER TABLE inventory_adjustment DROP CONSTRAINT inventory_adjustment_reason_check;
ALTER TABLE inventory_adjustment DROP CONSTRAINT inventory_adjustment_delta_check;
ALTER TABLE inventory_adjustment ADD CONSTRAINT inventory_adjustment_reason_check
    CHECK (reason IN ('RESERVATION', 'RELEASE', 'RESTOCK', 'SENSOR', 'MANUAL', 'OTHER', 'SHIPMENT'));
ALTER TABLE inventory_adjustment ADD CONSTRAINT inventory_adjustment_delta_check
    CHECK ((delta <> 0) = (reason <> 'SHIPMENT'));
