"""Settings of the schema registry as a deployable (`python -m registry`):
`SHOPSTREAM_REGISTRY__LISTEN__PORT=8081`, `SHOPSTREAM_REGISTRY__KAFKA__BOOTSTRAP=...`."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import SettingsConfigDict

from shopstream.runtime.settings import DeployableSettings, Kafka, RegistryEndpoint


class RegistrySettings(DeployableSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_REGISTRY__")

    listen: RegistryEndpoint = RegistryEndpoint()
    kafka: Kafka = Kafka()
    # the compacted topic that holds the registry's state
    topic: str = "_schemas"
    # "kafka" (durable, the default) or "memory" (a throw-away registry for experiments)
    storage: Literal["kafka", "memory"] = "kafka"
