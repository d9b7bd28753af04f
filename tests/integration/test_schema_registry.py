"""Our schema registry in the running stack, driven by confluent-kafka's own client and serde."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from dev.stack.stack import Stack
from shopstream.contracts.files import find_schema_file
from shopstream.contracts.topic_audit import audit_topic
from shopstream.serde import AvroSerde, RegistryClient, frame

CREATED = find_schema_file("ecommerce.order.order.created.v1")
PAID = find_schema_file("ecommerce.order.order.paid.v1")
V1 = json.dumps(
    {"type": "record", "name": "Probe", "namespace": "test", "fields": [{"name": "a", "type": "int", "doc": "a"}]}
)
V2 = json.dumps(
    {
        "type": "record",
        "name": "Probe",
        "namespace": "test",
        "fields": [
            {"name": "a", "type": "int", "doc": "a"},
            {"name": "b", "type": "string", "default": "", "doc": "b"},
        ],
    }
)
V2_BREAKING = json.dumps(
    {
        "type": "record",
        "name": "Probe",
        "namespace": "test",
        "fields": [
            {"name": "a", "type": "int", "doc": "a"},
            {"name": "unit_price_minor", "type": "long", "doc": "no default"},
        ],
    }
)


def unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def order_created(order_id: str) -> dict[str, Any]:
    return {
        "eventId": str(uuid.uuid4()),
        "eventType": CREATED.topic,
        "occurredAt": datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
        "producer": "order-service",
        "traceId": uuid.uuid4().hex,
        "correlationId": "corr-1",
        "schemaVersion": "1.0",
        "partitionKey": order_id,
        "payload": {
            "orderId": order_id,
            "userId": "USER-9",
            "totalAmount": {"amountMinor": 12950, "currency": "USD"},
            "items": [
                {"productId": "P1", "qty": 2, "unitPrice": {"amountMinor": 2500, "currency": "USD"}},
                {"productId": "P2", "qty": 1, "unitPrice": {"amountMinor": 7950, "currency": "USD"}},
            ],
        },
    }


@pytest.fixture
def url(stack: Stack) -> str:
    return stack.settings.registry.url


@pytest.fixture
def client(url: str) -> Iterator[SchemaRegistryClient]:
    with SchemaRegistryClient({"url": url}) as c:
        yield c


def test_confluent_schema_registry_client_works_unchanged(client: SchemaRegistryClient) -> None:
    subject = unique("test.client") + "-value"
    first = client.register_schema(subject, Schema(V1, "AVRO"))
    assert client.register_schema(subject, Schema(V1, "AVRO")) == first
    latest = client.get_latest_version(subject)
    assert (latest.version, latest.schema_id) == (1, first)
    assert json.loads(latest.schema.schema_str)["name"] == "Probe"
    assert client.get_versions(subject) == [1]
    assert subject in client.get_subjects()
    assert client.lookup_schema(subject, Schema(V1, "AVRO")).version == 1
    assert json.loads(client.get_schema(first).schema_str)["fields"][0]["name"] == "a"

    second = client.register_schema(subject, Schema(V2, "AVRO"))
    assert second != first and client.get_versions(subject) == [1, 2]
    assert client.test_compatibility(subject, Schema(V2_BREAKING, "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(V2_BREAKING, "AVRO"))
    assert refused.value.http_status_code == 409 and "unit_price_minor" in refused.value.error_message

    assert client.set_compatibility(subject, "NONE") == {"compatibility": "NONE"}  # as Confluent answers
    assert client.get_compatibility(subject) == "NONE"
    assert client.register_schema(subject, Schema(V2_BREAKING, "AVRO")) > second

    assert client.delete_version(subject, 3) == 3
    assert client.get_versions(subject) == [1, 2]
    assert client.delete_subject(subject) == [1, 2]
    assert subject not in client.get_subjects()
    assert sorted(client.delete_subject(subject, permanent=True)) == [1, 2, 3]


def test_confluent_error_codes(url: str, client: SchemaRegistryClient) -> None:
    subject = unique("test.errors") + "-value"
    cases = [
        (lambda: client.get_latest_version(unique("nope")), 404, 40401),
        (lambda: client.get_schema(2_000_000_000), 404, 40403),
        (lambda: client.register_schema(subject, Schema('{"type": "record", "name": "X"}', "AVRO")), 422, 42201),
    ]
    for call, status, code in cases:
        with pytest.raises(SchemaRegistryError) as err:
            call()
        assert (err.value.http_status_code, err.value.error_code) == (status, code)
    client.register_schema(subject, Schema(V1, "AVRO"))
    with pytest.raises(SchemaRegistryError) as err:
        client.get_version(subject, 9)
    assert err.value.error_code == 40402
    # READONLY per subject, over the raw REST API
    assert httpx.put(f"{url}/mode/{subject}", json={"mode": "READONLY"}).json() == {"mode": "READONLY"}
    refused = httpx.post(f"{url}/subjects/{subject}/versions", json={"schema": V2})
    assert refused.status_code == 422 and refused.json()["error_code"] == 42205
    assert httpx.delete(f"{url}/mode/{subject}").json() == {"mode": "READONLY"}
    bad = httpx.post(f"{url}/subjects/{subject}/versions", content=b"{not json")
    assert bad.status_code == 400 and "not JSON" in bad.json()["message"]


def test_our_serde_and_confluents_read_each_others_bytes(url: str, client: SchemaRegistryClient) -> None:
    topic = unique("test.interop")
    ctx = SerializationContext(topic, MessageField.VALUE)
    record = order_created("ORDER-1")
    theirs = AvroSerializer(client, CREATED.text)(record, ctx)
    with RegistryClient(url) as registry:
        serde = AvroSerde(registry)
        schema_id, decoded = serde.decode(theirs)
        assert serde.use(f"{topic}-value", CREATED.text) == schema_id  # same schema, same id
        ours = serde.encode(f"{topic}-value", record)
    assert ours == theirs  # byte for byte
    assert AvroDeserializer(client)(ours, ctx) == decoded
    assert decoded["payload"]["totalAmount"] == {"amountMinor": 12950, "currency": "USD"}


def test_ids_and_versions_survive_a_registry_restart(stack: Stack, url: str) -> None:
    subject = unique("test.restart") + "-value"
    before = [httpx.post(f"{url}/subjects/{subject}/versions", json={"schema": s}).json()["id"] for s in (V1, V2)]
    httpx.put(f"{url}/config/{subject}", json={"compatibility": "FULL"}).raise_for_status()
    stack.down(["schema-registry"])
    stack.up(["schema-registry"])
    after = [httpx.get(f"{url}/subjects/{subject}/versions/{v}").json() for v in (1, 2)]
    assert [a["id"] for a in after] == before
    assert httpx.get(f"{url}/config/{subject}").json() == {"compatibilityLevel": "FULL"}
    assert httpx.post(f"{url}/subjects/{subject}/versions", json={"schema": V1}).json()["id"] == before[0]


def test_audit_topic_finds_every_corrupted_record_among_good_ones(stack: Stack, url: str) -> None:
    bootstrap = stack.settings.kafka.bootstrap
    topic = unique("test.audit")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=10)
    with RegistryClient(url) as registry:
        serde = AvroSerde(registry)
        serde.use(f"{topic}-value", CREATED.text)
        other = unique("test.other") + "-value"
        other_id = serde.use(other, PAID.text)
        good = serde.encode(f"{topic}-value", order_created("ORDER-7"))
        paid = serde.encode(
            other,
            {
                **{k: v for k, v in order_created("ORDER-7").items() if k != "payload"},
                "eventType": PAID.topic,
                "payload": {
                    "orderId": "ORDER-7",
                    "userId": "USER-9",
                    "paymentId": "PAY-1",
                    "amount": {"amountMinor": 12950, "currency": "USD"},
                    "paidAt": datetime.now(UTC),
                },
            },
        )
        values = (
            [good] * 5
            + [
                b"\x01" + good[1:],  # offset 5: bad magic byte
                good[:20],  # 6: truncated body
                frame(2_000_000_000, good[5:]),  # 7: unknown schema id
                paid,  # 8: a fine record, but of another subject's schema
                good,
            ]
        )
        producer = Producer({"bootstrap.servers": bootstrap})
        for value in values:
            producer.produce(topic, key=b"ORDER-7", value=value)
        assert producer.flush(10) == 0
        report = audit_topic(bootstrap, registry, topic, from_beginning=True)
    assert report.checked == 10
    assert [(b.offset, b.reason.split(":")[0]) for b in report.bad] == [
        (5, "bad magic byte"),
        (6, "does not decode with its schema"),
        (7, "unknown schema id"),
        (8, f"schema id {other_id} is not registered under subject {topic}-value"),
    ]
    cli = subprocess.run(
        [sys.executable, "-m", "dev.stack.cli.main", "schemas", "audit-topic", topic, "--from-beginning"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "10 records checked, 4 bad" in cli.stdout


def test_schemas_check_and_register_against_the_live_registry(stack: Stack) -> None:
    for args in (["check"], ["register"], ["check"]):
        cli = subprocess.run(
            [sys.executable, "-m", "dev.stack.cli.main", "schemas", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stdout + cli.stderr
