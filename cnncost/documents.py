"""Every kind of JSON document cnncost writes, with its JSON Schema (draft 2020-12): the one
place to add a kind (pure Python, no torch).

A document names its kind in its first key, ``"schema": "cnncost.KIND/VERSION"``. Each kind
is one ``DOCUMENTS`` entry: its name (what ``cnncost schema NAME`` takes), that id, a line
saying what writes it, and its schema. The report's schema is built from the dataclasses
that write it (``cnncost.table.report_schema``); the others are declared below, closed
(``additionalProperties: false``) so a key a writer adds without declaring it fails the
tests, which validate every document the suite writes against its kind's schema. To add a
kind: one entry in ``_KINDS`` with a function returning its schema (declared here, or built
from its dataclasses in a module this one may import: ``table``, ``schema``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cnncost import table
from cnncost.count.conventions import OPTIMIZERS
from cnncost.review import ADDED, CHANGED, REMOVED, STATUSES
from cnncost.schema import document_schema, ref


@dataclass(frozen=True)
class DocumentKind:
    """A kind of document: ``name`` (``cnncost schema NAME``), its ``"schema"`` id, what
    writes it (``--format json`` of a command, unless said), its JSON Schema, and command
    lines that write one (to stdout, or a file in the cache folder) for the tests, which run
    each and validate what it wrote."""

    name: str
    id: str
    summary: str
    build: Callable[[], dict[str, Any]]
    examples: tuple[tuple[str, ...], ...]

    def schema(self) -> dict[str, Any]:
        """Its JSON Schema (a fresh copy)."""
        return self.build()


# --------------------------------------------------------------------------- building blocks

STR = {"type": "string"}
BOOL = {"type": "boolean"}
NUMBER = {"type": "number"}
COUNT = ref("count")
# A measured or derived figure: JSON has no Infinity/NaN, so a figure that is not finite (a
# time too short to divide by) is written as null.
FIGURE = {"type": ["number", "null"]}
TEXT_OR_NULL = {"type": ["string", "null"]}
SHAPE = ref("shape")
VARS = {"type": "object", "additionalProperties": {"$ref": "#/$defs/set_value"}}
SET_VALUE = {"type": ["string", "number", "boolean", "array"],
             "items": {"type": ["string", "number", "boolean"]},
             "title": "a number, bool, string or list of them"}
DTYPE = {"enum": list(table.DTYPE_BYTES)}
POLICY = {"enum": [p.value for p in table.Policy]}
TRAIN = {"const": table.Mode.TRAIN.value}  # "mode" is written only for a training step


def obj(optional: tuple[str, ...] = (), extra: Any = False, **props: Any) -> dict[str, Any]:
    """A closed object: every property required but the ``optional`` ones; ``extra`` is the
    schema of keys not named (False: none allowed)."""
    out: dict[str, Any] = {"type": "object",
                           "required": [k for k in props if k not in optional],
                           "properties": props}
    if extra is not True:
        out["additionalProperties"] = extra
    return out


def _counts(keys: Iterable[str]) -> dict[str, Any]:
    return dict.fromkeys(keys, COUNT)


def array(items: Any) -> dict[str, Any]:
    return {"type": "array", "items": items}


def nullable(node: Mapping[str, Any]) -> dict[str, Any]:
    return {"anyOf": [dict(node), {"type": "null"}]}


def whole(kind: str, title: str, root: dict[str, Any], **defs: Any) -> dict[str, Any]:
    """A kind's whole schema: its root object and ``$defs`` (cnncost.schema.DEFS and these)."""
    return document_schema(kind, title, root, {"set_value": SET_VALUE, **defs})


# --------------------------------------------------------------------------- the kinds


