"""A real headless Chromium (Debian's, installed by `shopstream setup --browser`) driven over the
DevTools protocol: open a page, wait for a condition in it, read values, take a screenshot."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

CHROMIUM = "/usr/bin/chromium"
FLAGS = [  # the machine's network is closed: no background connections, no first-run work
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
]


class Browser:
    def __init__(self) -> None:
        if not Path(CHROMIUM).exists():
            raise RuntimeError(f"{CHROMIUM} missing: `shopstream setup --browser` installs it")
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.process = subprocess.Popen(
            [
                CHROMIUM,
                *FLAGS,
                f"--remote-debugging-port={self.port}",
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/json/version", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self._ids = itertools.count(1)
        self._sockets = contextlib.ExitStack()
        self.page: ClientConnection | None = None

    def open(self, url: str) -> None:
        target = httpx.put(f"http://127.0.0.1:{self.port}/json/new?{url}", timeout=10).json()
        self.page = self._sockets.enter_context(connect(target["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024))

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        assert self.page is not None, "open() a page first"
        ident = next(self._ids)
        self.page.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.page.recv(timeout=30))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]  # type: ignore[no-any-return]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"not true in the page within {timeout}s: {expression}")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        self._sockets.close()
        self.process.terminate()
        self.process.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)
