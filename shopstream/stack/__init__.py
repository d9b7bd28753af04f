"""The local platform stack: real processes (Postgres, Redis, Kafka, Kafka Connect, ...) installed
by `shopstream setup`, supervised by supervisord, and managed by `shopstream up/down/status/logs`."""

from shopstream.stack.errors import StackError
from shopstream.stack.settings import StackSettings

__all__ = ["StackError", "StackSettings"]
