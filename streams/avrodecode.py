"""Avro in C: a record schema compiled to a program that the extension ``streams._avro``
(streams/_native/avro.c) walks over a frame's bytes. ``decode_frame`` returns the dict
fastavro returns, or None for anything that is not exactly one well-formed record: the
caller then lets fastavro decide and say why. ``encode_frame`` writes the bytes fastavro
writes, or None to let fastavro write them. tests/unit/test_avrodecode.py checks both
against fastavro. The extension also assembles the input records' pydantic models from
checked fields (``assemble``, streams/assembly.py) and gives their classes plain
attribute reads (``plain_getattr``, streams/records.py).

fastavro is the twin: when the extension is not built (no C compiler at install) or
``POLYMON_NO_EXTENSIONS`` is set (streams.compiled), :func:`compile_program` returns None
and fastavro decodes and encodes everything.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from streams import compiled

log = logging.getLogger(__name__)

# the opcodes of streams/_native/avro.c
NULL, BOOLEAN, INT, LONG, FLOAT, DOUBLE, BYTES, STRING, FIXED, ENUM, UNION, ARRAY, MAP, \
    RECORD = range(14)
_PRIMITIVES = {"null": NULL, "boolean": BOOLEAN, "int": INT, "long": LONG, "float": FLOAT,
               "double": DOUBLE, "bytes": BYTES, "string": STRING}

Program = tuple[Any, ...]


class Unsupported(ValueError):
    """A schema the C decoder does not read as fastavro does (logical types, recursion)."""


extension = compiled.extension("streams._avro")
status = ("off: " + compiled.SWITCH + " is set" if compiled.NO_EXTENSIONS
          else "built" if extension is not None else "not built")
_said_why = False  # that the extension is not used: logged once


def available() -> bool:
    return extension is not None


def compile_program(schema: dict[str, Any]) -> Program | None:
    """The program of a record schema, or None when the extension is not available or
    the schema has what it does not read as fastavro does."""
    global _said_why
    if extension is None:
        if not _said_why:
            _said_why = True
            log.warning("Avro is decoded and encoded by fastavro (slower): the C extension "
                        "streams._avro is %s", status)
        return None
    try:
        return _compile(schema, {}, set(), schema.get("namespace", ""))
    except Unsupported as exc:
        log.debug("schema %s is decoded without the C extension: %s", schema.get("name"), exc)
        return None


def _unavailable(program: Program, header: bytes, data: bytes | None) -> dict[str, Any] | None:
    raise RuntimeError("no program is compiled without the extension")


# decode_frame(program, header, data): the datum of the body of a frame that starts with
# header, or None when data is no such frame (None included) or its body is not exactly
# one well-formed record of the program's schema. The extension's own function: a
# wrapper would cost a tenth of the decode.
decode_frame = extension.decode_frame if extension is not None else _unavailable


def _not_written(program: Program, header: bytes, datum: Any) -> bytes | None:
    return None


# encode_frame(program, header, datum): header followed by the datum's Avro body, as
# fastavro's schemaless_writer writes it, or None for a datum the C encoder leaves to
# fastavro (which writes it or says why not).
encode_frame = extension.encode_frame if extension is not None else _not_written


def _full_name(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _compile(node: Any, named: dict[str, Program], compiling: set[str],
             namespace: str) -> Program:
    if isinstance(node, str):
        if node in _PRIMITIVES:
            return (_PRIMITIVES[node],)
        name = _full_name(node, namespace)
        if name in compiling:
            raise Unsupported(f"recursive type {name}")
        if name not in named:
            raise Unsupported(f"unknown type {node!r}")
        return named[name]
    if isinstance(node, list):
        return (UNION, tuple(_compile(branch, named, compiling, namespace) for branch in node))
    if not isinstance(node, dict):
        raise Unsupported(f"not a schema: {node!r}")
    if "logicalType" in node:  # fastavro converts these (dates, decimals, ...)
        raise Unsupported(f"logical type {node['logicalType']}")
    kind = node.get("type")
    if kind in _PRIMITIVES:
        return (_PRIMITIVES[kind],)
    if kind == "array":
        return (ARRAY, _compile(node["items"], named, compiling, namespace))
    if kind == "map":
        return (MAP, _compile(node["values"], named, compiling, namespace))
    if kind not in ("record", "enum", "fixed"):
        raise Unsupported(f"type {kind!r}")
    name = _full_name(node["name"], node.get("namespace", namespace))
    inner = name.rpartition(".")[0]
    if kind == "enum":
        program: Program = (ENUM, tuple(_symbol(s) for s in node["symbols"]))
    elif kind == "fixed":
        program = (FIXED, int(node["size"]))
    else:
        compiling.add(name)
        fields = node["fields"]
        program = (RECORD, tuple(_symbol(field["name"]) for field in fields),
                   tuple(_compile(field["type"], named, compiling, inner) for field in fields))
        compiling.discard(name)
    named[name] = program
    return program


def _symbol(text: str) -> str:
    # interned: dict keys and enum values shared by every decoded record
    return sys.intern(text)
