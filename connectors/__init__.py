"""Kafka Connect connectors of the platform: configs as JSON files templated from settings, and a
client that applies them idempotently through the Connect REST API."""

from connectors.client import ApplyResult, ConnectClient, ConnectError, ConnectorFailed
from connectors.configs import ConnectorConfig, load_config

__all__ = [
    "ApplyResult",
    "ConnectClient",
    "ConnectError",
    "ConnectorConfig",
    "ConnectorFailed",
    "load_config",
]
