"""The local platform stack: real processes (Postgres, Redis, Kafka, Kafka Connect, ...) installed
by `shopstream setup`, supervised by supervisord, and managed by `shopstream up/down/status/logs`."""

from dev.stack.errors import StackError
from dev.stack.settings import StackSettings

__all__ = ["StackError", "StackSettings"]
