"""A calibration: the document, its cache file and the checks it passes before it is used.

One file per machine, device, threads, dtype and torch version, in the cache folder
(``cnncost.io.cache_dir()/calibration/``), named after its key. The file is JSON (schema
``cnncost.calibration/3``): the key and what it is made of, when and how it was measured,
the whole-model call overhead, and per op class the fitted predictor (plain numbers: the
baseline's coefficients, the trees' node lists), its calibrated ranges, its held-out error
and the samples it was fitted on. Nothing in it is executed: a file that is not what
cnncost wrote (another machine's, another torch's, edited, cut short, a tree whose nodes
loop) is refused with its name, never used.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnncost.errors import CnnCostError
from cnncost.io import cache_dir, read_text, write_atomic
from cnncost.predict.features import FEATURES, class_names

SCHEMA = "cnncost.calibration/3"
FOLDER = "calibration"
SIZE_LIMIT = 32 << 20
MAX_TREES = 2000
MAX_NODES = 4096
MAX_SAMPLES = 200_000


class CalibrationError(CnnCostError):
    """No calibration, or one that cannot be used (corrupt, another machine's, another dtype)."""


def calibration_key(machine: str, torch_version: str) -> str:
    """A calibration's key: the machine's (``cpu:NAME|float32|threads=2``) and torch's version."""
    return f"{machine}|torch={torch_version}"


def calibration_path(key: str, folder: Path | None = None) -> Path:
    """The cache file of a key: readable, and unique by a digest of the whole key."""
    device, _, rest = key.partition(":")
    parts = rest.split("|")
    slug = "-".join([device, *parts[1:]])
    slug = re.sub(r"[^A-Za-z0-9.+=-]+", "_", slug).replace("threads=", "t")
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return (folder or cache_dir() / FOLDER) / f"{slug}-{digest}.json"


@dataclass(frozen=True)
class Calibration:
    """A machine's calibration: fitted predictors per op class, and what they came from."""

    key: str
    device: str
    device_name: str
    dtype: str
    threads: int
    torch_version: str
    measured_at: str
    overhead_s: float  # one whole-model call beyond its layers' calls
    classes: dict[str, dict[str, Any]]
    samples: dict[str, list[list[float]]] = field(repr=False)
    # What a layer costs inside a whole model beyond its isolated prediction, fitted on random
    # networks: {"scale", "per_layer_s", "networks": [[isolated sum s, layers, measured s]],
    # "error": held-out on the networks (None with fewer than MIN_NETWORKS), "isolated_error"}
    context: dict[str, Any] = field(default_factory=lambda: {
        "scale": 1.0, "per_layer_s": 0.0, "networks": [], "error": None,
        "isolated_error": None})
    budget_s: float = 0.0
    elapsed_s: float = 0.0
    load_avg: float | None = None  # 1-minute load average before and after
    load_avg_after: float | None = None
    trees: str | None = None  # "scikit-learn X.Y" when trees were fitted
    path: str = ""  # where it was read from (not in the document)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "key": self.key, "device": self.device,
                "device_name": self.device_name, "dtype": self.dtype, "threads": self.threads,
                "torch_version": self.torch_version, "measured_at": self.measured_at,
                "budget_s": self.budget_s, "elapsed_s": self.elapsed_s,
                "load_avg": self.load_avg, "load_avg_after": self.load_avg_after,
                "trees": self.trees, "overhead_s": self.overhead_s,
                "features": list(FEATURES), "context": self.context, "classes": self.classes,
                "samples": self.samples}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False) + "\n"

    @property
    def sample_count(self) -> int:
        return sum(len(s) for s in self.samples.values())


def save(cal: Calibration, path: Path | None = None) -> Path:
    """Write a calibration to its cache file (atomically); the path written."""
    target = path or calibration_path(cal.key)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, cal.to_json())
    return target


def this_machine(device: str = "auto", dtype: str = "float32",
                 threads: int | None = None) -> tuple[str, str]:
    """(the calibration key of this machine, the ``cnncost calibrate`` options that make it).

    A CPU is named without importing torch (its model, torch's default thread count and
    installed version); ``auto`` means cuda only where the installed torch is a CUDA build and
    finds a GPU (torch is then imported to ask)."""
    from cnncost.measure.machine import (
        check_threads,
        cpu_name,
        default_threads,
        machine_key,
        torch_version,
    )

    version = torch_version()
    if version is None:
        raise CalibrationError("torch is not installed: a calibration is per torch version; "
                               "pip install 'cnncost[torch]', then run `cnncost calibrate`")
    if device not in ("auto", "cpu", "cuda"):
        raise CalibrationError(f"--device {device!r}: expected auto, cpu or cuda")
    if device == "cuda" or (device == "auto" and "+cpu" not in version and _cuda_found()):
        from cnncost.measure.bench import resolve_device
        from cnncost.measure.roofline import device_name

        name = device_name(resolve_device("cuda"))
        return (calibration_key(machine_key("cuda", name, dtype, 0), version),
                f"--device cuda --dtype {dtype}")
    # (more threads than this process may run on could never be calibrated here)
    n = default_threads() if threads is None else check_threads(threads)
    return (calibration_key(machine_key("cpu", cpu_name(), dtype, n), version),
            f"--device cpu --dtype {dtype} --threads {n}")


