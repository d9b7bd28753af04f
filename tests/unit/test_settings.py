"""One settings class per deployable, composed from the shared models of
`shopstream.runtime.settings`: each reads its own prefix (nested with `__`), takes its defaults
from the one shared model, keeps secrets secret, and the stack hands each process its own names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import BaseSettings

from dev.simulators.settings import (
    DevicesSettings,
    PaymentGatewaySettings,
    StorefrontSettings,
)
from dev.stack import StackSettings
from dev.stack.components import build_components
from dev.stack.variables import deployable_settings, names_a_field, unread
from ingest.settings import IotIngestSettings
from olap.settings import OlapSettings
from registry.settings import RegistrySettings
from serving_api.settings import ApiSettings, InventoryGrpcSettings
from shopstream.runtime import settings as shared
from webhooks.settings import WebhookDispatcherSettings, WebhookFanoutSettings

DEPLOYABLES: list[type[BaseSettings]] = deployable_settings()  # the stack's list: one per process
SHARED = {
    cls
    for cls in vars(shared).values()
    if isinstance(cls, type) and issubclass(cls, BaseModel) and not issubclass(cls, BaseSettings)
}


def prefix(cls: type[BaseSettings]) -> str:
    return str(cls.model_config.get("env_prefix", ""))


def nested(cls: type[BaseSettings]) -> dict[str, type[BaseModel]]:
    """The fields of `cls` that are shared models: {"kafka": Kafka, ...}."""
    return {
        name: field.annotation
        for name, field in cls.model_fields.items()
        if isinstance(field.annotation, type) and field.annotation in SHARED
    }


def test_every_deployable_has_a_prefix_of_its_own() -> None:
    prefixes = [prefix(cls) for cls in DEPLOYABLES]
    assert all(p.startswith("SHOPSTREAM_") and p.endswith("__") for p in prefixes)
    assert len(set(prefixes)) == len(prefixes)
    for a in prefixes:
        assert not any(b != a and b.startswith(a) for b in prefixes), f"{a} covers another deployable's prefix"


def test_the_stacks_own_variables_are_under_no_deployables_prefix() -> None:
    stack_names = [f"SHOPSTREAM_{name.upper()}__" for name in StackSettings.model_fields]
    for p in map(prefix, DEPLOYABLES):
        assert not any(name.startswith(p) or p.startswith(name) for name in stack_names), p


@pytest.mark.parametrize("cls", DEPLOYABLES, ids=lambda c: c.__name__)
def test_each_deployable_reads_its_nested_variables(cls: type[BaseSettings], monkeypatch: pytest.MonkeyPatch) -> None:
    fields = nested(cls)
    assert fields, f"{cls.__name__} composes no shared model"
    for name, model in fields.items():
        if "port" in model.model_fields:
            monkeypatch.setenv(f"{prefix(cls)}{name.upper()}__PORT", "41234")
        else:
            text = next(f for f, info in model.model_fields.items() if info.annotation in (str, SecretStr))
            monkeypatch.setenv(f"{prefix(cls)}{name.upper()}__{text.upper()}", "from-the-environment")
    settings = cls()
    for name, model in fields.items():
        value = getattr(settings, name)
        if "port" in model.model_fields:
            assert value.port == 41234, name
        else:
            text = next(f for f, info in model.model_fields.items() if info.annotation in (str, SecretStr))
            held = getattr(value, text)
            assert (held.get_secret_value() if isinstance(held, SecretStr) else held) == "from-the-environment"


def test_another_deployables_variables_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPSTREAM_API__KAFKA__BOOTSTRAP", "api-only:9092")
    monkeypatch.setenv("SHOPSTREAM_INVENTORY_GRPC__LISTEN__PORT", "1")
    assert ApiSettings().kafka.bootstrap == "api-only:9092"
    assert OlapSettings().kafka.bootstrap == RegistrySettings().kafka.bootstrap == shared.Kafka().bootstrap
    assert ApiSettings().inventory.port == 50051 and InventoryGrpcSettings().listen.port == 1


@pytest.mark.parametrize("cls", DEPLOYABLES, ids=lambda c: c.__name__)
def test_defaults_come_from_the_one_shared_model(cls: type[BaseSettings]) -> None:
    settings = cls()
    for name, model in nested(cls).items():
        value, default = getattr(settings, name), model()
        if isinstance(value, shared.Postgres):  # the pool's size is the deployable's; the DSN is shared
            assert value.dsn == default.dsn
        else:
            assert value == default, f"{cls.__name__}.{name}"


def test_clients_default_to_where_the_services_listen() -> None:
    assert shared.Kafka().bootstrap == shared.KafkaEndpoint().address == "127.0.0.1:9092"
    assert shared.Registry().url == RegistrySettings().listen.url == "http://127.0.0.1:8081"
    assert ApiSettings().inventory == InventoryGrpcSettings().listen
    assert ApiSettings().payment_gateway == PaymentGatewaySettings().listen
    assert ApiSettings().legacy_payment_gateway.wsdl == "http://127.0.0.1:8091/soap?wsdl"
    assert IotIngestSettings().api.url == StorefrontSettings().api.url == ApiSettings().listen.url
    stack = StackSettings()
    assert (stack.api.port, stack.api.grpc_port, stack.registry.port, stack.olap.port) == (8000, 50051, 8081, 8124)
    assert stack.kafka.bootstrap == shared.Kafka().bootstrap and stack.redis.url == shared.Redis().url
    assert stack.postgres.dsn == shared.Postgres().dsn.get_secret_value()


def _secrets(model: BaseModel, path: str = "") -> dict[str, Any]:
    """Every field whose name says it holds a secret, anywhere in `model` (a `*_file` field names
    where a secret is, and is no secret itself)."""
    found: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            found |= _secrets(value, f"{path}{name}.")
        elif name.endswith("_file"):
            continue
        elif any(word in name for word in ("secret", "password", "dsn", "token")) or path == "rabbitmq.":
            found[path + name] = value
    return found


@pytest.mark.parametrize("cls", DEPLOYABLES, ids=lambda c: c.__name__)
def test_secrets_are_secret(cls: type[BaseSettings]) -> None:
    settings = cls()
    for name, value in _secrets(settings).items():
        assert isinstance(value, SecretStr), f"{cls.__name__}.{name} is not a SecretStr"


def test_a_secrets_repr_hides_it() -> None:
    api = ApiSettings(jwt_secret="a-real-secret-of-enough-length")
    olap = OlapSettings(clickhouse={"password": "ch-password"})
    hooks = WebhookDispatcherSettings()
    for text in (repr(api), repr(olap), repr(hooks), str(api), str(olap)):
        assert "a-real-secret" not in text and "ch-password" not in text
        assert "shopstream:shopstream@" not in text  # the DSN's and the AMQP URL's credentials


def test_a_dev_secret_outside_dev_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPSTREAM_API__ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="JWT_SECRET must be set"):
        ApiSettings()
    monkeypatch.setenv("SHOPSTREAM_API__JWT_SECRET", "a-real-secret-of-enough-length")
    assert ApiSettings().environment == "production"


def test_the_stack_reads_its_own_names_for_the_deployables_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPSTREAM_API__LISTEN__PORT", "1")  # the API's own, not the stack's
    monkeypatch.setenv("SHOPSTREAM_STACK__API__PORT", "18000")
    monkeypatch.setenv("SHOPSTREAM_STACK__REGISTRY__PORT", "18081")
    stack = StackSettings()
    assert (stack.api.port, stack.registry.port) == (18000, 18081)
    assert stack.env_name("api", "port") == "SHOPSTREAM_STACK__API__PORT"
    assert stack.env_name("kafka", "port") == "SHOPSTREAM_KAFKA__PORT"


def _is_a_setting(variable: str) -> bool:
    """Whether `variable` names a field of one deployable's settings (nested with `__`)."""
    return any(names_a_field(cls, variable) for cls in DEPLOYABLES)


