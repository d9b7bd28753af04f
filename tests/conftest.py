"""Shared fixtures. Tests under tests/integration and tests/e2e use the real local stack: the
`stack` fixture installs it and brings every component up (a no-op for what is already healthy),
and afterwards stops only what it started (unless SHOPSTREAM_KEEP_STACK=1). It never skips."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from hypothesis import settings as hypothesis_settings

from dev.stack import StackSettings
from dev.stack.installer import install_all
from dev.stack.stack import Stack
from tests.integration.api_client import Storefront

# no per-example deadline: timings are the benchmarks' business, and a loaded 2-core machine
# (the whole stack beside the tests) makes them flaky
hypothesis_settings.register_profile("shopstream", deadline=None)
hypothesis_settings.load_profile("shopstream")


@pytest.fixture(scope="session")
def settings() -> StackSettings:
    return StackSettings()


@pytest.fixture(scope="session")
def stack(settings: StackSettings) -> Iterator[Stack]:
    stack = Stack(settings)
    daemon_was_running = stack.supervisor.is_running()
    up_before = {s.name for s in stack.status() if s.state != "down"}
    install_all(settings, stack.components, stack.paths, report=print)
    stack.up()
    yield stack
    if os.environ.get("SHOPSTREAM_KEEP_STACK") == "1":
        return
    if not daemon_was_running:
        stack.down()
    else:
        started = [c.name for c in stack.components if c.name not in up_before]
        if started:
            stack.down(started)


@pytest.fixture(scope="module")
def shop(stack: Stack) -> Iterator[Storefront]:
    """A storefront client of the running API, with tokens for admin, alice and bob."""
    s = Storefront(stack.settings.api.url)
    yield s
    s.close()


@pytest.fixture(scope="module")
def cache(stack: Stack) -> redis.Redis:
    return redis.Redis(host=stack.settings.redis.host, port=stack.settings.redis.port, decode_responses=True)
