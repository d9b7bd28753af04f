"""A schema file against what came before it: the registry's latest version and git history."""

from __future__ import annotations

from shopstream.contracts.compatibility import Level, incompatibilities
from shopstream.contracts.files import SchemaFile
from shopstream.contracts.history import previous_versions
from shopstream.contracts.parsing import InvalidSchema, parse
from shopstream.serde.registry_client import RegistryClient, RegistryError


def against_history(schema: SchemaFile, level: Level) -> list[str]:
    """Incompatibilities with the committed versions of the file under `level`: the previous one,
    or every one for a transitive level."""
    versions = previous_versions(schema.path)
    if not level.transitive:
        versions = versions[:1]
    single = Level[level.value.removesuffix("_TRANSITIVE")]
    new = parse(schema.text)
    problems = []
    for commit, text in versions:
        try:
            old = parse(text)
        except InvalidSchema as exc:
            problems.append(f"git {commit}: Invalid schema: {exc.message}")
            continue
        problems += [f"git {commit}: {p}" for p in incompatibilities(single, new.schema, [(0, old.schema)])]
    return problems


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
