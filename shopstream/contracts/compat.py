"""A schema file against what came before it: the registry's latest version and git history."""

from __future__ import annotations

from shopstream.contracts.files import SchemaFile
from shopstream.contracts.history import previous_version
from shopstream.registry.compatibility import Level, incompatibilities
from shopstream.registry.errors import RegistryError as InvalidSchema
from shopstream.registry.parsing import parse
from shopstream.serde.registry_client import RegistryClient, RegistryError


def against_history(schema: SchemaFile, level: Level) -> list[str]:
    """Incompatibilities with the previous committed version of the file, under `level`."""
    previous = previous_version(schema.path)
    if previous is None:
        return []
    commit, text = previous
    try:
        old, new = parse(text), parse(schema.text)
    except InvalidSchema as exc:
        return [f"git {commit}: {exc.message}"]
    single = Level[level.value.removesuffix("_TRANSITIVE")]
    return [f"git {commit}: {p}" for p in incompatibilities(single, new.schema, [(0, old.schema)])]


def against_registry(schema: SchemaFile, registry: RegistryClient) -> tuple[Level, list[str]]:
    """(the subject's level, incompatibilities with its latest registered version); a subject the
    registry does not know yet has none."""
    try:
        level = Level[registry.compatibility(schema.subject)]
        return level, [f"registry: {p}" for p in registry.check(schema.subject, schema.text, "latest")]
    except RegistryError as exc:
        if exc.error_code in (40401, 40402):
            return Level[registry.compatibility(schema.subject)], []
        raise