def compare_schema() -> dict[str, Any]:
    """``cnncost compare --format json`` (cnncost.compare.Comparison.to_dict)."""
    column = obj(key=STR, label=STR, unit={"enum": ["count", "bytes", "ms"]})
    # Each column's value is a key of the model; columns differ (bench adds latency_ms).
    model = obj(optional=("mode",), extra=FIGURE, model=STR, source=STR, input=SHAPE,
                dtype=DTYPE, policy=POLICY, mode=TRAIN, vars=VARS,
                ratios={"type": "object", "additionalProperties": FIGURE})
    root = obj(schema={"const": "cnncost.compare/1"}, baseline=TEXT_OR_NULL,
               columns=array(column), models=array(model))
    return whole("compare/1", "a cnncost.compare/1 document: models side by side", root)


def sweep_schema() -> dict[str, Any]:
    """``cnncost sweep --format json`` (cnncost.render.sweep.to_dict)."""
    value = {"type": ["number", "boolean"]}
    axis = obj(vars=array(STR), values=array(array(value)))
    # Each metric is a key of the point (count or null where the point failed).
    point = obj(optional=("latency_ms",), extra=nullable(COUNT), index=COUNT, ok=BOOL,
                vars={"type": "object", "additionalProperties": value},
                latency_ms=FIGURE,  # --latency: predicted (cnncost predict)
                ratios={"type": "object", "additionalProperties": FIGURE},
                error=TEXT_OR_NULL)
    exponent = obj(var=STR, metric=STR, exponent=FIGURE, r2=FIGURE, points=COUNT,
                   groups=COUNT, moves_with=array(STR))
    root = obj(optional=("mode",), schema={"const": "cnncost.sweep/1"}, model=STR, source=STR,
               dtype=DTYPE, policy=POLICY, mode=TRAIN, engine=TEXT_OR_NULL,
               input=nullable(SHAPE), set={"type": "object", "additionalProperties": STR},
               axes=array(axis), baseline=nullable(COUNT), points=array(point),
               exponents=array(exponent), failed=COUNT)
    return whole("sweep/1", "a cnncost.sweep/1 document: cost over a grid of variables", root)


def advice_schema() -> dict[str, Any]:
    """``cnncost advise --format json`` (cnncost.advise.engine.Advice.to_dict)."""
    change = obj(before=COUNT, after=COUNT, ratio=FIGURE)
    changes = {"type": "object", "additionalProperties": ref("change")}
    # The model's receptive field and the one right after the rewritten layers, apart.
    receptive = obj(model=ref("change"), layers=ref("change"), layers_at=STR)
    finding = obj(optional=("latency_ms",), rule=STR, goal=STR, guideline=STR, lecture=STR,
                  layers=array(STR), source=STR, shared=TEXT_OR_NULL, found=STR, rewrite=STR,
                  expected=TEXT_OR_NULL, changes_function=BOOL, note=STR, saving=NUMBER,
                  effect=changes, layer_effect=changes, receptive_field=receptive,
                  # --latency: the model's predicted milliseconds before and after
                  latency_ms=obj(before=NUMBER, after=NUMBER, ratio=FIGURE),
                  spec_file=STR)
    rule = obj(name=STR, goal=STR, guideline=STR, threshold=STR)
    root = obj(schema={"const": "cnncost.advice/2"}, model=STR, source=STR, input=SHAPE,
               vars=VARS, min_saving=NUMBER,
               totals={"type": "object", "additionalProperties": COUNT},
               rules=array(rule), findings=array(finding))
    return whole("advice/2", "a cnncost.advice/2 document: the design guidelines, priced",
                 root, change=change)


TIMING = obj(median_s=NUMBER, q1_s=NUMBER, q3_s=NUMBER, iqr_s=NUMBER, rel_iqr=FIGURE,
             mean_s=NUMBER, min_s=NUMBER, samples=COUNT, number=COUNT, warmup=COUNT,
             stable=BOOL, cpu_median_s=FIGURE, samples_s=array(NUMBER),
             cpu_samples_s=array(NUMBER))
ROOFLINE: dict[str, Any] = dict(key=STR, device=STR, device_name=STR, dtype=STR, threads=COUNT,
                peak_flops=NUMBER, bandwidth=NUMBER, matmul_n=COUNT, copy_bytes=COUNT,
                torch_version=STR, measured_at=STR, load_avg=FIGURE)


