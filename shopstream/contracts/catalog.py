"""The event catalog: an AsyncAPI 3 document generated from `schemas/` (channels = topics,
message payloads = the Avro schemas), checked in as `schemas/asyncapi.yaml`."""

from __future__ import annotations

from typing import Any

import yaml

from shopstream import __version__
from shopstream.contracts.files import SchemaFile
from shopstream.domain import EVENT_TYPES

AVRO_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"


def asyncapi(schemas: list[SchemaFile]) -> dict[str, Any]:
    events = {e.name: e for e in EVENT_TYPES}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for schema in schemas:
        doc = schema.json()
        name = doc["name"]
        event = events.get(schema.topic)
        channel_id = name[0].lower() + name[1:]
        messages[name] = {
            "name": name,
            "title": schema.topic,
            "summary": event.purpose if event else doc.get("doc", ""),
            "description": doc.get("doc", ""),
            "contentType": "application/vnd.apache.avro+binary",
            "bindings": {
                "kafka": {
                    "key": {
                        "type": "string",
                        "description": f"{event.partition_key if event else 'key'} of the payload",
                    },
                    "schemaIdLocation": "payload",
                    "schemaIdPayloadEncoding": "confluent",
                    "schemaLookupStrategy": "TopicNameStrategy",
                    "bindingVersion": "0.5.0",
                }
            },
            "payload": {"schemaFormat": AVRO_FORMAT, "schema": doc},
        }
        channels[channel_id] = {
            "address": schema.topic,
            "title": schema.topic,
            "description": f"Kafka topic {schema.topic}; value subject {schema.subject} (Confluent wire format).",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"consume{name}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "shopstream events",
            "version": __version__,
            "description": "Every event of the platform: one Kafka topic per event type, Avro values in the "
            "Confluent wire format, schemas registered under <topic>-value. Generated from schemas/ by "
            "`shopstream schemas catalog`; do not edit by hand.",
        },
        "defaultContentType": "application/vnd.apache.avro+binary",
        "servers": {
            "local": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "the local stack (`make run`)"}
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def render(schemas: list[SchemaFile]) -> str:
    return yaml.safe_dump(asyncapi(schemas), sort_keys=False, allow_unicode=True, width=100)
