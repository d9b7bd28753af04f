"""Contract snapshots, checked in: the REST API's OpenAPI document, the GraphQL SDL and the gRPC
descriptor.
`python -m serving_api.contracts` rewrites them; a test fails when the code drifts from them,
so a contract change is always a visible diff."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.json_format import MessageToDict

from serving_api.gen.shopstream.inventory.v1 import inventory_pb2
from serving_api.graphql import sdl
from serving_api.http.app import create_app
from serving_api.settings import ApiSettings

REPO = Path(__file__).resolve().parents[1]
OPENAPI = REPO / "serving_api" / "openapi.json"
DESCRIPTOR = REPO / "proto" / "shopstream" / "inventory" / "v1" / "inventory.descriptor.json"
GRAPHQL = REPO / "serving_api" / "schema.graphql"


def openapi_text() -> str:
    return json.dumps(create_app(ApiSettings()).openapi(), indent=2, sort_keys=True) + "\n"


def descriptor_text() -> str:
    proto = descriptor_pb2.FileDescriptorProto()
    inventory_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = "shopstream/inventory/v1/inventory.proto"  # the source path, not the codegen's virtual one
    return json.dumps(MessageToDict(proto), indent=2, sort_keys=True) + "\n"


SNAPSHOTS = {OPENAPI: openapi_text, DESCRIPTOR: descriptor_text, GRAPHQL: sdl}


def main() -> int:
    check = "--check" in sys.argv
    stale = [path for path, render in SNAPSHOTS.items() if not path.exists() or path.read_text() != render()]
    if check:
        for path in stale:
            print(f"out of date: {path}; run `python -m serving_api.contracts`")
        return 1 if stale else 0
    for path in stale:
        path.write_text(SNAPSHOTS[path]())
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
