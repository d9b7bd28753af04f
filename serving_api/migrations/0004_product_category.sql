-- Product categories (analysts' revenue by category): every product has one, a lowercase slug;
-- existing products become 'general'. The rule lives in serving_api.services.catalog
-- (CATEGORY_PATTERN); this CHECK is the same pattern, the last line of defence.
-- depends: 0003_flash_sales

ALTER TABLE products ADD COLUMN category text NOT NULL DEFAULT 'general'
    CONSTRAINT products_category_check CHECK (category ~ '^[a-z][a-z0-9_-]{0,39}$');
