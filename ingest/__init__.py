"""Ingest paths that do not start at the serving API: MQTT device feeds and bulk loaders into Kafka."""