# The calibration a prediction used (cnncost predict; bench --predict).
CALIBRATION = obj(key=STR, device=STR, device_name=STR, threads=COUNT, torch=STR,
                  measured_at=STR, load_avg=FIGURE, samples=COUNT, path=STR)


def _bench(kind: str, title: str, own: Mapping[str, Any], run: Mapping[str, Any],
           **defs: Any) -> dict[str, Any]:
    """A benchmark's document (cnncost.measure.bench.bench_document): the model, the
    machine's settings, ``own``, torch's version, the roofline, notes and ``run``s; with
    ``bench --predict`` the calibration its predictions used (cnncost.predict.versus); with
    ``--runtime onnxruntime`` ONNX Runtime's version (cnncost.measure.ort)."""
    root = obj(optional=("calibration", "onnxruntime"), schema={"const": f"cnncost.{kind}"},
               model=STR, source=STR, device=STR, device_name=STR, dtype=DTYPE, threads=COUNT,
               channels_last=BOOL, **own, torch=STR,
               onnxruntime=STR,  # its version, where runs are on ONNX Runtime
               roofline=obj(**ROOFLINE, ridge=NUMBER, from_cache=BOOL), notes=array(STR),
               runs=array(run), calibration=CALIBRATION)
    return whole(kind, title, root, timing=TIMING, **defs)


def bench_schema() -> dict[str, Any]:
    """``cnncost bench --format json`` (cnncost.measure.bench.BenchReport.to_dict)."""
    layer = obj(optional=("predicted_ms",), name=STR, kind=STR, macs=COUNT, flops=COUNT,
                bytes=COUNT, intensity=FIGURE, bound={"enum": ["compute", "memory"]},
                predicted_s=NUMBER, measured_s=FIGURE, measured_cpu_s=FIGURE,
                efficiency=FIGURE, predicted_ms=FIGURE)  # predicted_ms: bench --predict
    memory = obj(param_bytes=COUNT, input_bytes=COUNT, peak_activation_bytes=COUNT,
                 workspace_bytes=COUNT, required_bytes=COUNT, free_bytes=nullable(COUNT),
                 limit=TEXT_OR_NULL)
    predicted = obj(latency_ms=NUMBER, uncertainty=NUMBER, ratio=FIGURE,
                    layers_outside_range=COUNT)  # bench --predict
    run = obj(optional=("predicted",), runtime={"enum": ["torch", "onnxruntime"]},
              batch=COUNT, input=SHAPE, macs=COUNT, flops=COUNT,
              bytes=COUNT, predicted=predicted, timing=ref("timing"), latency_ms=NUMBER,
              iqr_ms=NUMBER, images_per_s=FIGURE,
              achieved_gflops=FIGURE, predicted_s=NUMBER, compute_only_s=NUMBER,
              memory=memory, cuda_peak_bytes=nullable(COUNT), layer_sum_s=FIGURE,
              layer_cpu_sum_s=FIGURE, layer_pass=nullable(ref("timing")),
              layer_whole=nullable(ref("timing")), layers=array(layer))
    return _bench("bench/1", "a cnncost.bench/1 document: measured inference runs",
                  {"compile": BOOL}, run)


def bench_train_schema() -> dict[str, Any]:
    """``cnncost bench --train --format json`` (TrainBenchReport.to_dict)."""
    optimizer = {"enum": list(OPTIMIZERS)}
    run = obj(batch=COUNT, input=SHAPE, optimizer=optimizer, macs=COUNT, step_flops=COUNT,
              timing=ref("timing"), step_ms=NUMBER, images_per_s=FIGURE,
              achieved_gflops=FIGURE, compute_only_s=NUMBER, estimated_peak_bytes=COUNT,
              measured_peak_bytes=nullable(COUNT), memory_ratio=FIGURE)
    return _bench("bench-train/1", "a cnncost.bench-train/1 document: measured training "
                  "steps", {"optimizer": optimizer, "peak_method": STR}, run)


