"""Avro binary encoders/decoders compiled to Python source, one pair per schema.

fastavro interprets the schema for every record; for the schemas of `schemas/` (records, arrays,
maps, enums, nullable unions, primitives, uuid and timestamp-millis) a function written for that
schema does the same work in about half the time, and yields the same bytes and the same values
(datetime for timestamp-millis, UUID for uuid, as fastavro). Any other construct raises
`Unsupported`, and the serde then uses fastavro for that schema."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_NAIVE = datetime(1970, 1, 1)  # noqa: DTZ001 - fastavro's rule for naive datetimes
PRIMITIVES = {"null", "boolean", "int", "long", "string", "bytes"}

Encoder = Callable[[dict[str, Any]], bytes]
Decoder = Callable[[bytes, int], tuple[dict[str, Any], int]]


class Unsupported(Exception):
    """The schema uses something this compiler leaves to fastavro."""


# --- runtime helpers the generated code calls (slow paths; fast paths are inlined) ------------
def _write_long(out: bytearray, n: int) -> None:
    if not -(2**63) <= n < 2**63:
        raise OverflowError(f"{n} does not fit an Avro long")
    n = (n << 1) ^ (n >> 63)
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _read_long(buf: bytes, pos: int) -> tuple[int, int]:
    b = buf[pos]
    pos += 1
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


def _millis(value: Any) -> int:
    if isinstance(value, datetime):
        delta = value - (EPOCH if value.tzinfo is not None else EPOCH_NAIVE)
        return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000
    return int(value)


def _uuid_text(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value  # a str, or an error on .encode()


class _Compiler:
    def __init__(self, raw: bool = False) -> None:
        self.raw = raw  # decode timestamp-millis as epoch ms and uuid as its text (no conversions)
        self.named: dict[str, dict[str, Any]] = {}
        self.lines: list[str] = []
        self.ids = itertools.count()
        self.consts: dict[str, Any] = {}
        self.open: set[int] = set()  # records being compiled: meeting one again means recursion

    def var(self, prefix: str) -> str:
        return f"{prefix}{next(self.ids)}"

    def const(self, value: Any) -> str:
        name = self.var("K")
        self.consts[name] = value
        return name

    def resolve(self, schema: Any, namespace: str) -> Any:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            full = schema if "." in schema else f"{namespace}.{schema}" if namespace else schema
            if full in self.named:
                return self.named[full]
            if schema in self.named:
                return self.named[schema]
            raise Unsupported(f"unknown named type {schema}")
        if isinstance(schema, dict) and schema.get("type") in ("record", "enum", "fixed"):
            ns = schema.get("namespace", namespace)
            name = schema["name"]
            full = name if "." in name else f"{ns}.{name}" if ns else name
            self.named[full] = schema
            schema.setdefault("__ns", ns)
        return schema

    def _enter(self, record: dict[str, Any]) -> None:
        if id(record) in self.open:
            raise Unsupported(f"recursive record {record.get('name')}")
        self.open.add(id(record))

    def min_size(self, schema: Any, ns: str) -> int:
        """Fewest bytes a value of the schema takes (0 for null and records of such)."""
        s = self.resolve(schema, ns)
        kind = s if isinstance(s, str) else s.get("type") if isinstance(s, dict) else "union"
        if kind == "null":
            return 0
        if kind == "record":
            self._enter(s)
            total = sum(self.min_size(f["type"], s["__ns"]) for f in s["fields"])
            self.open.discard(id(s))
            return total
        if kind in PRIMITIVES and isinstance(s, dict):
            return self.min_size(kind, ns)
        return 1

    # --- encoding ------------------------------------------------------------------------------
    def enc(self, schema: Any, value: str, ind: str, ns: str) -> None:
        s = self.resolve(schema, ns)
        emit = self.lines.append
        kind = s if isinstance(s, str) else s.get("type") if isinstance(s, dict) else "union"
        logical = s.get("logicalType") if isinstance(s, dict) else None
        if isinstance(s, dict) and kind in PRIMITIVES:
            if logical == "timestamp-millis" and kind == "long":
                v = self.var("t")
                emit(f"{ind}{v} = _millis({value})")
                return self.enc("long", v, ind, ns)
            if logical == "uuid" and kind == "string":
                v = self.var("u")
                emit(f"{ind}{v} = _uuid_text({value})")
                return self.enc("string", v, ind, ns)
            if logical is not None:
                raise Unsupported(f"logicalType {logical}")
            return self.enc(kind, value, ind, ns)
        if kind == "null":
            return None
        if kind == "boolean":
            emit(f"{ind}out.append(1 if {value} else 0)")
        elif kind in ("int", "long"):
            z = self.var("z")
            emit(f"{ind}{z} = ({value} << 1) ^ ({value} >> 63)")
            emit(f"{ind}if 0 <= {z} < 128: out.append({z})")
            emit(f"{ind}else: _write_long(out, {value})")
        elif kind in ("string", "bytes"):
            b = self.var("b")
            emit(f"{ind}{b} = {value}.encode()" if kind == "string" else f"{ind}{b} = {value}")
            emit(f"{ind}if len({b}) < 64: out.append(len({b}) << 1)")
            emit(f"{ind}else: _write_long(out, len({b}))")
            emit(f"{ind}out += {b}")
        elif kind == "record":
            child_ns = s["__ns"]
            self._enter(s)
            for f in s["fields"]:
                v = self.var("f")
                key = repr(f["name"])
                if "default" in f:
                    emit(f"{ind}{v} = {value}.get({key}, {self.const(f['default'])})")
                elif isinstance(f["type"], list) and "null" in f["type"]:
                    emit(f"{ind}{v} = {value}.get({key})")  # as fastavro: a missing nullable field is null
                else:
                    emit(f"{ind}{v} = {value}[{key}]")
                self.enc(f["type"], v, ind, child_ns)
            self.open.discard(id(s))
        elif kind == "enum":
            index = {sym: i for i, sym in enumerate(s["symbols"])}
            emit(
                f"{ind}out.append({self.const(index)}[{value}] << 1)"
                if len(index) < 64
                else f"{ind}_write_long(out, {self.const(index)}[{value}])"
            )
        elif kind == "array":
            item = self.var("i")
            emit(f"{ind}if {value}:")
            emit(f"{ind}    _write_long(out, len({value}))")
            emit(f"{ind}    for {item} in {value}:")
            self.enc(s["items"], item, ind + "        ", ns)
            emit(f"{ind}out.append(0)")
        elif kind == "map":
            k, item = self.var("k"), self.var("i")
            emit(f"{ind}if {value}:")
            emit(f"{ind}    _write_long(out, len({value}))")
            emit(f"{ind}    for {k}, {item} in {value}.items():")
            self.enc("string", k, ind + "        ", ns)
            self.enc(s["values"], item, ind + "        ", ns)
            emit(f"{ind}out.append(0)")
        elif kind == "union":
            branches = [self.resolve(b, ns) for b in s]
            if len(branches) != 2 or "null" not in branches or any(isinstance(b, list) for b in branches):
                raise Unsupported("unions other than [null, T]")
            null_at = branches.index("null")
            other = branches[1 - null_at]
            emit(f"{ind}if {value} is None: out.append({null_at << 1})")
            emit(f"{ind}else:")
            emit(f"{ind}    out.append({(1 - null_at) << 1})")
            self.enc(other, value, ind + "    ", ns)
        else:
            raise Unsupported(f"type {kind}")
        return None

    # --- decoding ------------------------------------------------------------------------------
    def dec(self, schema: Any, target: str, ind: str, ns: str) -> None:
        s = self.resolve(schema, ns)
        emit = self.lines.append
        kind = s if isinstance(s, str) else s.get("type") if isinstance(s, dict) else "union"
        logical = s.get("logicalType") if isinstance(s, dict) else None
        if isinstance(s, dict) and kind in PRIMITIVES:
            if logical == "timestamp-millis" and kind == "long":
                self.dec("long", target, ind, ns)
                if not self.raw:
                    emit(f"{ind}{target} = _EPOCH + _timedelta(microseconds={target} * 1000)")
                return None
            if logical == "uuid" and kind == "string":
                self.dec("string", target, ind, ns)
                if self.raw:  # the text, checked for a UUID's shape only (8-4-4-4-12)
                    emit(f"{ind}if len({target}) != 36 or {target}[8] != '-': raise ValueError('not a uuid')")
                else:
                    emit(f"{ind}{target} = _UUID({target})")
                return None
            if logical is not None:
                raise Unsupported(f"logicalType {logical}")
            return self.dec(kind, target, ind, ns)
        if kind == "null":
            emit(f"{ind}{target} = None")
        elif kind == "boolean":
            emit(f"{ind}{target} = buf[pos] == 1; pos += 1")
        elif kind in ("int", "long"):
            b = self.var("b")
            emit(f"{ind}{b} = buf[pos]")
            emit(f"{ind}if {b} < 128: {target} = ({b} >> 1) ^ -({b} & 1); pos += 1")
            emit(f"{ind}else: {target}, pos = _read_long(buf, pos)")
        elif kind in ("string", "bytes"):
            n = self.var("n")
            self.dec("long", n, ind, ns)
            emit(f"{ind}if {n} < 0 or pos + {n} > len(buf): raise ValueError('length ' + str({n}) + ' at ' + str(pos))")
            if kind == "string":
                emit(f"{ind}{target} = buf[pos:pos + {n}].decode(); pos += {n}")
            else:
                emit(f"{ind}{target} = bytes(buf[pos:pos + {n}]); pos += {n}")
        elif kind == "record":
            child_ns = s["__ns"]
            self._enter(s)
            names = []
            for f in s["fields"]:
                v = self.var("f")
                self.dec(f["type"], v, ind, child_ns)
                names.append(f"{f['name']!r}: {v}")
            emit(f"{ind}{target} = {{{', '.join(names)}}}")
            self.open.discard(id(s))
        elif kind == "enum":
            i = self.var("e")
            self.dec("long", i, ind, ns)
            emit(f"{ind}{target} = {self.const(list(s['symbols']))}[{i}]")
        elif kind in ("array", "map"):
            if kind == "array" and self.min_size(s["items"], ns) == 0:
                raise Unsupported("array of items that take no bytes")
            count, item, k = self.var("c"), self.var("i"), self.var("k")
            emit(f"{ind}{target} = []" if kind == "array" else f"{ind}{target} = {{}}")
            emit(f"{ind}while True:")
            self.dec("long", count, ind + "    ", ns)
            emit(f"{ind}    if {count} == 0: break")
            emit(f"{ind}    if {count} < 0:")
            emit(f"{ind}        {count} = -{count}")
            self.dec("long", self.var("size"), ind + "        ", ns)
            # every item takes at least one byte (null items are refused below), so a count larger
            # than what is left is corrupt: fail now instead of looping over it
            emit(f"{ind}    if {count} > len(buf) - pos: raise ValueError('block of ' + str({count}) + ' items')")
            emit(f"{ind}    for _ in range({count}):")
            if kind == "map":
                self.dec("string", k, ind + "        ", ns)
            self.dec(s["items"] if kind == "array" else s["values"], item, ind + "        ", ns)
            emit(f"{ind}        {target}.append({item})" if kind == "array" else f"{ind}        {target}[{k}] = {item}")
        elif kind == "union":
            branches = [self.resolve(b, ns) for b in s]
            if len(branches) != 2 or "null" not in branches or any(isinstance(b, list) for b in branches):
                raise Unsupported("unions other than [null, T]")
            null_at = branches.index("null")
            i = self.var("x")
            self.dec("long", i, ind, ns)
            emit(f"{ind}if {i} == {null_at}: {target} = None")
            emit(f"{ind}elif {i} == {1 - null_at}:")
            self.dec(branches[1 - null_at], target, ind + "    ", ns)
            emit(f"{ind}else: raise IndexError('union branch ' + str({i}))")
        else:
            raise Unsupported(f"type {kind}")
        return None


def compile_schema(schema: dict[str, Any], raw: bool = False) -> tuple[Encoder, Decoder]:
    """(encode(record) -> Avro body bytes, decode(buf, pos) -> (record, end)) for `schema`.

    `raw`: the decoder leaves timestamp-millis as epoch milliseconds (int) and uuid as its text
    (what typed events hold: no datetime or UUID made and turned back); the encoder is the same."""
    import copy

    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise Unsupported("only record schemas at the top")
    tree = copy.deepcopy(schema)
    c = _Compiler(raw)
    c.lines.append("def encode(rec):")
    c.lines.append("    out = bytearray()")
    c.enc(tree, "rec", "    ", "")
    c.lines.append("    return bytes(out)")
    encode_src = "\n".join(c.lines)
    c.lines = ["def decode(buf, pos):"]
    c.dec(tree, "rec", "    ", "")
    c.lines.append("    return rec, pos")
    decode_src = "\n".join(c.lines)
    scope: dict[str, Any] = {
        "_write_long": _write_long,
        "_read_long": _read_long,
        "_millis": _millis,
        "_uuid_text": _uuid_text,
        "_EPOCH": EPOCH,
        "_timedelta": timedelta,
        "_UUID": uuid.UUID,
        **c.consts,
    }
    exec(compile(encode_src + "\n\n" + decode_src, f"<avro codec {schema.get('name', '?')}>", "exec"), scope)  # noqa: S102
    return scope["encode"], scope["decode"]