def test_the_stack_hands_each_process_variables_its_settings_read(tmp_path: Path) -> None:
    settings = StackSettings(home=tmp_path)
    handed = {c.name: c.environment for c in build_components(settings)}
    for name, env in handed.items():
        for variable in env:
            if variable.startswith("SHOPSTREAM_"):
                assert _is_a_setting(variable), f"{name}: {variable} is no deployable's setting"
    assert handed["api"]["SHOPSTREAM_API__KAFKA__BOOTSTRAP"] == settings.kafka.bootstrap
    assert handed["inventory-grpc"]["SHOPSTREAM_INVENTORY_GRPC__LISTEN__PORT"] == str(settings.api.grpc_port)
    assert handed["olap"]["SHOPSTREAM_OLAP__REGISTRY__URL"] == settings.registry.url
    assert handed["stream-revenue-windows"]["SHOPSTREAM_REVENUE_WINDOWS__REDIS__URL"] == settings.redis.url
    assert handed["webhook-fanout"]["SHOPSTREAM_WEBHOOK_FANOUT__KAFKA__BOOTSTRAP"] == settings.kafka.bootstrap
    assert handed["iot-ingest"]["SHOPSTREAM_IOT_INGEST__MQTT__PORT"] == str(settings.mosquitto.port)


def test_the_simulators_follow_the_local_stack_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from dev.simulators.settings import StorefrontSettings

    monkeypatch.setenv("SHOPSTREAM_STACK__API__PORT", "18000")
    monkeypatch.setenv("SHOPSTREAM_MOSQUITTO__PORT", "11883")
    assert StorefrontSettings().or_the_stacks().api.url == "http://127.0.0.1:18000"
    devices = DevicesSettings().or_the_stacks()
    assert devices.api.url == "http://127.0.0.1:18000" and devices.mqtt.port == 11883
    monkeypatch.setenv("SHOPSTREAM_STOREFRONT__API__URL", "http://shop.example:8000")
    monkeypatch.setenv("SHOPSTREAM_DEVICES__MQTT__PORT", "2883")
    assert StorefrontSettings().or_the_stacks().api.url == "http://shop.example:8000"
    assert DevicesSettings().or_the_stacks().mqtt.port == 2883


