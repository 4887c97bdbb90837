"""docs/settings.md, generated from the Settings model (streams/settings.py), so the
settings' documentation cannot drift from the code.

    python -m streams.settings_doc            # (re)write docs/settings.md
    python -m streams.settings_doc --check    # exit 1, with a diff, if it is out of date

A unit test (tests/unit/test_settings_doc.py) fails when the file differs from
:func:`render`: change a setting, then run the first command.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from streams.settings import Settings

DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "settings.md"
COMMAND = "python -m streams.settings_doc"
EMBEDDED_TAG = "[embedded broker]"
# Defaults that depend on the machine or the process: shown as what they stand for, so
# the document is the same wherever it is generated.
PLACEHOLDERS = {"worker_id": "<host>-<pid>"}
# Meanings of the fields that carry no description in the model yet; a description
# there takes precedence (and this entry can then go).
UNDESCRIBED = {
    "worker_id": "this worker's id: in its heartbeats, dead letters and logs (and its "
                 "instance id with static_membership)",
    "log_level": "the worker's log level (debug, info, warning, error)",
    "slo_default_target": "SLO target of an SLO not named in slo_targets",
}
INTRO = """
Every setting is an environment variable `POLYMON_<NAME>` (pydantic-settings,
`streams/settings.py`), read when a process starts. Dicts and lists are written as JSON,
e.g. `POLYMON_STALENESS_OVERRIDES_S='{"market": {"book": 3}}'`; booleans as `true` or
`false`.

The **broker** column says where a setting applies: `both`, or `embedded only` for the
workarounds of the embedded noida-db broker, which take effect only with
`POLYMON_BROKER_ENGINE=embedded` (what `polymon demo` and `polymon broker --engine
embedded` set for what they start). On Apache Kafka, the default engine, they are off.
The settings that matter most are in the [README](../README.md#settings-that-matter-most).
"""
# An HTML-like tag (<token>, <host>) would be swallowed by a Markdown renderer.
_TAG_OPENING = re.compile(r"<(?=[A-Za-z][A-Za-z0-9-]*>)")


def env_name(name: str, field: FieldInfo) -> str:
    """The environment variable pydantic-settings reads the field from."""
    if isinstance(field.validation_alias, str):
        return field.validation_alias.upper()
    if isinstance(field.alias, str):
        return field.alias.upper()
    return f"{Settings.model_config.get('env_prefix', '')}{name}".upper()


def default_of(name: str, field: FieldInfo) -> str:
    """The default as it would be written in the environment: JSON for dicts and lists,
    ``unset`` for None, the factory's result where there is one."""
    if name in PLACEHOLDERS:
        return f"`{PLACEHOLDERS[name]}`"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is None:
        return "unset"
    if isinstance(value, str):
        return f"`{value}`" if value else "empty"
    if isinstance(value, bool):
        return f"`{'true' if value else 'false'}`"
    if isinstance(value, int | float):
        return f"`{value}`"
    plain = to_jsonable_python(value)
    text = json.dumps(plain, ensure_ascii=False) if isinstance(plain, dict | list) else str(plain)
    return f"`{text}`"


def choices(annotation: Any) -> list[str]:
    """The values a Literal field (or an optional one) accepts; [] for any other type."""
    if typing.get_origin(annotation) is Literal:
        return [str(arg) for arg in typing.get_args(annotation)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if typing.get_origin(arg) is Literal:
                return [str(value) for value in typing.get_args(arg)]
    return []


def meaning_of(name: str, field: FieldInfo) -> tuple[str, str]:
    """(broker, meaning): "embedded only" for a description tagged [embedded broker]."""
    description = (field.description or UNDESCRIBED.get(name, "")).strip()
    broker = "both"
    if description.startswith(EMBEDDED_TAG):
        broker = "embedded only"
        description = description[len(EMBEDDED_TAG):].strip()
    accepted = choices(field.annotation)
    if accepted:
        description += "; one of " + ", ".join(f"`{value}`" for value in accepted)
    return broker, description


def _cell(text: str) -> str:
    """A table cell: pipes escaped, and tags escaped outside code spans (inside one a
    renderer shows them as written)."""
    parts = text.replace("|", "\\|").split("`")
    return "`".join(part if index % 2 else _TAG_OPENING.sub("&lt;", part)
                    for index, part in enumerate(parts))


def render() -> str:
    """The whole of docs/settings.md."""
    lines = [
        "# Settings",
        "",
        f"<!-- Generated by `{COMMAND}` from streams/settings.py: do not edit by hand. -->",
        "",
        *INTRO.strip("\n").splitlines(),
        "",
        "| variable | default | broker | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        broker, meaning = meaning_of(name, field)
        lines.append(f"| `{env_name(name, field)}` | {_cell(default_of(name, field))} | "
                     f"{broker} | {_cell(meaning)} |")
    return "\n".join(lines) + "\n"


def check(path: Path = DOC_PATH) -> str | None:
    """None when the file is what :func:`render` makes; else what differs, as a diff."""
    expected = render()
    actual = path.read_text() if path.exists() else ""
    if actual == expected:
        return None
    diff = difflib.unified_diff(actual.splitlines(keepends=True),
                                expected.splitlines(keepends=True),
                                f"{path} (on disk)", f"{path} (from the Settings model)")
    return "".join(diff)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write: exit 1 with a diff if the file is out of date")
    parser.add_argument("--output", type=Path, default=DOC_PATH, help="default: %(default)s")
    args = parser.parse_args(argv)
    if args.check:
        diff = check(args.output)
        if diff is None:
            print(f"{args.output} is up to date")
            return 0
        sys.stderr.write(diff)
        sys.stderr.write(f"\n{args.output} differs from the Settings model: run `{COMMAND}`\n")
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render())
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
