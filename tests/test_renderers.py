"""One renderer per result, answering every output format.

Every module of cnncost.render with a ``render_text`` is a result's renderer; each renders a
small real result here in every format its ``fmt`` parameter offers (a JSON document with its
schema, an HTML page, CSV and Markdown text) and as the rich renderable the terminal prints.
A new renderer without a sample below fails ``test_every_renderer_has_a_sample``; a new
``Format`` member is rendered by every renderer (or refused with a UsageError that says so)
without editing this file.
"""

from __future__ import annotations

import ast
import csv
import importlib
import io
import json
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from small_spec import small

from cnncost.errors import UsageError

RENDER = Path(__file__).resolve().parents[1] / "cnncost" / "render"
RENDERERS = sorted(
    p.stem for p in RENDER.glob("*.py")
    if any(isinstance(n, ast.FunctionDef) and n.name == "render_text"
           for n in ast.parse(p.read_text(encoding="utf-8")).body))


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("renderers") / "small.yaml"
    path.write_text(small("name: small"))
    return path


@pytest.fixture(scope="module")
def quick_roofline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A quick roofline calibration in a cache of this module's own (bench needs one)."""
    import torch

    from cnncost.measure.roofline import get_roofline

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))
        get_roofline(torch.device("cpu"), torch.float32, 1, quick=True)
        yield


def _cost(spec: Path) -> Any:
    from cnncost.api import analyze_target

    return analyze_target(spec)


def _compare(spec: Path) -> Any:
    from cnncost.api import compare_targets

    return compare_targets([str(spec), str(spec)], overrides={"width": 8})


def _sweep(spec: Path) -> Any:
    from cnncost.sweep import run_sweep

    return run_sweep(str(spec), ["width=2,4,8"], batch="1,2")


def _advice(spec: Path) -> Any:
    from cnncost.api import advise_target

    return advise_target(spec, min_saving=0.0)


def _bench_options(per_layer: bool = True) -> Any:
    from cnncost.measure.bench import BenchOptions
    from cnncost.measure.timing import Budget

    return BenchOptions(device="cpu", threads=1, per_layer=per_layer,
                        budget=Budget(min_samples=3, min_time=0.0, max_time=0.05,
                                      warmup_time=0.0))


def _bench(spec: Path) -> Any:
    from cnncost.measure.bench import bench

    return bench(spec, (1,), _bench_options())


def _bench_train(spec: Path) -> Any:
    from cnncost.measure.bench_train import bench_train

    return bench_train(spec, (1,), _bench_options(per_layer=False))


def _predict(spec: Path) -> Any:
    from calibrations import fitted, hand_calibration

    from cnncost.predict.features import class_names
    from cnncost.predict.model import predict_table

    calibration = hand_calibration(
        "cpu:Test CPU|float32|threads=1|torch=2.0",
        classes={n: fitted([2e-6, 1e-11, 1e-10]) for n in class_names()})
    return predict_table(_cost(spec), calibration)


# renderer module -> a small result of its kind (and whether it needs a roofline)
SAMPLES: dict[str, tuple[Callable[[Path], Any], bool]] = {
    "cost": (_cost, False), "compare": (_compare, False), "sweep": (_sweep, False),
    "advice": (_advice, False), "bench": (_bench, True), "bench_train": (_bench_train, True),
    "predict": (_predict, False),
}
# What each renderer's terminal renderable is called, and the options it takes.
RICH = {"cost": ("rich_table", {}), "compare": ("compare_rich", {}), "sweep": ("rich_sweep", {}),
        "advice": ("advice_rich", {}), "bench": ("rich_report", {"top": 2}),
        "bench_train": ("rich_report", {"top": 2}), "predict": ("rich_prediction", {"top": 2})}


def test_every_renderer_has_a_sample() -> None:
    assert {"cost", "compare", "sweep", "advice", "bench"} <= set(RENDERERS)
    assert set(RENDERERS) == set(SAMPLES) == set(RICH), (
        f"renderers {RENDERERS}; samples {sorted(SAMPLES)}: give a new renderer a sample")


def _formats(module: Any) -> list[Enum]:
    """The members of the enum ``render_text``'s ``fmt`` parameter takes, but TABLE."""
    annotation = module.render_text.__annotations__["fmt"]  # "Format", "AdviceFormat"
    enum = getattr(module, annotation) if isinstance(annotation, str) else annotation
    return [f for f in enum if f.value != "table"]


CASES = [(name, fmt.value) for name in RENDERERS
         for fmt in _formats(importlib.import_module(f"cnncost.render.{name}"))]


def _check(fmt: str, text: str) -> None:
    assert text.strip()
    if fmt == "json":
        doc = json.loads(text)
        assert isinstance(doc, dict) and doc.get("schema", "").startswith("cnncost."), doc
    elif fmt == "html":
        assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert len(rows) >= 2 and len({len(r) for r in rows[1:2]}) == 1
    elif fmt == "md":
        assert "|" in text


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    """Each renderer's sample, made once for the module."""
    return {}


def _result(name: str, spec_path: Path, results: dict[str, Any],
            request: pytest.FixtureRequest) -> Any:
    if name not in results:
        make, roofline = SAMPLES[name]
        if roofline:
            request.getfixturevalue("quick_roofline")
        results[name] = make(spec_path)
    return results[name]


def _marked(name: str, *values: str) -> Any:
    """A case; slow where its sample is measured (bench needs a roofline and timing)."""
    marks = [pytest.mark.slow] if SAMPLES.get(name, (None, False))[1] else []
    return pytest.param(name, *values, marks=marks, id="-".join((name, *values)))


@pytest.mark.parametrize(("name", "fmt"), [_marked(n, f) for n, f in CASES])
def test_every_renderer_answers_every_format(name: str, fmt: str, spec_path: Path,
                                             results: dict[str, Any],
                                             request: pytest.FixtureRequest) -> None:
    module = importlib.import_module(f"cnncost.render.{name}")
    result = _result(name, spec_path, results, request)
    member = next(f for f in _formats(module) if f.value == fmt)
    try:
        text = module.render_text(result, member)
    except UsageError as exc:  # a format this result has no rendering in: said so
        assert fmt in str(exc)
        return
    _check(fmt, text)


@pytest.mark.parametrize("name", [_marked(n) for n in RENDERERS])
def test_every_renderer_draws_its_result_for_the_terminal(
        name: str, spec_path: Path, results: dict[str, Any],
        request: pytest.FixtureRequest) -> None:
    from cnncost.render.terminal import to_text

    module = importlib.import_module(f"cnncost.render.{name}")
    function, options = RICH[name]
    text = to_text(getattr(module, function)(_result(name, spec_path, results, request),
                                             **options), width=120)
    assert text.strip()


def test_text_as_makes_the_asked_format_only() -> None:
    from cnncost.render.formats import Format, text_as

    made: list[str] = []

    def maker(fmt: str) -> Any:
        return lambda: made.append(fmt) or fmt

    assert text_as(Format.MD, json=maker("json"), md=maker("md")) == "md"
    assert made == ["md"]  # the other formats are not made
    for fmt in (Format.TABLE, Format.CSV):  # the terminal's, and one this result lacks
        with pytest.raises(ValueError, match="is not a text format"):
            text_as(fmt, json=maker("json"), md=maker("md"))
    assert made == ["md"]