def test_a_webhook_workers_pool_stays_small_when_only_its_dsn_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from webhooks.settings import WebhookDispatcherSettings

    for cls, prefix_ in ((WebhookFanoutSettings, "FANOUT"), (WebhookDispatcherSettings, "DISPATCHER")):
        monkeypatch.setenv(f"SHOPSTREAM_WEBHOOK_{prefix_}__POSTGRES__DSN", "postgresql://u:p@db:5432/s")
        settings = cls()
        assert settings.postgres.pool_size == 5 and settings.postgres.dsn.get_secret_value().endswith("@db:5432/s")


def test_up_names_the_variables_nothing_reads() -> None:
    read = [
        "SHOPSTREAM_HOME",
        "SHOPSTREAM_KAFKA__PORT",
        "SHOPSTREAM_STREAMS__ENGINES",
        "SHOPSTREAM_STACK__API__PORT",
        "SHOPSTREAM_API__LISTEN__PORT",
        "SHOPSTREAM_OLAP__KAFKA__BOOTSTRAP",
        "SHOPSTREAM_REVENUE_WINDOWS__GRACE_MS",
        "SHOPSTREAM_WEBHOOK_DISPATCHER__RETRY_SCHEDULE",
        "SHOPSTREAM_KEEP_STACK",
        "PATH",
    ]
    renamed = ["SHOPSTREAM_API__PORT", "SHOPSTREAM_OLAP__KAFKA_BOOTSTRAP", "SHOPSTREAM_WEBHOOKS__RETRY_SCHEDULE"]
    assert unread([*read, *renamed, "SHOPSTREAM_KAFAK__PORT"]) == sorted([*renamed, "SHOPSTREAM_KAFAK__PORT"])
