DELETE FROM inventory_adjustment WHERE reason = 'SHIPMENT';
ALTER TABLE inventory_adjustment DROP CONSTRAINT inventory_adjustment_reason_check;
ALTER TABLE inventory_adjustment DROP CONSTRAINT inventory_adjustment_delta_check;
ALTER TABLE inventory_adjustment ADD CONSTRAINT inventory_adjustment_reason_check
    CHECK (reason IN ('RESERVATION', 'RELEASE', 'RESTOCK', 'SENSOR', 'MANUAL', 'OTHER'));
ALTER TABLE inventory_adjustment ADD CONSTRAINT inventory_adjustment_delta_check CHECK (delta <> 0);
DROP TABLE flash_sales;