def roofline_schema() -> dict[str, Any]:
    """The roofline cache (``roofline.json`` in the cache folder; cnncost.measure.roofline)."""
    root = obj(schema={"const": "cnncost.roofline/1"},
               entries={"type": "object", "additionalProperties": obj(**ROOFLINE)})
    return whole("roofline/1", "a cnncost.roofline/1 document: the machine's measured roofs "
                 "(a cache)", root)


def _review(command: str, where: Mapping[str, Any], title: str) -> dict[str, Any]:
    """``check``'s and ``diff``'s document (cnncost.review.Review.to_dict)."""
    any_value: dict[str, Any] = {}  # a figure, a shape, a list of shapes, present/missing
    change = obj(field=STR, old=any_value, new=any_value, change=FIGURE, ratio=FIGURE)
    changes = array(ref("change"))
    layer = obj(name=STR, status={"enum": [ADDED, CHANGED, REMOVED]}, changes=changes)
    breach = obj(field=STR, ceiling=NUMBER, ceiling_text=STR, value=NUMBER, over=NUMBER,
                 ratio=FIGURE, where=STR)
    model = obj(path=STR, model=STR, source=STR, status={"enum": list(STATUSES)},
                differences=COUNT, updated=BOOL,
                figures={"type": "object", "additionalProperties": obj(old=any_value,
                                                                       new=any_value)},
                recipe=changes, totals=changes, layers=array(layer), budget=array(breach),
                error=TEXT_OR_NULL)
    root = obj(schema={"const": f"cnncost.{command}/1"}, command={"const": command}, **where,
               tolerance=NUMBER, budgets=TEXT_OR_NULL, updated=BOOL,
               status={"enum": ["ok", "drift", "over_budget", "error"]},
               exit_code={"enum": [0, 1, 2]},
               summary=obj(reports=COUNT, **_counts(STATUSES)),
               unreported=array(STR), models=array(model))
    return whole(f"{command}/1", f"a cnncost.{command}/1 document: {title}", root,
                 change=change)


def check_schema() -> dict[str, Any]:
    """``cnncost check --format json``."""
    return _review("check", {"reports": STR}, "committed reports against a recount")


def diff_schema() -> dict[str, Any]:
    """``cnncost diff --format json``."""
    return _review("diff", {"base": STR, "head": STR}, "two folders (or files) of reports")


def predict_schema() -> dict[str, Any]:
    """``cnncost predict --format json`` (cnncost.predict.model.Prediction.to_dict)."""
    totals = obj(latency_ms=NUMBER, layers_ms=NUMBER, overhead_ms=NUMBER, uncertainty=NUMBER,
                 images_per_s=FIGURE, macs=COUNT, layers_outside_range=COUNT)
    layer = obj(name=STR, kind=STR, op_class=STR, latency_ms=NUMBER, share=FIGURE,
                uncertainty=NUMBER, in_range=BOOL, note=STR)
    root = obj(schema={"const": "cnncost.predict/1"}, model=STR, source=STR, input=SHAPE,
               dtype=DTYPE, calibration=CALIBRATION, totals=totals, layers=array(layer))
    return whole("predict/1", "a cnncost.predict/1 document: predicted latency per layer",
                 root)


def calibration_schema() -> dict[str, Any]:
    """A calibration (``cnncost calibrate``'s cache file; cnncost.predict.calibration), whose
    fitted predictors ``cnncost.predict.calibration.load`` checks number by number."""
    error = obj(median=FIGURE, p90=FIGURE, rms=FIGURE)
    fitted = obj(optional=("baseline_error",), extra=True, baseline=array(NUMBER),
                 trees={}, method=STR, samples=COUNT, ranges=array(array(NUMBER)),
                 error=error, baseline_error=error)
    # What a layer costs inside a whole model beyond its isolated prediction (random networks)
    context = obj(scale=NUMBER, per_layer_s=NUMBER, networks=array(array(NUMBER)),
                  error=nullable(error), isolated_error=nullable(error))
    root = obj(schema={"const": "cnncost.calibration/3"}, key=STR, device=STR,
               device_name=STR, dtype=DTYPE, threads=COUNT, torch_version=STR,
               measured_at=STR, budget_s=NUMBER, elapsed_s=NUMBER, load_avg=FIGURE,
               load_avg_after=FIGURE, trees=TEXT_OR_NULL, overhead_s=NUMBER,
               features=array(STR), context=context,
               classes={"type": "object", "additionalProperties": fitted},
               samples={"type": "object", "additionalProperties": array(array(NUMBER))})
    return whole("calibration/3", "a cnncost.calibration/3 document: a machine's latency "
                 "predictors (cnncost calibrate's cache)", root)


