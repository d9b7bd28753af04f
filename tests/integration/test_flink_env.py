"""PyFlink lives in its own virtualenv (its pins fight the main environment's); the shared domain
package installs into it without pulling any of the stack's dependencies."""

from __future__ import annotations

import json
import subprocess

from dev.stack import StackSettings
from dev.stack.installer import setup_flink_env
from dev.stack.paths import StackPaths
from shopstream.domain import EVENT_TYPES

PROBE = """
import importlib.metadata as md, json
import pyflink, shopstream.domain as d
print(json.dumps({
    "flink": md.version("apache-flink"),
    "protobuf": md.version("protobuf"),
    "events": len(d.EVENT_TYPES),
    "has_typer": any(x.metadata["Name"] == "typer" for x in md.distributions()),
}))
"""


def test_the_pyflink_environment_is_separate_and_carries_the_domain(settings: StackSettings) -> None:
    venv = setup_flink_env(settings, StackPaths(settings.home), report=print)
    out = subprocess.run([str(venv / "bin" / "python"), "-c", PROBE], capture_output=True, text=True, check=True)
    facts = json.loads(out.stdout)
    assert facts["flink"].startswith("2.3")
    assert int(facts["protobuf"].split(".")[0]) < 6  # the pin that keeps it out of the main env
    assert facts["events"] == len(EVENT_TYPES)  # the same catalogue as ours
    assert facts["has_typer"] is False  # the domain package brought no stack dependencies
