-- Debezium's signalling table (connectors/debezium/oltp-cdc.json: signal.data.collection). A row
-- asks the CDC connector for an action: `shopstream replay run --reseed` inserts an
-- execute-snapshot signal, and the connector re-reads the named tables in chunks beside its
-- streaming (an incremental snapshot), writing every row to its cdc.public.<table> topic as an
-- op "r" record; the connector also writes its chunk watermarks here. Captured (the connector
-- reads its signals from the log), but nothing consumes its topic.
-- depends: 0007_payment_intents

CREATE TABLE debezium_signal (
    id   varchar(64) PRIMARY KEY,
    type varchar(32) NOT NULL,
    data varchar(2048)
);
