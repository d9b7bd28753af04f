"""Shared fixtures. Tests under tests/integration and tests/e2e use the real local stack: the
`stack` fixture installs and starts it when it is not already healthy (and stops it again at the
end if it started it, unless SHOPSTREAM_KEEP_STACK=1). It never skips: no stack, no pass."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shopstream.stack import StackSettings
from shopstream.stack.installer import install_all
from shopstream.stack.stack import Stack


@pytest.fixture(scope="session")
def settings() -> StackSettings:
    return StackSettings()


@pytest.fixture(scope="session")
def stack(settings: StackSettings) -> Iterator[Stack]:
    stack = Stack(settings)
    already_up = all(s.healthy for s in stack.status())
    if not already_up:
        install_all(settings, stack.components, stack.paths, report=print)
        stack.up()
    yield stack
    if not already_up and os.environ.get("SHOPSTREAM_KEEP_STACK") != "1":
        stack.down()