_JSON = ("--format", "json")
# One calibration (the shortest, on one thread), then a prediction with it.
_PREDICT = (("calibrate", "--device", "cpu", "--threads", "1", "--max-time", "5"),
            ("predict", "lenet5", "--device", "cpu", "--threads", "1", *_JSON))
_BENCH = ("bench", "lenet5", "--device", "cpu", "--max-time", "0.01", "--min-samples", "1",
          *_JSON)
_KINDS = (
    DocumentKind("report", table.SCHEMA,
                 "a model's cost table: analyze, report (also --mode train)",
                 table.report_schema,
                 (("analyze", "lenet5", *_JSON),
                  ("analyze", "lenet5", "--mode", "train", "--depth", "1", *_JSON))),
    DocumentKind("compare", "cnncost.compare/1", "models side by side: compare",
                 compare_schema,
                 (("compare", "lenet5", "alexnet", *_JSON),
                  ("compare", "lenet5", "alexnet", "--mode", "train", *_JSON))),
    DocumentKind("sweep", "cnncost.sweep/1", "cost over a grid of variables: sweep",
                 sweep_schema,
                 (("sweep", "lenet5", "--set", "res=8,32", *_JSON),  # res=8 fails
                  ("sweep", "lenet5", "--mode", "train", "--batch", "1,2", *_JSON))),
    DocumentKind("advice", "cnncost.advice/2", "the design guidelines, priced: advise",
                 advice_schema, (("advise", "lenet5", *_JSON),)),
    DocumentKind("bench", "cnncost.bench/1", "measured inference: bench", bench_schema,
                 ((*_BENCH, "--per-layer"),)),
    DocumentKind("bench-train", "cnncost.bench-train/1",
                 "measured training steps: bench --train", bench_train_schema,
                 ((*_BENCH, "--train"),)),
    DocumentKind("roofline", "cnncost.roofline/1",
                 "the machine's measured roofs (bench's cache)", roofline_schema, (_BENCH,)),
    DocumentKind("check", "cnncost.check/1", "committed reports against a recount: check",
                 check_schema, (("report", "lenet5", "--out", "reports"),
                                ("check", "reports", *_JSON))),
    DocumentKind("diff", "cnncost.diff/1", "two folders (or files) of reports: diff",
                 diff_schema, (("report", "lenet5", "alexnet", "--out", "base"),
                               ("report", "lenet5", "--set", "classes=9", "--out", "head"),
                               ("diff", "base", "head", *_JSON))),
    DocumentKind("predict", "cnncost.predict/1", "predicted latency per layer: predict",
                 predict_schema, _PREDICT),
    DocumentKind("calibration", "cnncost.calibration/3",
                 "a machine's latency predictors (calibrate's cache)", calibration_schema,
                 _PREDICT),
)
DOCUMENTS: dict[str, DocumentKind] = {}
for _kind in _KINDS:
    if _kind.name in DOCUMENTS or any(k.id == _kind.id for k in DOCUMENTS.values()):
        raise ValueError(f"document kind {_kind.name!r} ({_kind.id}) registered twice")
    DOCUMENTS[_kind.name] = _kind


def kind_of(doc: Any) -> DocumentKind | None:
    """The registered kind a document names in its ``schema`` key (None: none)."""
    name = doc.get("schema") if isinstance(doc, dict) else None
    return next((k for k in DOCUMENTS.values() if k.id == name), None)


def known_kinds() -> str:
    """The kind names, for a message: ``report, compare, ...``."""
    return ", ".join(DOCUMENTS)

