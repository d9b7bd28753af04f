"""Why a record could not be (de)serialized; a consumer routes these to a dead-letter topic."""

from __future__ import annotations


class SerdeError(Exception):
    """A record that cannot be decoded or encoded; `reason` is a short, loggable explanation."""

    reason = "serde error"


class TruncatedRecord(SerdeError):
    reason = "truncated"


class BadMagicByte(SerdeError):
    reason = "bad magic byte"


class SchemaNotRegistered(SerdeError):
    reason = "unknown schema id"


class UndecodableRecord(SerdeError):
    reason = "does not decode with its schema"
