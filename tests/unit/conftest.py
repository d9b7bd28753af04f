"""Unit tests see the defaults, not whatever SHOPSTREAM_* the shell exports."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_shopstream_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SHOPSTREAM_"):
            monkeypatch.delenv(name)
