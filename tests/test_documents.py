"""Document kinds and their JSON Schemas (cnncost.documents, cnncost.schema, `cnncost schema`).

Parametrized over the registry: each kind's schema is valid draft 2020-12, printed by
`cnncost schema KIND`, and met by the documents its example commands write (checked with the
jsonschema library and with cnncost's own validator). Every document the rest of the suite
makes cnncost write is checked too (conftest.py, tests/captured.py).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import captured
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from cnncost.cli import app
from cnncost.documents import DOCUMENTS, DocumentKind
from cnncost.schema import SchemaError, is_valid, validate
from cnncost.table import CostTable, report_schema

ROOT = Path(__file__).resolve().parents[1]
KINDS = list(DOCUMENTS.values())
REPORT = json.loads((ROOT / "reports" / "lenet5.json").read_text())


def _slow_if_measured(kind: DocumentKind) -> Any:
    """Examples that measure this machine (torch, timing, a calibration): the slow tier."""
    measured = any(argv[0] in ("bench", "calibrate") for argv in kind.examples)
    return pytest.param(kind, id=kind.name, marks=[pytest.mark.slow] if measured else [])


def test_kinds_are_named_after_their_ids() -> None:
    for name, kind in DOCUMENTS.items():
        assert kind.name == name and re.fullmatch(rf"cnncost\.{re.escape(name)}/\d+", kind.id)


def test_every_schema_id_in_the_package_is_registered() -> None:
    ids = {k.id for k in KINDS}
    written = {m for path in (ROOT / "cnncost").rglob("*.py")
               for m in re.findall(r"\"(cnncost\.[a-z][a-z-]*/\d+)\"", path.read_text())}
    assert written - ids == set(), "document ids in the code without a cnncost.documents entry"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_schema_is_valid_and_printed(kind: DocumentKind) -> None:
    schema = kind.schema()
    Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema"] == {"const": kind.id}
    assert schema["$id"] == f"urn:cnncost:{kind.id.removeprefix('cnncost.')}"
    for name in (kind.name, kind.id):
        result = CliRunner().invoke(app, ["schema", name])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == schema


_RUNS: dict[tuple[tuple[str, ...], ...], list[Any]] = {}


@pytest.fixture
def run_examples(tmp_path_factory: pytest.TempPathFactory):
    """The documents a kind's example commands write (stdout, and files in the folder they
    run in or the cache folder), run once per session for each sequence of examples."""

    def run(examples: tuple[tuple[str, ...], ...]) -> list[Any]:
        if examples not in _RUNS:
            folder = tmp_path_factory.mktemp("examples")
            texts = []
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("XDG_CACHE_HOME", str(folder / "cache"))
                mp.chdir(folder)
                for argv in examples:
                    result = CliRunner().invoke(app, list(argv))
                    assert result.exit_code == 0, (argv, result.output)
                    texts.append(result.stdout)
            texts += [p.read_text() for p in sorted(folder.rglob("*.json"))]
            _RUNS[examples] = [json.loads(t) for t in texts if t.lstrip().startswith("{")]
        return _RUNS[examples]

    return run


@pytest.mark.parametrize("kind", [_slow_if_measured(k) for k in KINDS])
def test_examples_write_documents_that_follow_the_schema(kind: DocumentKind,
                                                         run_examples: Any) -> None:
    docs = [d for d in run_examples(kind.examples) if d.get("schema") == kind.id]
    assert docs, f"{kind.name}: its examples wrote no {kind.id} document"
    schema = kind.schema()
    for doc in docs:
        assert captured.document_problems(doc, kind.name) == []
        validate(doc, schema)  # cnncost's own validator agrees


def test_the_kinds_are_listed_and_an_unknown_kind_is_one_line() -> None:
    listed = CliRunner().invoke(app, ["schema"])
    assert listed.exit_code == 0, listed.output
    assert [line.split()[:2] for line in listed.stdout.splitlines()] == [
        [k.name, k.id] for k in KINDS]
    bad = CliRunner().invoke(app, ["schema", "reports"])
    assert bad.exit_code == 2
    assert bad.stderr.strip().splitlines() == [
        "error: unknown document kind 'reports'; known: " + ", ".join(DOCUMENTS)]


# --------------------------------------------------------------------------- the report's schema


def _full_table() -> CostTable:
    """lenet5's training step with every key a report can hold: frozen parameters, a
    receptive field that is not square and a forward counted on the CPU, which only some
    models have."""
    from cnncost import analyze

    table = analyze("lenet5", mode="train")
    first = replace(table.layers[0], frozen_params=6, receptive_field_axes=(5, 3))
    return replace(table, layers=(first, *table.layers[1:]),
                   totals=replace(table.totals, frozen_params=6), counted_on="cpu",
                   counted_on_reason="aten::nonzero needs real values", description="x")


def test_the_report_schema_declares_exactly_what_reports_hold() -> None:
    from cnncost.render.cost import to_json

    doc = json.loads(to_json(_full_table(), depth=1))  # with the --depth blocks
    schema = report_schema()
    Draft202012Validator(schema).validate(doc)
    validate(doc, schema)
    assert set(schema["properties"]) == set(doc)
    for name, part in (("layer", doc["layers"][0]), ("totals", doc["totals"]),
                       ("block", doc["blocks"][0])):
        assert set(schema["$defs"][name]["properties"]) == set(part), name
    assert CostTable.from_dict(doc) == _full_table()


def test_a_field_declared_once_is_in_the_schema_and_compared() -> None:
    """What a new report field costs: its line in the dataclass. Its annotation gives its
    type, a default makes it optional, TEXT keeps check from comparing it, and a type the
    schema cannot say is refused when the schema is built (not silently left out)."""
    from dataclasses import dataclass, field

    from cnncost.schema import drift_fields, object_schema
    from cnncost.table import TEXT

    @dataclass(frozen=True)
    class Row:
        name: str = field(metadata=TEXT)
        macs: int
        latency_ms: float | None = None

    node = object_schema(Row)
    assert node["required"] == ["name", "macs"]
    assert node["properties"]["latency_ms"] == {"type": ["number", "null"]}
    assert node["additionalProperties"] is False
    assert drift_fields(Row) == ("macs", "latency_ms")

    @dataclass(frozen=True)
    class Odd:
        when: complex

    with pytest.raises(TypeError, match=r"Odd.when: no schema for 'complex'"):
        object_schema(Odd)


def test_a_training_steps_totals_must_hold_the_steps_figures() -> None:
    doc = copy.deepcopy(REPORT)
    doc["mode"] = "train"  # an inference report relabelled: no backward figures
    with pytest.raises(SchemaError, match=r"^totals.forward_macs: expected this field, "
                       r"found nothing$"):
        validate(doc, report_schema())
    assert not Draft202012Validator(report_schema()).is_valid(doc)


@pytest.mark.parametrize("path,value,message", [
    ("layers.2.macs", -1, "layers[2].macs: expected a whole number >= 0, found -1"),
    ("input.0", 0, "input[0]: expected a whole number >= 1, found 0"),
    ("policy", "most", "policy: expected all or conv+linear, found 'most'"),
    ("layers.0.colour", 1, "layers[0]: expected only the fields name, kind, "),
    ("totals.training_memory_bytes.adam", "big",
     "totals.training_memory_bytes.adam: expected a whole number >= 0, found 'big'"),
])
def test_validation_errors_are_located(path: str, value: Any, message: str) -> None:
    doc = copy.deepcopy(REPORT)
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    with pytest.raises(SchemaError) as err:
        validate(doc, report_schema())
    assert str(err.value).startswith(message)


# Values a mutation puts anywhere in a report: each breaks some field's type or range.
_VALUES = st.sampled_from([-1, 0, 3, 2.5, "x", "", None, True, [], [1, "a"], {}, {"k": -2},
                           [[1, 2]], 10**25])


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(REPORT)
    node: Any = doc
    while True:  # walk down to a random place
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        if not isinstance(node[key], dict | list) or draw(st.booleans()):
            action = draw(st.sampled_from(["set", "delete", "add"]))
            if action == "set":
                node[key] = draw(_VALUES)
            elif action == "delete" and isinstance(node, dict):
                del node[key]
            elif isinstance(node, dict):
                node["extra_" + str(key)] = draw(_VALUES)
            break
        node = node[key]
    return doc


@pytest.mark.slow  # oracle: jsonschema, on 300 drawn documents
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=mutated())
def test_cnncost_validator_agrees_with_jsonschema(doc: Any) -> None:
    assert is_valid(doc, report_schema()) == Draft202012Validator(report_schema()).is_valid(doc)
