"""Config files of the stack are templates in `infra/conf/`, rendered into `<home>/conf/`."""

from __future__ import annotations

from pathlib import Path
from string import Template


def render(template: Path, target: Path, values: dict[str, object]) -> Path:
    """Fill `${name}` placeholders; a missing value is an error, not an empty string."""
    text = Template(template.read_text()).substitute({k: str(v) for k, v in values.items()})
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return target
