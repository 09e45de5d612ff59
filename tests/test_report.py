"""cnncost.render and cnncost.compare: renderings of cost tables and the model comparison
(pure Python, no counting).

Tables are built by hand here, so every figure below is chosen, not computed by cnncost.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cnncost import fmt
from cnncost.compare import COMPARE_SCHEMA, Column, compare_tables
from cnncost.fmt import ratio
from cnncost.render import compare, cost
from cnncost.render.compare import compare_rich
from cnncost.render.cost import rich_table
from cnncost.render.formats import Format
from cnncost.render.terminal import natural_width, to_text
from cnncost.table import SCHEMA, CostRow, CostTable, Totals, dumps, table_rows

GOLDEN = Path(__file__).parent / "golden"


def make_table(model: str, rows: list[tuple[str, int, int, int]], *, input_=(1, 3, 8, 8),
               peak: int = 1000) -> CostTable:
    """A table from (name, params, macs, output_bytes) rows; FLOPs = 2 x MACs."""
    layers = tuple(CostRow(name, "conv", ((1, 3, 8, 8),), (1, 4, 8, 8), params=p, macs=m,
                           flops=2 * m, output_bytes=b) for name, p, m, b in rows)
    totals = Totals(params=sum(r[1] for r in rows), buffers=0, macs=sum(r[2] for r in rows),
                    flops=2 * sum(r[2] for r in rows), activation_bytes=sum(r[3] for r in rows),
                    param_bytes=0, buffer_bytes=0, input_bytes=0, peak_activation_bytes=0,
                    peak_memory_bytes=peak, training_memory_bytes={"adam": 0})
    return CostTable(model, f"specs/{model}.yaml", input_, "float32", "conv+linear",
                     ("1 MAC = 1 multiply + 1 add",), layers, totals)


A = make_table("a", [("stem.conv1", 100, 1000, 64), ("head.fc", 50, 500, 16)], peak=400)
B = make_table("b", [("stem.conv1", 300, 4000, 128)], peak=100)


def test_compare_ratios_against_first_model() -> None:
    cmp = compare_tables([A, B])
    # a: params 100 + 50 = 150, MACs 1000 + 500 = 1500, activations 64 + 16 = 80, peak 400
    # b: params 300, MACs 4000, activations 128, peak 100
    assert cmp.ratio(0, "params") == 1.0
    assert cmp.ratio(1, "params") == 300 / 150
    assert cmp.ratio(1, "macs") == 4000 / 1500
    assert cmp.ratio(1, "flops") == 8000 / 3000
    assert cmp.ratio(1, "activation_bytes") == 128 / 80
    assert cmp.ratio(1, "peak_memory_bytes") == 100 / 400


def test_compare_json_document() -> None:
    doc = json.loads(compare.render_text(compare_tables([A, B]), Format.JSON))
    assert doc["schema"] == COMPARE_SCHEMA
    assert doc["baseline"] == "a"
    assert [m["model"] for m in doc["models"]] == ["a", "b"]
    assert doc["models"][1]["params"] == 300
    assert doc["models"][1]["ratios"]["params"] == 2.0
    assert doc["models"][1]["ratios"]["peak_memory_bytes"] == 0.25
    assert [c["key"] for c in doc["columns"]] == [
        "params", "macs", "flops", "activation_bytes", "peak_memory_bytes"]


def test_compare_zero_baseline_gives_no_ratio() -> None:
    zero = make_table("z", [("x", 0, 0, 0)])
    cmp = compare_tables([zero, A])
    assert cmp.ratio(1, "macs") is None
    assert "-" in compare.render_text(cmp, Format.MD)


def test_compare_with_column_is_the_bench_extension_point() -> None:
    cmp = compare_tables([A, B]).with_column(Column("latency_ms", "latency", "ms"), [2.0, 5.0])
    assert cmp.ratio(1, "latency_ms") == 2.5
    rows = list(csv.DictReader(io.StringIO(compare.render_text(cmp, Format.CSV))))
    assert rows[1]["latency_ms"] == "5.0"
    assert rows[1]["latency_ms_ratio"] == "2.5"
    with pytest.raises(ValueError, match="2 models"):
        compare_tables([A, B]).with_column(Column("x", "x", "ms"), [1.0])


def test_compare_csv_and_markdown_hold_exact_values() -> None:
    cmp = compare_tables([A, B])
    rows = list(csv.DictReader(io.StringIO(compare.render_text(cmp, Format.CSV))))
    assert rows[0]["macs"] == "1500" and rows[1]["macs"] == "4000"
    assert rows[1]["macs_ratio"] == f"{4000 / 1500:.6g}"
    md = compare.render_text(cmp, Format.MD)
    assert "| `b` | 1x3x8x8 | 300 (2.00x) | 4,000 (2.67x) |" in md


@pytest.mark.parametrize(("value", "text"), [(None, "-"), (0.0123, "0.0123x"), (1.0, "1.00x"),
                                             (0.9996, "1.00x"),
                                             (0.9994, "0.999x"), (4.051, "4.05x"),
                                             (1234.5, "1234x")],
                         ids=["none", "small", "one", "just-under-one", "under-one", "mid",
                              "large"])
def test_ratio_text(value: float | None, text: str) -> None:
    assert ratio(value) == text


def test_json_is_deterministic_and_round_trips() -> None:
    text = A.to_json()
    assert text == A.to_json()
    doc = json.loads(text)
    assert doc["schema"] == SCHEMA
    assert doc["input"] == [1, 3, 8, 8]
    assert '"input": [1, 3, 8, 8],' in text  # lists of numbers on one line
    assert CostTable.from_json(text) == A


def test_dumps_matches_json() -> None:
    doc = {"a": [1, [2, 3]], "b": {"c": ["x", "y"], "d": {}}, "e": [], "f": None, "g": 1.5}
    assert json.loads(dumps(doc)) == doc


def test_depth_blocks_sum_layers() -> None:
    t = make_table("m", [("s1.a", 1, 10, 4), ("s1.b", 2, 20, 4), ("s2.a", 4, 40, 8)])
    blocks = table_rows(t, depth=1)
    assert [(b.name, b.params, b.macs) for b in blocks] == [("s1", 3, 30), ("s2", 4, 40)]
    doc = json.loads(cost.render_text(t, Format.JSON, depth=1))
    assert len(doc["layers"]) == 3  # json keeps every layer; blocks come apart
    assert [b["macs"] for b in doc["blocks"]] == [30, 40]


def test_sort_and_top_in_csv_and_markdown() -> None:
    t = make_table("m", [("small", 1, 10, 4), ("big", 2, 30, 4), ("mid", 4, 20, 8)])
    rows = list(csv.DictReader(io.StringIO(cost.render_text(t, Format.CSV, sort="macs", top=2))))
    assert [r["name"] for r in rows] == ["big", "mid"]
    md = cost.render_text(t, Format.MD, sort="params", top=1)
    assert "| `mid` |" in md and "| `big` |" not in md
    assert "Showing 1 of 3 rows" in md
    assert "| **total** | | | **7** | **60** |" in md  # the total stays the model's


def test_long_names_fold_instead_of_truncating() -> None:
    name = "features.stage4.block3.squeeze_excite.fc_reduce.conv"
    t = make_table("m", [(name, 1, 10, 4)])
    text = to_text(rich_table(t), width=80)
    assert "…" not in text
    all_lines = text.splitlines()
    rules = [i for i, ln in enumerate(all_lines) if "━" in ln]
    lines = all_lines[rules[0] + 1:rules[1]]  # the rows, between header and footer rules
    assert len(lines) > 1  # it did fold
    assert "".join(ln.split()[0] for ln in lines) == name
    assert name in to_text(rich_table(t))  # natural width: on one line
    assert natural_width(rich_table(t)) > len(name)


def test_golden_compare_table(update_golden: bool) -> None:
    text = to_text(compare_rich(compare_tables([A, B])), width=120)
    path = GOLDEN / "compare_a_b.txt"
    if update_golden:
        path.write_text(text)
    assert text == path.read_text(), "rendering changed; review, then pytest --update-golden"


# --------------------------------------------------------------------------- fmt


@pytest.mark.parametrize(("fn", "value", "text"), [
    (fmt.shape, (1, 3, 224, 224), "1x3x224x224"),
    (fmt.human, 999, "999"),
    (fmt.human, 1000, "1K"),
    (fmt.human, 1_234_567, "1.23M"),  # three significant digits
    (fmt.human, 4_089_184_256, "4.09G"),
    (fmt.human_bytes, 512, "512 B"),
    (fmt.human_bytes, 1536, "1.5 KiB"),  # 1536 / 1024
    (fmt.human_bytes, 3 << 30, "3 GiB"),
    (fmt.human_bytes, 1 << 40, "1 TiB"),
    (fmt.human_bytes, 1003 << 20, "1003 MiB"),  # not 1e+03 MiB
    (fmt.slides_int, 2160, "2160"),
    (fmt.slides_int, 10_000, "10,000"),
    (fmt.slides_int, 6_710_886_400, "6,710,886,400"),
    (fmt.ms, 0.0123, "12.300"),
    (fmt.ms, 2e-6, "0.002"),  # 0.002 ms: below 0.01 ms, two significant digits
    (fmt.ms, None, ""),
    (fmt.percent, 0.256, "26%"),
    (fmt.percent, 0.004, "0.4%"),
    (fmt.percent, 0.0, "0%"),
], ids=lambda v: getattr(v, "__name__", None))
def test_fmt(fn: Callable[[Any], str], value: Any, text: str) -> None:
    assert fn(value) == text


# --------------------------------------------------------------------------- committed reports

REPORTS = Path(__file__).resolve().parent.parent / "reports"


@pytest.mark.parametrize("path", sorted(REPORTS.rglob("*.json")),
                         ids=lambda p: str(p.relative_to(REPORTS)))
def test_committed_report_is_what_report_writes_today(path: Path) -> None:
    """`check` compares counts; this compares bytes: a committed report (and its Markdown) is
    exactly what `cnncost report` writes now, so a spec edit that moves its layers' source
    lines, or any change of the document, shows here and is regenerated on purpose."""
    from cnncost.api import recheck
    from cnncost.check import load_report
    from cnncost.render.cost import to_markdown

    (checked,) = recheck([(path, load_report(path))])
    assert checked.current is not None, checked.error
    assert checked.current.to_json() == path.read_text(encoding="utf-8")
    assert to_markdown(checked.current) == path.with_suffix(".md").read_text(encoding="utf-8")
