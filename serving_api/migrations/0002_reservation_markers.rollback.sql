DROP TABLE inventory_released_orders;
