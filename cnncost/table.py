"""Cost tables: frozen results and their JSON document (pure Python, no torch).

The JSON document (schema ``cnncost.report/1``) is what ``--format json``, the files in
``reports/`` and ``Report.to_dict()`` share. The dataclasses below declare it: each field is
a key (its annotation the key's type, ``field(metadata=...)`` where that is not enough; see
cnncost.schema), so ``report_schema()`` (``cnncost schema report``), the document and what
``cnncost check`` compares all follow from a field written once. ``layers`` holds one entry
per leaf layer in execution order; its params, buffers, macs, flops and output_bytes sum
exactly to the totals. All counts are exact integers.

A training step's document (``--mode train``) adds ``"mode": "train"`` after ``policy``, the
backward of each layer (TrainCost) and the step's totals (TrainTotals); ``macs``/``flops``
are then the forward's, in training behaviour, ``training_memory_bytes`` the step's
simulated peak (cnncost.count.train) and ``peak_memory_bytes`` that peak without optimizer
state. An inference document never carries them, and its bytes are unchanged.

``source``, ``input``, ``dtype``, ``policy``, ``vars`` and ``input_given`` are the recipe
``cnncost check`` recomputes a committed report from: ``source`` is a spec file
(``specs/x.yaml`` for a bundled spec), a bundled name or ``pkg.module:factory``; ``vars``
are the ``--set`` overrides as given ({} = the spec's defaults); ``input_given`` says
whether ``--input`` was given (false: the spec's own input, so a change of the spec's
default input shows as drift); the batch size is ``input[0]``. A layer's ``source`` is
``file:line`` of the spec line it came from. Block-level aggregates (``--depth``) are a
rendering (``blocks``), never in a committed report. The text is deterministic: same table,
same bytes (keys in a fixed order, lists of numbers on one line).

Keys that only appear where they say something: ``frozen_params`` (in ``totals`` and in a
layer, right after ``params``: parameters with ``requires_grad=False``; ``params`` counts the
trainable ones), and ``counted_on``: ``"cpu"`` with ``counted_on_reason`` for a model whose
forward needs real values (detection networks: ``nonzero``, data-dependent shapes; such
counts hold for the input the counter made, ``torch.randn`` seeded with 0, and the model's
own weights).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, ClassVar, NamedTuple

from cnncost.display import repr_html
from cnncost.schema import (
    DRIFT,
    FLAT,
    NODE,
    SKIP,
    default_of,
    document_fields,
    document_schema,
    dumps,
    object_schema,
    ref,
)

SCHEMA = "cnncost.report/1"
SUMMED = ("params", "buffers", "macs", "flops", "output_bytes")
TRAIN_SUMMED = ("backward_macs", "grad_input_macs", "grad_weight_macs", "backward_flops",
                "saved_bytes")


class Policy(str, Enum):
    """Which ops count toward FLOPs."""

    ALL = "all"
    CONV_LINEAR = "conv+linear"


class Mode(str, Enum):
    """What is counted: one forward pass, or one training step."""

    INFERENCE = "inference"
    TRAIN = "train"


# The analysis dtypes, with their bytes per element.
DTYPE_BYTES: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}

# Field metadata (cnncost.schema): the document's declaration is the dataclass. TEXT: words
# about the figures (a name, a formula, where it came from), which check does not compare.
TEXT = {DRIFT: False}
IN_MEMORY = {SKIP: True}  # not in the document


def _one_of(values: Iterable[str]) -> dict[str, Any]:
    return {NODE: {"enum": list(values)}}


def _text(node: Mapping[str, Any]) -> dict[str, Any]:
    return {DRIFT: False, NODE: dict(node)}


Shape = tuple[int, ...]


class Factors(NamedTuple):
    """How an op's MACs were counted: ``[batch x] (out) x (per_out)``.

    MACs = batch x prod(out) x prod(per_out): ``out`` is the output volume the MACs are
    spread over (conv: H_out, W_out, C_out; matmul: M, N), ``per_out`` the MACs per output
    value (conv: K_h, K_w, C_in/groups; matmul: K). ``batch`` is the leading factor as
    written, None where none is written (folded into ``out``, or a batch of 1 for a conv).
    ``weight`` are the weight operand's dims the way the slides write them (K_h x K_w x
    C_in/groups x C_out; K x N for a linear layer), None when the op multiplies two
    activations (bmm). (A named tuple: the formulas and the analytic engine's lowerings
    make one per conv or matmul, and a tuple costs a fraction of a dataclass's dict.)
    """

    out: Shape
    per_out: Shape
    batch: int | None = None
    weight: Shape | None = None

    @property
    def macs(self) -> int:
        return (self.batch or 1) * math.prod(self.out) * math.prod(self.per_out)

    def text(self) -> str:
        """The factors as a formula: ``2 x (28x28x32) x (5x5x192)``, ``(3x7) x 5``."""
        lead = "" if self.batch is None else f"{self.batch} x "
        return f"{lead}{_group(self.out)} x {_group(self.per_out)}"


def formula_text(factors: Sequence[Factors]) -> str:
    """A row's ``formula``: each op's factors and MACs, ``(4x4x5) x (3x3x3) = 2,160 + ...``."""
    if len(factors) == 1:  # most rows: one conv or matmul
        return _term(factors[0])
    return " + ".join([_term(f) for f in factors])


def _term(f: Factors) -> str:
    out, per_out, batch = f.out, f.per_out, f.batch
    macs = (batch or 1) * math.prod(out) * math.prod(per_out)
    pattern = _TERMS.get((len(out), len(per_out)))  # a conv's (3, 3): one %-format
    if pattern and type(out) is tuple and type(per_out) is tuple:
        text = pattern % (*out, *per_out, format(macs, ","))
        return text if batch is None else f"{batch} x {text}"
    lead = "" if batch is None else f"{batch} x "
    return f"{lead}{_group(out)} x {_group(per_out)} = {macs:,}"


def _group(dims: Shape) -> str:
    """Dims multiplied out: one stands alone, several are grouped, ``(5x5x256)``."""
    pattern = _GROUPS.get(len(dims))  # %-formatting: the commonest forms at a third the cost
    if pattern and type(dims) is tuple:
        return pattern % dims
    return str(dims[0]) if len(dims) == 1 else "(" + "x".join(map(str, dims)) + ")"


_GROUPS = {1: "%s", 2: "(%sx%s)", 3: "(%sx%sx%s)", 4: "(%sx%sx%sx%s)"}
# the commonest terms, (out dims, per-output dims): conv 2-D, linear, matmul
_TERMS = {(3, 3): "(%sx%sx%s) x (%sx%sx%s) = %s", (2, 1): "(%sx%s) x %s = %s",
          (3, 1): "(%sx%sx%s) x %s = %s", (2, 3): "(%sx%s) x (%sx%sx%s) = %s"}


@dataclass(frozen=True)
class TrainCost:
    """A layer's part of a training step's backward: MACs of each gradient, FLOPs, and the
    bytes autograd saved for it."""

    grad_input_macs: int = 0
    grad_weight_macs: int = 0
    backward_flops: int = 0
    saved_bytes: int = 0
    backward_formula: str = field(default="", metadata=TEXT)
    # The factors of its backward MACs, each with the gradient it computes ("input" or
    # "weight"). In memory only, as CostRow.factors.
    factors: tuple[tuple[str, Factors], ...] = field(default=(), compare=False, repr=False,
                                                     metadata=IN_MEMORY)
    DERIVED: ClassVar[Mapping[str, Any]] = {"backward_macs": ref("count")}

    @property
    def backward_macs(self) -> int:
        return self.grad_input_macs + self.grad_weight_macs

    def to_dict(self) -> dict[str, Any]:
        return {"backward_macs": self.backward_macs, **_document(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainCost | None:
        if "backward_macs" not in d:
            return None
        return cls(**_known(cls, d))


@dataclass(frozen=True)
class CostRow:
    """The cost of one layer (graph node, or leaf module of an arbitrary nn.Module)."""

    name: str = field(metadata=TEXT)  # (check matches rows by it)
    kind: str
    input_shape: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    params: int = 0
    buffers: int = 0
    macs: int = 0
    flops: int = 0
    output_bytes: int = 0
    receptive_field: int | None = None  # the largest extent over the spatial dims
    # Its extent per spatial dim of the input, only where they differ (two 1x7 convs:
    # [1, 13]; receptive_field 13); a square field leaves it out.
    receptive_field_axes: tuple[int, ...] | None = field(default=None,
                                                         metadata={NODE: ref("shape")})
    formula: str = field(default="", metadata=TEXT)
    uncounted: Mapping[str, int] = field(default_factory=dict)
    calls: int = 1
    source: str = field(default="", metadata=TEXT)
    # The factors of its ops' MACs as counted (``formula`` is their text). In memory only:
    # not in the JSON document, not compared.
    factors: tuple[Factors, ...] = field(default=(), compare=False, repr=False,
                                         metadata=IN_MEMORY)
    # Parameters that do not train (requires_grad=False); ``params`` counts the trainable.
    frozen_params: int = 0
    # train mode: its backward, whose keys the layer's document holds
    train: TrainCost | None = field(default=None, metadata={FLAT: TrainCost})

    def to_dict(self) -> dict[str, Any]:
        d = _frozen_after_params(_document(self))
        if self.receptive_field_axes is None:  # square: reports keep their bytes
            del d["receptive_field_axes"]
        if self.train is not None:
            d.update(self.train.to_dict())
        return d

    def value(self, key: str) -> int:
        """A summed field, of the row or of its backward (0 without one)."""
        if key in TRAIN_SUMMED:
            return getattr(self.train, key) if self.train is not None else 0
        return int(getattr(self, key))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CostRow:
        kw = _known(cls, d)
        kw["input_shape"] = tuple(tuple(s) for s in d.get("input_shape", ()))
        kw["output_shape"] = tuple(d.get("output_shape", ()))
        kw["uncounted"] = dict(d.get("uncounted", {}))
        if kw.get("receptive_field_axes") is not None:
            kw["receptive_field_axes"] = tuple(kw["receptive_field_axes"])
        return cls(**kw, train=TrainCost.from_dict(d))


class _Formula:
    """``CostRow.formula``: a row made with None there (the analytic engine makes its rows
    so) has the text rendered from its factors when first read, and kept. A data
    descriptor: it is read before the instance's own dict, where the text is kept."""

    def __get__(self, row: CostRow | None, owner: type | None = None) -> str:
        if row is None:
            return ""  # the field's default
        d = row.__dict__
        text: str | None = d.get("formula")
        if text is None:
            text = d["formula"] = formula_text(row.factors) if row.factors else ""
        return text

    def __set__(self, row: CostRow, text: str) -> None:
        row.__dict__["formula"] = text  # (the dataclass's __init__ sets each field so)


type.__setattr__(CostRow, "formula", _Formula())


@dataclass(frozen=True)
class TrainTotals:
    """A training step's whole-model figures (train mode); the summed ones equal the sum
    over the rows. Per optimizer: ``sgd``, ``sgd_momentum``, ``adam``."""

    backward_macs: int
    grad_input_macs: int
    grad_weight_macs: int
    backward_flops: int
    trainable_params: int
    grad_bytes: int
    saved_activation_bytes: int
    optimizer_state_bytes: Mapping[str, int]
    optimizer_flops: Mapping[str, int]
    step_flops: Mapping[str, int]
    # The forward's figures (Totals.macs and .flops), each written before its backward's.
    DERIVED: ClassVar[Mapping[str, Any]] = {"forward_macs": ref("count"),
                                            "forward_flops": ref("count")}

    def to_dict(self, macs: int, flops: int) -> dict[str, Any]:
        forward = {"backward_macs": ("forward_macs", macs),
                   "backward_flops": ("forward_flops", flops)}
        d: dict[str, Any] = {}
        for key, value in _document(self).items():
            if key in forward:
                d[forward[key][0]] = forward[key][1]
            d[key] = value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainTotals | None:
        if "backward_macs" not in d:
            return None
        return cls(**_known(cls, d))


@dataclass(frozen=True)
class Totals:
    """Whole-model figures; the summed ones equal the sum over the layer rows."""

    params: int
    buffers: int
    macs: int
    flops: int
    activation_bytes: int
    param_bytes: int
    buffer_bytes: int
    input_bytes: int
    peak_activation_bytes: int
    peak_memory_bytes: int
    training_memory_bytes: Mapping[str, int]
    frozen_params: int = 0  # requires_grad=False; ``params`` is the trainable ones
    # train mode: the step's figures, whose keys the totals' document holds
    train: TrainTotals | None = field(default=None, metadata={FLAT: TrainTotals})

    def to_dict(self) -> dict[str, Any]:
        d = _frozen_after_params(_document(self))
        if self.train is not None:
            d.update(self.train.to_dict(self.macs, self.flops))
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Totals:
        return cls(**_known(cls, d), train=TrainTotals.from_dict(d))


def _plain(value: Any) -> Any:
    """A field's value as JSON holds it: tuples as lists, mappings as dicts."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _document(obj: object) -> dict[str, Any]:
    """A dataclass's own document fields (not the FLAT ones), as JSON holds them; counts of
    uncounted ops sorted by op."""
    d = {}
    cls: type = type(obj)
    for f in document_fields(cls):
        if FLAT not in f.metadata:
            value = getattr(obj, f.name)
            d[f.name] = _plain(dict(sorted(value.items())) if f.name == "uncounted" else value)
    return d


def _known(cls: type, d: Mapping[str, Any]) -> dict[str, Any]:
    """The values in ``d`` of the dataclass's own document fields, as given."""
    return {f.name: d[f.name] for f in document_fields(cls)
            if FLAT not in f.metadata and f.name in d}


def _frozen_after_params(d: dict[str, Any]) -> dict[str, Any]:
    """``frozen_params`` right after ``params`` where there are some, else left out (so the
    documents of models that train every parameter keep their bytes)."""
    frozen = d.pop("frozen_params")
    if not frozen:
        return d
    out: dict[str, Any] = {}
    for key, value in d.items():
        out[key] = value
        if key == "params":
            out["frozen_params"] = frozen
    return out


@dataclass(frozen=True)
class CostTable:
    """A model's cost report: its rows, totals and the conventions used to count them."""

    _repr_html_ = repr_html  # in a notebook: its HTML page (cnncost.display)

    model: str = field(metadata=TEXT)
    source: str = field(metadata=_text(
        {"type": "string", "minLength": 1, "title": "the spec or factory it was counted from"}))
    input: tuple[int, ...] = field(metadata={NODE: {
        "type": "array", "minItems": 2, "prefixItems": [{"type": "integer", "minimum": 1}],
        "items": ref("count"), "title": "[batch, channels, ...] with batch >= 1"}})
    dtype: str = field(metadata=_one_of(DTYPE_BYTES))
    policy: str = field(metadata=_one_of(p.value for p in Policy))
    conventions: tuple[str, ...] = field(metadata=TEXT)
    layers: tuple[CostRow, ...] = field(metadata=_text(
        {"type": "array", "items": ref("layer"), "title": "a list of layers"}))
    totals: Totals = field(metadata=_text(ref("totals")))
    uncounted: Mapping[str, int] = field(default_factory=dict)
    description: str = field(default="", metadata=TEXT)
    # --set values as given: a number, bool, string or a list of them
    vars: Mapping[str, Any] = field(default_factory=dict, metadata=_text(
        {"type": "object", "additionalProperties": ref("set_value")}))
    input_given: bool = field(default=False, metadata=TEXT)
    # or "cpu": real tensors (a forward that needs real values)
    counted_on: str = field(default="meta", metadata=_one_of(("meta", "cpu")))
    counted_on_reason: str = field(default="", metadata=TEXT)
    # or "train": one training step (cnncost.count.train)
    mode: str = field(default="inference", metadata=_one_of(m.value for m in Mode))
    DERIVED: ClassVar[Mapping[str, Any]] = {"schema": {"const": SCHEMA}}

    @property
    def train(self) -> bool:
        return self.mode == "train"

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (see the module docstring)."""
        mode = {"mode": self.mode} if self.train else {}  # inference documents: unchanged
        doc = {
            "schema": SCHEMA,
            "model": self.model,
            "description": self.description,
            "source": self.source,
            "input": list(self.input),
            "dtype": self.dtype,
            "policy": self.policy,
            **mode,
            "vars": dict(sorted(self.vars.items())),
            "input_given": self.input_given,
            "conventions": list(self.conventions),
            "totals": self.totals.to_dict(),
            "uncounted": dict(sorted(self.uncounted.items())),
            "layers": [row.to_dict() for row in self.layers],
        }
        if self.counted_on != "meta":  # only where it is not the default: reports of
            doc["counted_on"] = self.counted_on  # meta counts keep their bytes
            doc["counted_on_reason"] = self.counted_on_reason
        # Any other field (one added later) where it says something, after the rest.
        for f in document_fields(CostTable):
            value = getattr(self, f.name)
            if f.name not in doc and value != default_of(f):
                doc[f.name] = _plain(value)
        return doc

    def to_json(self) -> str:
        """Deterministic JSON text (same table, same bytes)."""
        return dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CostTable:
        """The table of a report document (``cnncost.check.load_report`` validates one
        against ``report_schema()`` first)."""
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document (schema={d.get('schema')!r})")
        kw = _known(cls, d)
        kw.update(input=tuple(d["input"]), conventions=tuple(d.get("conventions", ())),
                  layers=tuple(CostRow.from_dict(r) for r in d["layers"]),
                  totals=Totals.from_dict(d["totals"]), uncounted=dict(d.get("uncounted", {})),
                  vars=dict(d.get("vars", {})))
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> CostTable:
        return cls.from_dict(json.loads(text))

    def recorded(self, vars: Mapping[str, Any] | None, input_given: bool,
                 file: str | None = None) -> CostTable:
        """This table with its recipe (--set vars, --input given?) recorded; row sources
        that start with the spec's ``file`` are rewritten to start with ``self.source``, and
        when ``self.source`` is the tail of ``file`` (a bundled ``specs/x.yaml``), so are rows
        from the files next to it (the base spec a variant extends)."""
        rows = self.layers
        if file and file != self.source:
            rows = tuple(replace(r, source=relocated(r.source, file, self.source)) for r in rows)
        return replace(self, vars=dict(vars or {}), input_given=input_given, layers=rows)

    def row(self, name: str) -> CostRow:
        """The row called ``name``; KeyError names close matches."""
        for r in self.layers:
            if r.name == name:
                return r
        close = [r.name for r in self.layers if name in r.name][:5]
        raise KeyError(f"no layer {name!r}" + (f"; did you mean {', '.join(close)}" if close
                                                 else ""))


def final_receptive_field(table: CostTable) -> int:
    """The model's receptive field: the last layer's whose output still has a spatial extent
    (a global pool's or classifier's covers what that layer saw), 0 if no layer has one."""
    for r in reversed(table.layers):
        if len(r.output_shape) > 2 and any(d > 1 for d in r.output_shape[2:]):
            return int(r.receptive_field or 0)
    return int(table.layers[-1].receptive_field or 0) if table.layers else 0


def report_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a ``cnncost.report/1`` document, from the
    dataclasses above: what ``cnncost schema report`` prints and ``check`` validates with."""
    train = [*TrainTotals.DERIVED, *(f.name for f in document_fields(TrainTotals))]
    root = object_schema(CostTable)
    root["allOf"] = [{  # a training step's totals hold the step's figures
        "if": {"properties": {"mode": {"const": Mode.TRAIN.value}}, "required": ["mode"]},
        "then": {"properties": {"totals": {"required": train}}}}]
    # With --depth, the blocks' sums too (a rendering: never in a committed report).
    root["properties"]["blocks"] = {"type": "array", "items": ref("block")}
    return document_schema("report/1", f"a {SCHEMA} document: a model's cost table", root, {
        "layer": object_schema(CostRow), "totals": object_schema(Totals),
        "block": object_schema(BlockRow),
        "set_value": {"type": ["string", "number", "boolean", "array"],
                      "items": {"type": ["string", "number", "boolean"]},
                      "title": "a number, bool, string or list of them"}})


def relocated(where: str, file: str, source: str) -> str:
    """A ``FILE:LINE`` of a spec loaded from ``file`` and recorded as ``source``: ``file``
    becomes ``source``, and when ``source`` is the tail of ``file`` (a bundled ``specs/x.yaml``)
    so do the files next to it (the base spec a variant extends)."""
    if where.startswith(file + ":"):
        return source + where[len(file):]
    if file.endswith("/" + source) and where.startswith(file[:-len(source)]):
        return where[len(file) - len(source):]
    return where


@dataclass(frozen=True)
class BlockRow:
    """Rows aggregated to a name prefix (``--depth``): sums of the summed fields."""

    name: str
    layers: int
    output_shape: tuple[int, ...]
    params: int
    buffers: int
    macs: int
    flops: int
    output_bytes: int
    # Train mode: the sums of the rows' backward figures (TRAIN_SUMMED), else empty.
    train: Mapping[str, int] = field(default_factory=dict, metadata={
        FLAT: {k: ref("count") for k in TRAIN_SUMMED}})

    def value(self, key: str) -> int:
        """A summed field (a backward one is 0 outside train mode)."""
        return self.train.get(key, 0) if key in TRAIN_SUMMED else int(getattr(self, key))

    def to_dict(self) -> dict[str, Any]:
        """An entry of a report document's ``blocks`` (``analyze --depth N --format json``)."""
        return {**_document(self), **self.train}


def collapse(rows: Sequence[CostRow], depth: int) -> list[BlockRow]:
    """Group rows by the first ``depth`` dotted parts of their names, in first-seen order."""
    groups: dict[str, list[CostRow]] = {}
    for r in rows:
        key = ".".join(r.name.split(".")[:depth])
        groups.setdefault(key, []).append(r)
    out = []
    for key, members in groups.items():
        sums = {f: sum(getattr(m, f) for m in members) for f in SUMMED}
        train = ({f: sum(m.value(f) for m in members) for f in TRAIN_SUMMED}
                 if any(m.train is not None for m in members) else {})
        out.append(BlockRow(key, len(members), members[-1].output_shape, **sums, train=train))
    return out


SORT_FIELDS = ("macs", "flops", "params", "output_bytes")


def select_rows(table: CostTable, sort: str | None = None,
                top: int | None = None) -> list[CostRow]:
    """Rows in execution order, or sorted descending by a numeric field, cut to ``top``."""
    rows = list(table.layers)
    if sort:
        rows.sort(key=lambda r: getattr(r, sort), reverse=True)
    if top:
        rows = rows[:top]
    return rows


def table_rows(table: CostTable, depth: int | None = None, sort: str | None = None,
               top: int | None = None) -> list[CostRow] | list[BlockRow]:
    """The rows a rendering shows: layers, or blocks with ``depth``; sorted; cut to ``top``."""
    if depth is None:
        return select_rows(table, sort, top)
    blocks = collapse(table.layers, depth)
    if sort:
        blocks.sort(key=lambda r: getattr(r, sort), reverse=True)
    return blocks[:top] if top else blocks


def row_count(table: CostTable, depth: int | None = None) -> int:
    """How many rows the whole table has: layers, or blocks with ``depth``."""
    return len(table.layers) if depth is None else len(collapse(table.layers, depth))


def sum_rows(rows: Iterable[CostRow]) -> dict[str, int]:
    """Sum the summed fields (and, in train mode, the backward ones) over rows."""
    totals = dict.fromkeys((*SUMMED, *TRAIN_SUMMED), 0)
    for r in rows:
        for f in totals:
            totals[f] += r.value(f)
    return totals
