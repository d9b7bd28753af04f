"""Auditor tooling over `schemas/`: static checks, compatibility with the registry and with git
history, live-topic audits, and the AsyncAPI event catalog."""

from shopstream.contracts.files import SCHEMAS_DIR, SchemaFile, load_schema_files

__all__ = ["SCHEMAS_DIR", "SchemaFile", "load_schema_files"]
