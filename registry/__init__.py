"""A schema registry speaking the Confluent Schema Registry REST API (Avro), durable in a compacted
Kafka topic, checking compatibility with Apache Avro's own ReaderWriterCompatibilityChecker."""

from registry.errors import RegistryError
from registry.store import SchemaStore

__all__ = ["RegistryError", "SchemaStore"]
