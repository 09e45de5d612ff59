"""The plan of a sweep: the value grammar, the axes and their product (no spec, no torch).

Values (``--set NAME=VALUES``):

- ``a..b`` or ``a..b:step``: a range, both ends included (``128..640:32`` is 128, 160, ...,
  640; a step that does not land on ``b`` stops below it; step 1 by default; a negative
  step counts down, ``640..128:-32``). Integers stay integers; any decimal makes floats,
  computed exactly in decimal (``0.5..1:0.25`` is 0.5, 0.75, 1.0).
- ``a,b,c``: a list; each item a number, ``true``/``false``, or a range.
- a single value (no ``,`` and no ``..``): fixed for every point and handed to the spec as
  ``analyze --set`` does (so it may be an expression).

Every swept variable is one axis; ``--zip width,depth,res`` makes the named variables one
axis that moves together (equal numbers of values), as compound scaling does. The batch
sizes (``--batch``) are the last axis (they may be zipped too). The points are the
cartesian product of the axes, the first axis varying slowest (``itertools.product``).
Everything here is checked before any point is counted; bad input is a UsageError.
"""

from __future__ import annotations

import itertools
import math
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from cnncost.errors import UsageError

Value = int | float | bool

DEFAULT_MAX_POINTS = 100_000
BATCH = "batch"


@dataclass(frozen=True)
class Axis:
    """Variables that move together (one, or a --zip group) and their values step by step."""

    names: tuple[str, ...]
    values: tuple[tuple[Value, ...], ...]  # values[k]: the k-th step, one value per name


@dataclass(frozen=True)
class Point:
    """One configuration: its place in the product and the value of every axis variable."""

    index: int
    coords: tuple[int, ...]  # the step along each axis
    values: tuple[tuple[str, Value], ...]  # (name, value) in axis order; batch included

    @property
    def vars(self) -> dict[str, Value]:
        """The spec variables of this point (batch left out)."""
        return {k: v for k, v in self.values if k != BATCH}

    @property
    def batch(self) -> int:
        return int(dict(self.values)[BATCH])

    def label(self) -> str:
        """``res=128, batch=1``."""
        return ", ".join(f"{k}={v}" for k, v in self.values)


@dataclass(frozen=True)
class Plan:
    """A parsed sweep before it meets a spec: the fixed --set values and the axes."""

    fixed: Mapping[str, str]
    axes: tuple[Axis, ...]

    @property
    def size(self) -> int:
        return math.prod(len(a.values) for a in self.axes)

    @property
    def names(self) -> tuple[str, ...]:
        """Every axis variable in column order (batch included)."""
        return tuple(n for a in self.axes for n in a.names)

    def points(self) -> Iterator[Point]:
        """The cartesian product of the axes, first axis slowest."""
        steps = itertools.product(*(range(len(a.values)) for a in self.axes))
        for index, coords in enumerate(steps):
            values = tuple((name, axis.values[c][k]) for axis, c in zip(self.axes, coords,
                                                                        strict=True)
                           for k, name in enumerate(axis.names))
            yield Point(index, coords, values)


def plan_sweep(sets: Sequence[str], zips: Sequence[str] = (), batch: str | None = None,
               max_points: int = DEFAULT_MAX_POINTS) -> Plan:
    """Parse ``--set``, ``--zip`` and ``--batch`` text into a Plan (UsageError on bad input)."""
    if max_points < 1:
        raise UsageError(f"--max-points {max_points}: expected a positive number of points")
    fixed: dict[str, str] = {}
    swept: dict[str, tuple[Value, ...]] = {}
    for item in sets:
        name, sep, text = item.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name or not text:
            raise UsageError(f"--set {item!r}: expected name=values, e.g. --set res=128..640:32")
        if name in fixed or name in swept:
            raise UsageError(f"--set {name}: given twice; one --set per variable")
        if name == BATCH:
            raise UsageError("--set batch: the batch size is --batch, e.g. --batch 1,8,32")
        if "," in text or ".." in text:
            swept[name] = parse_values(f"--set {name}={text}", text, max_points)
        else:
            fixed[name] = text
    batches = parse_values(f"--batch {batch}", batch, max_points) if batch else (1,)
    if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in batches):
        raise UsageError(f"--batch {batch}: expected positive whole batch sizes, like 1,8,32")
    swept[BATCH] = batches
    axes = _axes(swept, _zip_groups(zips, swept, fixed))
    size = math.prod(len(a.values) for a in axes)
    if size > max_points:
        raise UsageError(f"the sweep has {size:,} points, more than --max-points {max_points:,};"
                         " narrow a range, take a larger step, or raise --max-points")
    if size == 1:
        raise UsageError("nothing to sweep: give a variable several values, e.g. "
                         "--set res=128..640:32, or several batch sizes, e.g. --batch 1,8,32")
    return Plan(fixed, tuple(axes))


