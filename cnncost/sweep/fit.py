"""The scaling exponent of each metric against each swept variable.

For each swept numeric variable ``v`` and each metric ``m`` the sweep fits ``m ∝ v^k`` by
least squares on ``(log v, log m)``. Points are grouped by the values of every *other* axis,
so within a group only ``v``'s axis moves (for a zipped variable its zip partners move with
it); each group gets its own intercept and all groups share the slope::

    k = Σ_g Σ_i (x_i - x̄_g)(y_i - ȳ_g) / Σ_g Σ_i (x_i - x̄_g)²,   x = ln v,  y = ln m

(the pooled within-group estimator; with one group, the ordinary least-squares slope).
``r2`` is ``1 - SSR / SST`` within the groups (1 when ``m`` does not move at all). Failed
points and points where ``v`` or ``m`` is not positive are left out; a group counts only if
``v`` takes two different values in it. ``k`` and ``r2`` are rounded to 6 decimals, so an
exact power law reads exactly (``MACs ∝ res^2``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cnncost.sweep.plan import Plan
from cnncost.sweep.run import METRICS, PointResult


@dataclass(frozen=True)
class Exponent:
    """``metric ∝ var^exponent`` fitted over ``points`` points in ``groups`` groups."""

    var: str
    metric: str
    exponent: float | None  # None: no group where var takes two positive values
    r2: float | None
    points: int
    groups: int
    moves_with: tuple[str, ...] = ()  # the --zip partners that moved with var in the fit


def fit_loglog(groups: Iterable[Sequence[tuple[float, float]]]
               ) -> tuple[float | None, float | None, int, int]:
    """Pooled within-group least-squares slope of y on x: (slope, r2, points, groups).

    Each group is a list of (x, y) already on log scales; see the module docstring.
    """
    sxx = sxy = syy = 0.0
    n_points = n_groups = 0
    for group in groups:
        if len({x for x, _ in group}) < 2:
            continue
        # Centre on the group's mean, measured from its first point: a metric that does not
        # move gives deviations of exactly 0 (a plain mean of equal floats may not).
        x0, y0 = group[0]
        dx = [x - x0 for x, _ in group]
        dy = [y - y0 for _, y in group]
        mx, my = math.fsum(dx) / len(group), math.fsum(dy) / len(group)
        sxx += math.fsum((a - mx) ** 2 for a in dx)
        sxy += math.fsum((a - mx) * (b - my) for a, b in zip(dx, dy, strict=True))
        syy += math.fsum((b - my) ** 2 for b in dy)
        n_points += len(group)
        n_groups += 1
    if n_groups == 0 or sxx == 0:
        return None, None, n_points, n_groups
    slope = sxy / sxx
    r2 = 1.0 if syy == 0 else max(0.0, 1.0 - (syy - slope * sxy) / syy)
    return round(slope, 6) + 0.0, round(r2, 6) + 0.0, n_points, n_groups


def fit_exponents(plan: Plan, results: Sequence[PointResult],
                  metrics: Sequence[str] = METRICS) -> tuple[Exponent, ...]:
    """The exponent of every metric against every swept numeric variable."""
    out = []
    for a, axis in enumerate(plan.axes):
        if len(axis.values) < 2:
            continue
        for k, name in enumerate(axis.names):
            if any(isinstance(step[k], bool) for step in axis.values):
                continue
            for metric in metrics:
                groups: dict[tuple[int, ...], list[tuple[float, float]]] = {}
                for r in results:
                    x, y = axis.values[r.point.coords[a]][k], getattr(r, metric)
                    if r.ok and x > 0 and y > 0:
                        key = r.point.coords[:a] + r.point.coords[a + 1:]
                        groups.setdefault(key, []).append((math.log(x), math.log(y)))
                partners = tuple(n for n in axis.names if n != name)
                out.append(Exponent(name, metric, *fit_loglog(groups.values()), partners))
    return tuple(out)
