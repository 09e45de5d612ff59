"""Fitting one op class's predictor to its calibration samples, and its held-out error.

The predictor of a class has two parts:

- a **baseline** ``t = a + b x MACs + c x bytes`` (bytes read and written, weights included),
  each coefficient >= 0: a fixed cost per call (the framework's dispatch, which dominates
  small layers at batch 1), a time per MAC and a time per byte. It is fitted by least
  squares on relative error, trying each set of terms and keeping the best one whose
  coefficients are all >= 0. It extrapolates the way the machine does: linearly in work.
- **trees** on the baseline's residual ``log(t / baseline)``: gradient-boosted regression trees
  (scikit-learn's ``GradientBoostingRegressor``, depth 3) over the layer's features learn
  what the baseline misses (a library's blocking, vector widths, channel counts that fit a
  cache). Outside the samples' range a tree holds its edge value, so the baseline carries
  the extrapolation. Trees are kept only where they cut the held-out error by 5% or more.

Both weigh the samples so that each half decade of measured time counts alike, however many
kernels fell in it (``time_weights``): a model's time is the sum of its layers', so its long
layers decide its error, and with every sample alike the many small kernels a calibration
draws would decide the fit.

The held-out error comes from k-fold cross-validation on the calibration samples: each
sample predicted by a fit that did not see it. The fit is plain numbers (JSON), evaluated by
``cnncost.predict.model`` in pure Python; scikit-learn is needed to fit trees only (without
it the baseline alone is fitted, and the calibration says so).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from typing import Any

from cnncost.predict.features import FEATURES

FOLDS = 5
MIN_TREE_SAMPLES = 24  # fewer samples than this: baseline only (trees would learn noise)
TREES = {"n_estimators": 150, "max_depth": 3, "learning_rate": 0.1, "min_samples_leaf": 3}
_MACS, _IN, _OUT, _W = (FEATURES.index(f) for f in ("macs", "in_bytes", "out_bytes",
                                                     "weight_bytes"))
# Trees are kept when they cut the held-out RMS log error by 5% of it and by more than 0.005
# (half a percent: below what timing noise lets one tell apart).
TREE_GAIN = 0.95
MIN_GAIN = 0.005
MIN_TIME_S = 1e-8  # the floor of a baseline (a zero fit must not divide by zero)
# A model's time is the sum of its layers', so its largest layers decide its error; yet most
# calibration kernels are small (a class's budget buys many of them). A fit weighs the samples
# so that each half decade of measured time counts alike (``time_weights``).
WEIGHT_BIN = 0.5


def baseline_terms(x: Sequence[float]) -> tuple[float, float, float]:
    """The baseline's terms of one feature vector: (1, MACs, bytes moved)."""
    return 1.0, x[_MACS], x[_IN] + x[_OUT] + x[_W]


ALL_TERMS = (0, 1, 2)  # the baseline's terms: per call, per MAC, per byte


def time_weights(ys: Sequence[float], bin_width: float = WEIGHT_BIN) -> list[float]:
    """Each sample's weight in a fit: samples whose times fall in the same ``bin_width``
    (in log10 seconds) share one bin's weight, so that every order of magnitude of time that
    was measured counts alike, however many kernels fell in it (mean 1)."""
    if not ys:
        return []
    bins = [math.floor(math.log10(max(y, MIN_TIME_S)) / bin_width) for y in ys]
    count: dict[int, int] = {}
    for b in bins:
        count[b] = count.get(b, 0) + 1
    raw = [1.0 / count[b] for b in bins]
    mean = sum(raw) / len(raw)
    return [w / mean for w in raw]


def fit_baseline(xs: Sequence[Sequence[float]], ys: Sequence[float],
                 terms: Sequence[int] = ALL_TERMS,
                 weights: Sequence[float] | None = None) -> list[float]:
    """Non-negative (a, b, c) of ``a + b*MACs + c*bytes`` by least squares on relative error
    (each sample's square times its weight, default 1), with only ``terms`` free (the others
    0: a view's time does not grow with its bytes)."""
    coef = _nonnegative([[baseline_terms(x)[t] for t in terms] for x in xs], ys,
                        weights=weights)
    full = [0.0, 0.0, 0.0]
    for t, v in zip(terms, coef, strict=True):
        full[t] = v
    return full


def baseline_time(coef: Sequence[float], x: Sequence[float]) -> float:
    one, macs, nbytes = baseline_terms(x)
    return max(MIN_TIME_S, coef[0] * one + coef[1] * macs + coef[2] * nbytes)


