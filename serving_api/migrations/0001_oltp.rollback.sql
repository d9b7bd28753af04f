DROP TABLE idempotency_keys, outbox, payments, order_status_history, order_items, orders, cart_items, carts,
    inventory_adjustment, inventory_reservations, inventory_stock, product_price_history, products;
