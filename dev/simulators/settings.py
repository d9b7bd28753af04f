"""Settings of the simulators, one class per process: the REST payment gateway
(`SHOPSTREAM_PAYMENT_GATEWAY__*`), the legacy SOAP gateway (`SHOPSTREAM_LEGACY_PAYMENT_GATEWAY__*`),
the storefront workload (`SHOPSTREAM_STOREFRONT__*`) and the IoT devices (`SHOPSTREAM_DEVICES__*`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shopstream.runtime.settings import (
    Api,
    DeployableSettings,
    LegacyPaymentGatewayEndpoint,
    Mqtt,
    PaymentGatewayEndpoint,
)


class PaymentGatewaySettings(DeployableSettings):
    """`python -m dev.simulators.payment_gateway`: `SHOPSTREAM_PAYMENT_GATEWAY__LISTEN__PORT=8090`."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_PAYMENT_GATEWAY__")

    listen: PaymentGatewayEndpoint = PaymentGatewayEndpoint()


class LegacyPaymentGatewaySettings(DeployableSettings):
    """`python -m dev.simulators.legacy_gateway`: `SHOPSTREAM_LEGACY_PAYMENT_GATEWAY__LISTEN__PORT=8091`."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_LEGACY_PAYMENT_GATEWAY__")

    listen: LegacyPaymentGatewayEndpoint = LegacyPaymentGatewayEndpoint()


class StorefrontSettings(DeployableSettings):
    """`shopstream simulate`: the API it drives, `SHOPSTREAM_STOREFRONT__API__URL=http://127.0.0.1:8000`;
    unset, the local stack's API (wherever `SHOPSTREAM_STACK__API__*` put it)."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_STOREFRONT__")

    api: Api = Api()

    def or_the_stacks(self) -> StorefrontSettings:
        from dev.stack.settings import StackSettings

        if "api" in self.model_fields_set:
            return self
        return self.model_copy(update={"api": Api(url=StackSettings().api.url)})


class DevicesSettings(DeployableSettings):
    """`shopstream ingest devices`: the API it reads the catalogue from and the MQTT broker it
    publishes to (`SHOPSTREAM_DEVICES__MQTT__PORT=1883`)."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_DEVICES__")

    api: Api = Api()
    mqtt: Mqtt = Mqtt()

    def or_the_stacks(self) -> DevicesSettings:
        """Unset fields from the local stack's settings (its API, its Mosquitto)."""
        from dev.stack.settings import StackSettings

        stack, update = StackSettings(), dict[str, Api | Mqtt]()
        if "api" not in self.model_fields_set:
            update["api"] = Api(url=stack.api.url)
        if "mqtt" not in self.model_fields_set:
            update["mqtt"] = Mqtt(host=stack.mosquitto.host, port=stack.mosquitto.port)
        return self.model_copy(update=update)
