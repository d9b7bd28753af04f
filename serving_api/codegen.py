"""The one codegen step for gRPC: `python -m serving_api.codegen` regenerates serving_api/gen/
from proto/ (the generated code is checked in, excluded from lint, and verified by a test)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

REPO = Path(__file__).resolve().parents[1]
PROTO = REPO / "proto"
GEN = REPO / "serving_api" / "gen"


def generate(out_root: Path) -> list[Path]:
    """Generate Python modules for every .proto under proto/ into out_root/serving_api/gen/."""
    files = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    # the virtual path `serving_api/gen` makes the generated imports land in our package
    args = [
        "protoc",
        f"-Iserving_api/gen={PROTO}",
        f"-I{Path(protoc.__file__).parent / '_proto'}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *[f"serving_api/gen/{f}" for f in files],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted((out_root / "serving_api" / "gen").rglob("*.py*"))


def main() -> int:
    check = "--check" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        generated = generate(Path(tmp))
        stale = []
        for path in generated:
            target = GEN / path.relative_to(Path(tmp) / "serving_api" / "gen")
            if not target.exists() or target.read_bytes() != path.read_bytes():
                stale.append(target)
                if not check:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(path.read_bytes())
    if check and stale:
        print(f"out of date: {', '.join(map(str, stale))}; run `python -m serving_api.codegen`")
        return 1
    print("generated code is up to date" if not stale else f"wrote {len(stale)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
