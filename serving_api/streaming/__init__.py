"""Push channels of the serving API (server-sent events), fed from Kafka."""