def _cuda_found() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def load(key: str, path: Path | None = None, make: str = "") -> Calibration:
    """The calibration for ``key`` (from its cache file, or ``path``), checked field by field.

    CalibrationError: none there (the message says how to make one: ``cnncost calibrate
    {make}``), or one that is not a valid calibration for this key (named, never used)."""
    target = path or calibration_path(key)
    if not target.exists():
        here = sorted(p.stem.rsplit("-", 1)[0] for p in target.parent.glob("*.json"))
        raise CalibrationError(
            f"no calibration for {key} (looked for {target}); make one with `cnncost "
            f"calibrate{' ' + make if make else ''}` (a few minutes)"
            + (f"; calibrated here: {', '.join(here)}" if here else ""))
    try:
        doc = json.loads(read_text(target, SIZE_LIMIT, "calibration", track=False))
    except CnnCostError as exc:
        raise CalibrationError(f"{target}: not a usable calibration ({exc}); run "
                               "`cnncost calibrate` to measure again") from None
    except (ValueError, RecursionError) as exc:
        raise CalibrationError(f"{target}: corrupt calibration (not JSON: {exc}); run "
                               "`cnncost calibrate` to measure again") from None
    why = problem(doc, key)
    if why:
        raise CalibrationError(f"{target}: refused: {why}; run `cnncost calibrate` to measure "
                               "again")
    return from_dict(doc, str(target))


def find(dtype: str = "float32", device: str = "auto", threads: int | None = None,
         path: Path | None = None) -> Calibration:
    """This machine's cached calibration (device, dtype, threads, torch), or the file at
    ``path`` (another machine's: predictions are then for that machine)."""
    if path is not None:
        return load_file(path)
    key, make = this_machine(device, dtype, threads)
    return load(key, make=make)


