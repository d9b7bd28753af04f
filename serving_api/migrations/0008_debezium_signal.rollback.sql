DROP TABLE debezium_signal;