def sklearn_version() -> str | None:
    """scikit-learn's version, None when it is not installed (trees are then not fitted);
    read from its metadata: importing it costs seconds, paid only when trees are fitted."""
    from importlib import metadata
    from importlib.util import find_spec

    if find_spec("sklearn") is None:
        return None
    try:
        return metadata.version("scikit-learn")
    except metadata.PackageNotFoundError:
        return None


def fit_trees(xs: Sequence[Sequence[float]], residuals: Sequence[float],
              weights: Sequence[float] | None = None) -> dict[str, Any]:
    """Boosted trees on the residual (each sample weighted, default 1), exported as plain
    lists (no pickle)."""
    from sklearn.ensemble import GradientBoostingRegressor

    model = GradientBoostingRegressor(random_state=0, subsample=1.0, **TREES)
    model.fit([list(x) for x in xs], list(residuals),
              sample_weight=None if weights is None else list(weights))
    rate = float(model.learning_rate)
    trees = []
    for (est,) in model.estimators_:
        t = est.tree_
        trees.append([[int(f) for f in t.feature], [float(v) for v in t.threshold],
                      [int(i) for i in t.children_left], [int(i) for i in t.children_right],
                      [float(v) * rate for v in t.value[:, 0, 0]]])
    init = float(model.init_.constant_[0][0]) if hasattr(model.init_, "constant_") else (
        float(sum(residuals) / len(residuals)))
    return {"init": init, "trees": trees}


def tree_sum(trees: dict[str, Any], x: Sequence[float]) -> float:
    """The boosted trees' output for one feature vector."""
    total = trees["init"]
    for feat, thr, left, right, value in trees["trees"]:
        i = 0
        while left[i] >= 0:
            i = left[i] if x[feat[i]] <= thr[i] else right[i]
        total += value[i]
    return float(total)


def predict_seconds(fitted: dict[str, Any], x: Sequence[float]) -> float:
    """A class fit's time for one feature vector: baseline x exp(trees)."""
    t = baseline_time(fitted["baseline"], x)
    trees = fitted.get("trees")
    return t * math.exp(tree_sum(trees, x)) if trees else t


def fit_model(xs: Sequence[Sequence[float]], ys: Sequence[float], trees: bool,
              terms: Sequence[int] = ALL_TERMS,
              weights: Sequence[float] | None = None) -> dict[str, Any]:
    """A baseline, and trees on its residual when asked (both weighted by ``weights``,
    default ``time_weights(ys)``)."""
    w = time_weights(ys) if weights is None else weights
    coef = fit_baseline(xs, ys, terms, w)
    fitted: dict[str, Any] = {"baseline": coef, "trees": None}
    if trees:
        res = [math.log(y / baseline_time(coef, x)) for x, y in zip(xs, ys, strict=True)]
        fitted["trees"] = fit_trees(xs, res, w)
    return fitted


def held_out(xs: Sequence[Sequence[float]], ys: Sequence[float], trees: bool,
             folds: int = FOLDS, terms: Sequence[int] = ALL_TERMS) -> list[float]:
    """log(predicted / measured) of every sample, each predicted by a fit on the other folds
    (weighted as a fit on them all would weight them)."""
    n = len(ys)
    order = sorted(range(n), key=lambda i: (i * 7919) % n)  # deterministic, spread out
    weights = time_weights(ys)
    errors = [0.0] * n
    k = min(folds, n)
    for f in range(k):
        test = order[f::k]
        held = set(test)
        train = [i for i in range(n) if i not in held]
        if not train:
            return []
        fitted = fit_model([xs[i] for i in train], [ys[i] for i in train], trees, terms,
                           [weights[i] for i in train])
        for i in test:
            errors[i] = math.log(predict_seconds(fitted, xs[i]) / ys[i])
    return errors


def error_summary(log_errors: Sequence[float]) -> dict[str, float]:
    """Held-out error: median and 90th percentile of |predicted / measured - 1|, and the RMS
    of log(predicted / measured)."""
    if not log_errors:
        return {"median": math.nan, "p90": math.nan, "rms": math.nan}
    rel = sorted(abs(math.exp(e) - 1) for e in log_errors)
    p90 = rel[min(len(rel) - 1, math.ceil(0.9 * len(rel)) - 1)]
    return {"median": statistics.median(rel), "p90": p90, "rms": rms(log_errors)}


def ranges(xs: Sequence[Sequence[float]]) -> list[list[float]]:
    """[min, max] of each feature over the samples: the calibrated range."""
    return [[min(x[i] for x in xs), max(x[i] for x in xs)] for i in range(len(FEATURES))]