def load_file(path: Path) -> Calibration:
    """A calibration file given by name (another machine's, to predict for that machine):
    checked against its own key."""
    try:
        doc = json.loads(read_text(path, SIZE_LIMIT, "calibration"))
    except CnnCostError as exc:
        raise CalibrationError(f"--calibration {path}: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise CalibrationError(f"--calibration {path}: corrupt calibration (not JSON: "
                               f"{exc})") from None
    key = doc.get("key") if isinstance(doc, dict) else None
    why = problem(doc, key) if isinstance(key, str) else f"not a {SCHEMA} document"
    if why:
        raise CalibrationError(f"--calibration {path}: refused: {why}")
    return from_dict(doc, str(path))


def from_dict(doc: dict[str, Any], path: str = "") -> Calibration:
    """A checked document (see ``problem``) as a Calibration."""
    return Calibration(
        key=doc["key"], device=doc["device"], device_name=doc["device_name"],
        dtype=doc["dtype"], threads=doc["threads"], torch_version=doc["torch_version"],
        measured_at=doc["measured_at"], overhead_s=doc["overhead_s"], classes=doc["classes"],
        samples=doc["samples"], budget_s=doc["budget_s"], elapsed_s=doc["elapsed_s"],
        load_avg=doc["load_avg"], load_avg_after=doc["load_avg_after"], trees=doc["trees"],
        context=doc["context"], path=path)


# --------------------------------------------------------------------------- checks


def _number(x: Any, lo: float = -math.inf, hi: float = math.inf) -> bool:
    return (isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
            and lo <= x <= hi)


def _numbers(xs: Any, n: int, lo: float = -math.inf, hi: float = math.inf) -> bool:
    return isinstance(xs, list) and len(xs) == n and all(_number(x, lo, hi) for x in xs)


def problem(doc: Any, key: str) -> str | None:
    """What makes ``doc`` not a calibration for ``key``, or None when it is one."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        return f"not a {SCHEMA} document"
    if doc.get("key") != key:
        return (f"it is the calibration of {doc.get('key')!r}, not of this machine "
                f"({key})"[:400])
    texts = ("device", "device_name", "dtype", "torch_version", "measured_at")
    if not all(isinstance(doc.get(t), str) for t in texts):
        return "a field that should be text is not"
    if not key.startswith(f"{doc['device']}:") or f"|{doc['dtype']}" not in key or \
            not key.endswith(f"|torch={doc['torch_version']}"):
        return "its fields do not match its key"
    if type(doc.get("threads")) is not int or not 0 <= doc["threads"] < 1 << 20:
        return "threads is not a count"
    if not all(_number(doc.get(f), 0) for f in ("overhead_s", "budget_s", "elapsed_s")):
        return "a time is not a finite number >= 0"
    if not all(doc.get(f) is None or _number(doc.get(f), 0) for f in ("load_avg",
                                                                     "load_avg_after")):
        return "a load average is not a number"
    if doc.get("trees") is not None and not isinstance(doc.get("trees"), str):
        return "trees is not text"
    if doc.get("features") != list(FEATURES):
        return "its features are not this version's"
    return (_context_problem(doc.get("context")) or _classes_problem(doc.get("classes"))
            or _samples_problem(doc.get("samples")))


def _error_problem(e: Any) -> bool:
    return not isinstance(e, dict) or not all(_number(e.get(k), 0) for k in ("median", "p90",
                                                                             "rms"))


def _context_problem(ctx: Any) -> str | None:
    if not isinstance(ctx, dict) or not _number(ctx.get("scale"), 1e-3, 1e3) or \
            not _number(ctx.get("per_layer_s"), 0, 1.0):
        return "context is not a scale and a time per layer"
    nets = ctx.get("networks")
    if not isinstance(nets, list) or len(nets) > MAX_SAMPLES or \
            not all(_numbers(n, 3, 0) for n in nets):
        return "context networks are not [sum, layers, seconds]"
    for err in ("error", "isolated_error"):
        if ctx.get(err) is not None and _error_problem(ctx[err]):
            return f"context {err} is not median, p90 and rms >= 0"
    return None


def _classes_problem(classes: Any) -> str | None:
    if not isinstance(classes, dict) or not classes:
        return "no fitted op classes"
    known = set(class_names())
    for name, fitted in classes.items():
        if name not in known:
            return f"unknown op class {name!r}"
        why = _class_problem(fitted)
        if why:
            return f"op class {name}: {why}"
    return None


def _class_problem(fitted: Any) -> str | None:
    if not isinstance(fitted, dict):
        return "not a fit"
    if not _numbers(fitted.get("baseline"), 3, 0):
        return "baseline is not three finite numbers >= 0"
    if fitted.get("method") not in ("baseline", "trees"):
        return "unknown method"
    if (fitted.get("trees") is None) != (fitted["method"] == "baseline"):
        return "method and trees disagree"
    if type(fitted.get("samples")) is not int or fitted["samples"] < 1:
        return "samples is not a count"
    rng = fitted.get("ranges")
    if not isinstance(rng, list) or len(rng) != len(FEATURES) or not all(
            _numbers(r, 2) and r[0] <= r[1] for r in rng):
        return "ranges are not [low, high] per feature"
    for err in ("error", "baseline_error"):
        if _error_problem(fitted.get(err)):
            return f"{err} is not median, p90 and rms >= 0"
    return None if fitted["trees"] is None else _trees_problem(fitted["trees"])


def _trees_problem(trees: Any) -> str | None:
    if not isinstance(trees, dict) or not _number(trees.get("init"), -50, 50):
        return "trees without a finite init"
    forest = trees.get("trees")
    if not isinstance(forest, list) or not 0 < len(forest) <= MAX_TREES:
        return "not a list of trees"
    for tree in forest:
        if not isinstance(tree, list) or len(tree) != 5:
            return "a tree is not five node lists"
        why = _tree_problem(*tree)
        if why:
            return why
    return None


def _tree_problem(feat: Any, thr: Any, left: Any, right: Any, value: Any) -> str | None:
    """Nodes in order: every child after its parent (so evaluation ends), leaves with no
    children, splits on a known feature at a finite threshold, finite leaf values."""
    lists = (feat, thr, left, right, value)
    if not all(isinstance(x, list) for x in lists):
        return "a tree's nodes are not lists"
    n = len(feat)
    if not 0 < n <= MAX_NODES or any(len(x) != n for x in lists):
        return "a tree's node lists differ in length"
    for i in range(n):
        lo, hi = left[i], right[i]
        if type(lo) is not int or type(hi) is not int:
            return "a tree's child is not an index"
        if lo == -1 and hi == -1:
            if not _number(value[i], -50, 50):
                return "a leaf value is not a finite number"
            continue
        if not (i < lo < n and i < hi < n):
            return "a tree's child does not come after its parent"
        if type(feat[i]) is not int or not 0 <= feat[i] < len(FEATURES) or \
                not _number(thr[i]):
            return "a split is not on a known feature at a finite threshold"
    return None


def _samples_problem(samples: Any) -> str | None:
    if not isinstance(samples, dict):
        return "samples are not a mapping"
    known = set(class_names())
    total = 0
    for name, rows in samples.items():
        if name not in known or not isinstance(rows, list):
            return f"samples of unknown op class {name!r}"
        total += len(rows)
        if total > MAX_SAMPLES:
            return "too many samples"
        if not all(_numbers(r, len(FEATURES) + 1) for r in rows):
            return f"a sample of {name} is not {len(FEATURES) + 1} finite numbers"
    return None
