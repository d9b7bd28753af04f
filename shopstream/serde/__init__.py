"""Avro serde in the Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro
binary), fastavro underneath, schemas and ids cached, failures typed (never a crash loop)."""

from shopstream.serde.avro import AvroSerde
from shopstream.serde.errors import BadMagicByte, SchemaNotRegistered, SerdeError, TruncatedRecord, UndecodableRecord
from shopstream.serde.registry_client import RegistryClient
from shopstream.serde.wire import MAGIC_BYTE, frame, unframe

__all__ = [
    "MAGIC_BYTE",
    "AvroSerde",
    "BadMagicByte",
    "RegistryClient",
    "SchemaNotRegistered",
    "SerdeError",
    "TruncatedRecord",
    "UndecodableRecord",
    "frame",
    "unframe",
]