def unique(xs: Sequence[Sequence[float]], ys: Sequence[float]) -> tuple[
        list[tuple[float, ...]], list[float]]:
    """One sample per distinct feature vector, its time the median of its measurements (a
    layer repeated in a network, or drawn twice, would otherwise sit on both sides of a
    held-out split), in the order first seen."""
    groups: dict[tuple[float, ...], list[float]] = {}
    for x, y in zip(xs, ys, strict=True):
        groups.setdefault(tuple(x), []).append(y)
    return list(groups), [statistics.median(v) for v in groups.values()]


def fit_class(xs: Sequence[Sequence[float]], ys: Sequence[float], use_trees: bool,
              terms: Sequence[int] = ALL_TERMS) -> dict[str, Any]:
    """One class's predictor, fitted on all its samples (one per distinct layer): the
    baseline, trees where the held-out error says they help, the calibrated ranges and the
    held-out error."""
    xs, ys = unique(xs, ys)
    base_err = held_out(xs, ys, False, terms=terms)
    method, errors = "baseline", base_err
    if use_trees and len(ys) >= MIN_TREE_SAMPLES:
        tree_err = held_out(xs, ys, True, terms=terms)
        w = time_weights(ys)
        base_rms = rms(base_err, w)
        gain = base_rms - rms(tree_err, w)
        if gain > (1 - TREE_GAIN) * base_rms and gain > MIN_GAIN:
            method, errors = "trees", tree_err
    fitted = fit_model(xs, ys, method == "trees", terms)
    return {**fitted, "method": method, "samples": len(ys), "ranges": ranges(xs),
            "error": error_summary(errors), "baseline_error": error_summary(base_err)}


def rms(errors: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """The (weighted) root mean square of log errors (inf for none)."""
    if not errors:
        return math.inf
    w = [1.0] * len(errors) if weights is None else weights
    return math.sqrt(sum(wi * e * e for wi, e in zip(w, errors, strict=True)) / sum(w))


# --------------------------------------------------------------------------- in context

NO_CONTEXT = {"scale": 1.0, "per_layer_s": 0.0}


def fit_context(sums: Sequence[float], layers: Sequence[float],
                ys: Sequence[float]) -> tuple[float, float, float]:
    """(scale, per-layer seconds, per-call seconds) of ``y = scale x sum + per_layer x L +
    call``, each >= 0 and the scale > 0, by least squares on relative error: what the
    layers' isolated predictions (``sums``, over ``layers`` layers) miss inside a whole
    model (``ys``: measured)."""
    rows = [(s, n, 1.0) for s, n in zip(sums, layers, strict=True)]
    coef = _nonnegative(rows, ys, required=0)
    return coef[0], coef[1], coef[2]


def _nonnegative(rows: Sequence[Sequence[float]], ys: Sequence[float],
                 required: int | None = None,
                 weights: Sequence[float] | None = None) -> list[float]:
    """Non-negative least squares on relative error (each square times its weight) by trying
    every subset of columns (a few columns only); ``required``: a column every subset
    keeps."""
    import numpy as np

    a = np.asarray(rows, dtype=float)
    y = np.asarray(ys, dtype=float)
    root = np.sqrt(np.asarray(weights, dtype=float)) if weights is not None else np.ones(len(y))
    scaled = a / y[:, None] * root[:, None]
    k = a.shape[1]
    best, best_cost = [0.0] * k, math.inf
    for size in range(1, k + 1):
        for cols in itertools.combinations(range(k), size):
            if required is not None and required not in cols:
                continue
            sub = scaled[:, cols]
            if not np.any(sub):
                continue
            theta, *_ = np.linalg.lstsq(sub, root, rcond=None)
            if np.any(theta < 0) or not np.all(np.isfinite(theta)):
                continue
            cost = float(np.sum((sub @ theta - root) ** 2))
            if cost < best_cost:
                best_cost, best = cost, [0.0] * k
                for c, v in zip(cols, theta, strict=True):
                    best[c] = float(v)
    return best


def context_held_out(sums: Sequence[float], layers: Sequence[float],
                     ys: Sequence[float]) -> list[float]:
    """log(predicted / measured) of each network, by a context fit without it."""
    errors = []
    for i in range(len(ys)):
        keep = [j for j in range(len(ys)) if j != i]
        if not keep:
            return []
        m, per, call = fit_context([sums[j] for j in keep], [layers[j] for j in keep],
                                   [ys[j] for j in keep])
        errors.append(math.log(max(MIN_TIME_S, m * sums[i] + per * layers[i] + call) / ys[i]))
    return errors
