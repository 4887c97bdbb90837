"""The documentation stays true: docs/settings.md is what the Settings model renders, the
README stays short, and every relative link in the README and docs/ leads somewhere.
Nothing here reads outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams import settings_doc
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_LIMIT = 12_000  # characters: a newcomer's page; the rest lives in docs/
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def test_settings_doc_matches_the_settings_model() -> None:
    diff = settings_doc.check()
    assert diff is None, (f"docs/settings.md has drifted from streams/settings.py: run "
                          f"`{settings_doc.COMMAND}`\n{diff}")


def test_every_setting_has_a_row_with_its_variable() -> None:
    rendered = settings_doc.render()
    rows = [line for line in rendered.splitlines() if line.startswith("| `POLYMON_")]
    assert len(rows) == len(Settings.model_fields)
    for name in Settings.model_fields:
        assert f"| `POLYMON_{name.upper()}` |" in rendered
    assert all(row.count(" | ") == 3 for row in rows), "a cell holds an unescaped pipe"


def _row(variable: str) -> list[str]:
    for line in settings_doc.render().splitlines():
        if line.startswith(f"| `{variable}` |"):
            return [cell.strip() for cell in line.strip("|").split(" | ")]
    raise AssertionError(f"no row for {variable}")


def test_defaults_are_rendered_as_they_would_be_written() -> None:
    assert _row("POLYMON_WORKER_ID")[1] == "`<host>-<pid>`"  # host and pid vary
    assert _row("POLYMON_SCHEMA_REGISTRY_URL")[1] == "unset"
    assert _row("POLYMON_TOPIC_PREFIX")[1] == "empty"
    assert _row("POLYMON_STATIC_MEMBERSHIP")[1] == "`false`"
    assert _row("POLYMON_GC_THRESHOLDS")[1] == "`[10000, 10, 1000]`"
    assert _row("POLYMON_PAUSE_POLICIES")[1] == (
        '`{"GOV_SLO_BURN": "LATCH", "EXEC_SLIPPAGE_BREACH": "LATCH"}`')
    assert _row("POLYMON_STATE_DIR")[1] == "`.state`"


def test_embedded_broker_settings_are_marked_and_untagged() -> None:
    embedded = {name for name, field in Settings.model_fields.items()
                if (field.description or "").startswith(settings_doc.EMBEDDED_TAG)}
    assert {"evict_dead_members", "idle_fetch_backoff_s"} <= embedded
    for name in Settings.model_fields:
        _, _, broker, meaning = _row(f"POLYMON_{name.upper()}")
        assert broker == ("embedded only" if name in embedded else "both")
        assert meaning and not meaning.startswith("[")


def test_check_reports_a_drifted_file(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "settings.md"
    assert settings_doc.main(["--output", str(target)]) == 0
    assert settings_doc.main(["--check", "--output", str(target)]) == 0
    target.write_text(target.read_text().replace("`kafka`", "`zookeeper`", 1))
    assert settings_doc.main(["--check", "--output", str(target)]) == 1
    err = capsys.readouterr().err
    assert "-| `POLYMON_BROKER_ENGINE` | `zookeeper`" in err
    assert settings_doc.COMMAND in err


def test_readme_is_short() -> None:
    length = len(README.read_text(encoding="utf-8"))
    assert length <= README_LIMIT, f"README.md is {length} characters (limit {README_LIMIT})"


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(markdown: Path) -> set[str]:
    text = FENCE.sub("", markdown.read_text(encoding="utf-8"))
    return {_slug(match[1]) for match in re.finditer(r"^#{1,6} (.+)$", text, re.MULTILINE)}


def _relative_links(markdown: Path) -> list[str]:
    text = CODE_SPAN.sub("", FENCE.sub("", markdown.read_text(encoding="utf-8")))
    return [target for target in LINK.findall(text)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]  # http:, mailto:, ...


def _documents() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


@pytest.mark.parametrize("document", _documents(), ids=lambda path: path.name)
def test_relative_links_lead_somewhere(document: Path) -> None:
    broken = []
    for target in _relative_links(document):
        path_part, _, anchor = target.partition("#")
        path = (document.parent / path_part).resolve() if path_part else document
        if not path.exists():
            broken.append(f"{target}: no {path}")
        elif ROOT not in (path, *path.parents):
            broken.append(f"{target}: outside the repository")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.name}")
    assert not broken, f"{document.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_docs_the_readme_promises_are_linked() -> None:
    links = set(_relative_links(README))
    for name in ("operator-guide", "contracts", "settings", "design", "benchmarks",
                 "testing", "api"):
        assert f"docs/{name}.md" in links


def test_every_setting_says_what_it_does() -> None:
    from streams.settings import Settings

    assert not [name for name, field in Settings.model_fields.items()
                if not (field.description or "").strip()]
