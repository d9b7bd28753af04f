ALTER TABLE products DROP COLUMN category;
