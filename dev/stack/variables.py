"""Which `SHOPSTREAM_*` environment variables anything reads: the stack's own (`StackSettings`)
and each deployable's settings class. `shopstream up` warns about the others — a misspelt name, or
one renamed in issue 14 (`SHOPSTREAM_API__PORT` → `SHOPSTREAM_STACK__API__PORT`,
`…__KAFKA_BOOTSTRAP` → `…__KAFKA__BOOTSTRAP`, `SHOPSTREAM_WEBHOOKS__*` → `SHOPSTREAM_WEBHOOK_FANOUT__*`
and `SHOPSTREAM_WEBHOOK_DISPATCHER__*`) — which every settings class would silently ignore."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel
from pydantic_settings import BaseSettings

# read by the test fixtures, not by a settings class
OTHER_VARIABLES = {"SHOPSTREAM_KEEP_STACK"}


def deployable_settings() -> list[type[BaseSettings]]:
    """One settings class per deployable (and simulator), each with a prefix of its own."""
    from dev.simulators.settings import (
        DevicesSettings,
        LegacyPaymentGatewaySettings,
        PaymentGatewaySettings,
        StorefrontSettings,
    )
    from ingest.settings import IotIngestSettings
    from olap.settings import OlapSettings
    from registry.settings import RegistrySettings
    from serving_api.settings import ApiSettings, InventoryGrpcSettings
    from streams.catalog import DATAFLOWS
    from webhooks.settings import WebhookDispatcherSettings, WebhookFanoutSettings

    return [
        ApiSettings,
        InventoryGrpcSettings,
        RegistrySettings,
        OlapSettings,
        *(spec.settings for spec in DATAFLOWS.values()),
        WebhookFanoutSettings,
        WebhookDispatcherSettings,
        IotIngestSettings,
        PaymentGatewaySettings,
        LegacyPaymentGatewaySettings,
        StorefrontSettings,
        DevicesSettings,
    ]


def prefix(cls: type[BaseSettings]) -> str:
    return str(cls.model_config.get("env_prefix", ""))


def names_a_field(cls: type[BaseSettings], variable: str) -> bool:
    """Whether `variable` is `cls`'s prefix followed by a field path (nested with `__`)."""
    if not variable.startswith(prefix(cls)):
        return False
    model: type[BaseModel] = cls
    for part in variable[len(prefix(cls)) :].lower().split("__"):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else BaseModel
    return True


def unread(variables: Iterable[str]) -> list[str]:
    """The `SHOPSTREAM_*` names among `variables` that no settings class reads."""
    from dev.stack.settings import StackSettings

    classes = deployable_settings()
    out = []
    for name in sorted(set(variables)):
        if not name.startswith("SHOPSTREAM_") or name in OTHER_VARIABLES:
            continue
        deployable = [cls for cls in classes if name.startswith(prefix(cls))]
        if deployable:  # under a deployable's prefix: that class must read it
            if not any(names_a_field(cls, name) for cls in deployable):
                out.append(name)
        elif not names_a_field(StackSettings, name):
            out.append(name)
    return out


def warning(environ: Mapping[str, str]) -> str | None:
    names = unread(environ)
    if not names:
        return None
    return f"warning: nothing reads {', '.join(names)} (misspelt, or renamed: see the README's Configuration)"