def values_text(name: str, values: Any) -> str:
    """Python values as the text ``--set`` takes (the Python API's grid, planned by the same
    grammar): a text as is (``"128..640:32"``), a number or bool as written, a list, tuple or
    range of them joined with commas; anything else is a UsageError naming the variable."""
    if isinstance(values, str):
        return values
    if isinstance(values, bool | numbers.Real):
        return _value_text(name, values)
    if isinstance(values, Iterable) and not isinstance(values, Mapping | bytes):
        items = [_value_text(name, v) for v in values]
        if not items:
            raise UsageError(f"{name}: no values; expected e.g. [128, 160, 192] or "
                             "'128..640:32'")
        return ",".join(items) if len(items) > 1 else items[0]
    raise UsageError(f"{name}: {values!r} is not a value or a list of values; expected e.g. "
                     "[0.5, 1.0], range(128, 641, 32) or '128..640:32'")


def _value_text(name: str, value: Any) -> str:
    """One value's text: an integer's digits, a float's shortest exact repr (numpy's too)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real) and math.isfinite(float(value)):
        return repr(float(value))
    raise UsageError(f"{name}: {value!r} is not a finite number or a bool (a swept value)")


def parse_values(label: str, text: str, limit: int = DEFAULT_MAX_POINTS) -> tuple[Value, ...]:
    """``'128..256:64,512'`` -> (128, 192, 256, 512); ranges longer than ``limit`` refused."""
    out: list[Value] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            raise UsageError(f"{label}: an empty item; expected a list like 0.5,0.75,1.0")
        if ".." in item:
            out.extend(_range(label, item, limit - len(out), limit))
        else:
            out.append(_literal(label, item))
        if len(out) > limit:
            raise UsageError(f"{label}: more than --max-points {limit:,} values")
    return tuple(out)


def _literal(label: str, text: str) -> Value:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{label}: {text!r} is not a number; a swept variable takes numbers "
                         "(or true/false)") from None
    if not math.isfinite(value):
        raise UsageError(f"{label}: {text!r} is not a finite number")
    return value


# The sizes a range's ends and step may have (as powers of ten): a float's, less its
# subnormals. Beyond them a range is absurd, and its arithmetic could overflow the decimal
# context (1e-9999999) or build a number of a million digits (1..2:1e-999000 would hang).
MIN_EXPONENT, MAX_EXPONENT = -300, 308
_SCIENTIFIC = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _decimal(label: str, text: str, what: str) -> Decimal:
    text = text.strip()
    if len(text) > 100:  # a number, not a novel: Decimal() of a long text is slow
        raise UsageError(f"{label}: range {what} {text[:20]!r}... is {len(text)} characters "
                         "long; expected a number like 128, 0.25 or 1e-3")
    try:
        value = Decimal(text)
    except InvalidOperation:
        if _SCIENTIFIC.fullmatch(text):  # an exponent beyond what decimal holds
            raise UsageError(f"{label}: range {what} {text} is out of range; expected a size "
                             f"from 1e{MIN_EXPONENT} to 1e{MAX_EXPONENT}") from None
        raise UsageError(f"{label}: range {what} {text!r} is not a number; expected a "
                         "range like 128..640:32") from None
    if not value.is_finite() or not math.isfinite(float(value)):
        raise UsageError(f"{label}: the range is unbounded ({what} {text}); expected "
                         "finite ends like 128..640:32")
    if value and not MIN_EXPONENT <= value.adjusted() <= MAX_EXPONENT:
        raise UsageError(f"{label}: range {what} {text} is out of range; expected a size "
                         f"from 1e{MIN_EXPONENT} to 1e{MAX_EXPONENT}")
    return value


def _range(label: str, item: str, room: int, limit: int) -> list[Value]:
    lo, _, rest = item.partition("..")
    hi, colon, step_text = rest.partition(":")
    if not lo.strip() or not hi.strip() or (colon and not step_text.strip()):
        raise UsageError(f"{label}: {item!r} is unbounded or incomplete; a range needs both "
                         "ends (and a step after ':'), like 128..640:32")
    a, b = _decimal(label, lo, "start"), _decimal(label, hi, "end")
    step = _decimal(label, step_text, "step") if colon else Decimal(1)
    if step == 0:
        raise UsageError(f"{label}: a step of 0 never reaches the end; expected e.g. "
                         f"{lo.strip()}..{hi.strip()}:1")
    # Exact enough and bounded: every operand is within 1e-300..1e308, so the quotient is
    # within 1e608, far inside the decimal context's range; it is compared with the room
    # left before it becomes an int (a huge one would take minutes to build).
    span = (b - a) / step
    if span < 0:
        hint = f"{lo.strip()}..{hi.strip()}:{-step}"
        raise UsageError(f"{label}: the range {item} is empty (the step points away from the "
                         f"end); expected e.g. {hint}")
    if span >= room:
        many = f"{int(span) + 1:,}" if span < 10**15 else f"about 1e{span.adjusted()}"
        raise UsageError(f"{label}: {many} values, more than --max-points {limit:,}; take a "
                         "larger step or raise --max-points")
    n = int(span.to_integral_value(rounding=ROUND_FLOOR)) + 1
    whole = all(_is_int_text(t) for t in (lo, hi, step_text if colon else "1"))
    return [int(a + k * step) if whole else float(a + k * step) for k in range(n)]


def _is_int_text(text: str) -> bool:
    try:
        int(text.strip())
    except ValueError:
        return False
    return True


def _zip_groups(zips: Sequence[str], swept: Mapping[str, Sequence[Value]],
                fixed: Mapping[str, str]) -> list[tuple[str, ...]]:
    groups: list[tuple[str, ...]] = []
    seen: set[str] = set()
    for text in zips:
        names = tuple(n.strip() for n in text.split(","))
        for name in names:
            if name in fixed:
                raise UsageError(f"--zip {text}: {name} has a single value; --zip moves swept "
                                 "variables together, e.g. --set width=1.0,1.1 --set res=224,240")
            if name not in swept:
                raise UsageError(f"--zip {text}: no --set {name or '?'}=... sweeps {name!r}; "
                                 f"swept: {', '.join(swept)}")
            if name in seen:
                raise UsageError(f"--zip {text}: {name} is already zipped; a variable moves "
                                 "with one group")
            seen.add(name)
        lengths = {len(swept[n]) for n in names}
        if len(lengths) > 1:
            counts = ", ".join(f"{n} has {len(swept[n])}" for n in names)
            raise UsageError(f"--zip {text}: zipped variables need equally many values; {counts}")
        groups.append(names)
    return groups


def _axes(swept: Mapping[str, tuple[Value, ...]],
          groups: Sequence[tuple[str, ...]]) -> list[Axis]:
    """One axis per swept variable or zip group, in the order the --set options came."""
    group_of = {name: g for g in groups for name in g}
    axes: list[Axis] = []
    done: set[str] = set()
    for name in swept:
        if name in done:
            continue
        names = group_of.get(name, (name,))
        done.update(names)
        axes.append(Axis(names, tuple(zip(*(swept[n] for n in names), strict=True))))
    return axes


def check_plan(plan: Plan, defaults: Mapping[str, Any]) -> None:
    """Every swept variable exists in the spec and takes values of its default's type."""
    for name in plan.names:
        if name == BATCH:
            continue
        if name not in defaults:
            known = ", ".join(defaults) or "(none)"
            raise UsageError(f"--set {name}: the spec has no variable {name!r}; known: {known}")
        default = defaults[name]
        axis = next(a for a in plan.axes if name in a.names)
        k = axis.names.index(name)
        for step in axis.values:
            if not _same_kind(step[k], default):
                raise UsageError(f"--set {name}: {step[k]!r} is not {_kind(default)}, as the "
                                 f"spec's default {default!r} is")


def _same_kind(value: Value, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if isinstance(default, int):
        return isinstance(value, int)
    return isinstance(default, float) and isinstance(value, int | float)


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "a whole number"
    if isinstance(default, float):
        return "a number"
    return f"settable by a sweep (it is a {type(default).__name__}; give it one value)"
