"""Cost tables: frozen results and their JSON document (pure Python, no torch).

The JSON document (schema ``cnncost.report/1``) is what ``--format json``, the files in
``reports/`` and ``Report.to_dict()`` share:

    {"schema": "cnncost.report/1", "model": str, "source": str,
     "input": [N, C, H, W], "dtype": str, "policy": "all" | "conv+linear",
     "conventions": [str, ...],
     "totals": {"params", "buffers", "macs", "flops", "activation_bytes",
                "param_bytes", "buffer_bytes", "input_bytes", "peak_activation_bytes",
                "peak_memory_bytes", "training_memory_bytes": {"sgd", "sgd_momentum", "adam"}},
     "uncounted": {"aten::op": calls},
     "layers": [{"name", "kind", "input_shape": [[...], ...], "output_shape": [...],
                 "params", "buffers", "macs", "flops", "output_bytes",
                 "receptive_field", "formula", "uncounted", "calls", "source"}, ...]}

``layers`` holds one entry per leaf layer in execution order; its params, buffers, macs,
flops and output_bytes sum exactly to the totals. All counts are exact integers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA = "cnncost.report/1"
SUMMED = ("params", "buffers", "macs", "flops", "output_bytes")


@dataclass(frozen=True)
class CostRow:
    """The cost of one layer (graph node, or leaf module of an arbitrary nn.Module)."""

    name: str
    kind: str
    input_shape: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    params: int = 0
    buffers: int = 0
    macs: int = 0
    flops: int = 0
    output_bytes: int = 0
    receptive_field: int | None = None
    formula: str = ""
    uncounted: Mapping[str, int] = field(default_factory=dict)
    calls: int = 1
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = [list(s) for s in self.input_shape]
        d["output_shape"] = list(self.output_shape)
        d["uncounted"] = dict(sorted(self.uncounted.items()))
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CostRow:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["input_shape"] = tuple(tuple(s) for s in d.get("input_shape", ()))
        kw["output_shape"] = tuple(d.get("output_shape", ()))
        kw["uncounted"] = dict(d.get("uncounted", {}))
        return cls(**kw)


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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["training_memory_bytes"] = dict(self.training_memory_bytes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Totals:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class CostTable:
    """A model's cost report: its rows, totals and the conventions used to count them."""

    model: str
    source: str
    input: tuple[int, ...]
    dtype: str
    policy: str
    conventions: tuple[str, ...]
    layers: tuple[CostRow, ...]
    totals: Totals
    uncounted: Mapping[str, int] = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (see the module docstring)."""
        return {
            "schema": SCHEMA,
            "model": self.model,
            "description": self.description,
            "source": self.source,
            "input": list(self.input),
            "dtype": self.dtype,
            "policy": self.policy,
            "conventions": list(self.conventions),
            "totals": self.totals.to_dict(),
            "uncounted": dict(sorted(self.uncounted.items())),
            "layers": [row.to_dict() for row in self.layers],
        }

    def to_json(self) -> str:
        """Deterministic JSON text (same table, same bytes)."""
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CostTable:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document (schema={d.get('schema')!r})")
        return cls(
            model=d["model"],
            source=d.get("source", ""),
            input=tuple(d["input"]),
            dtype=d["dtype"],
            policy=d["policy"],
            conventions=tuple(d.get("conventions", ())),
            layers=tuple(CostRow.from_dict(r) for r in d["layers"]),
            totals=Totals.from_dict(d["totals"]),
            uncounted=dict(d.get("uncounted", {})),
            description=d.get("description", ""),
        )

    @classmethod
    def from_json(cls, text: str) -> CostTable:
        return cls.from_dict(json.loads(text))

    def row(self, name: str) -> CostRow:
        """The row called ``name``; KeyError names close matches."""
        for r in self.layers:
            if r.name == name:
                return r
        close = [r.name for r in self.layers if name in r.name][:5]
        raise KeyError(f"no layer {name!r}" + (f"; did you mean {', '.join(close)}" if close
                                                 else ""))


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


def collapse(rows: Sequence[CostRow], depth: int) -> list[BlockRow]:
    """Group rows by the first ``depth`` dotted parts of their names, in first-seen order."""
    groups: dict[str, list[CostRow]] = {}
    for r in rows:
        key = ".".join(r.name.split(".")[:depth])
        groups.setdefault(key, []).append(r)
    out = []
    for key, members in groups.items():
        sums = {f: sum(getattr(m, f) for m in members) for f in SUMMED}
        out.append(BlockRow(key, len(members), members[-1].output_shape, **sums))
    return out


def sum_rows(rows: Iterable[CostRow]) -> dict[str, int]:
    """Sum the summed fields over rows."""
    totals = dict.fromkeys(SUMMED, 0)
    for r in rows:
        for f in SUMMED:
            totals[f] += getattr(r, f)
    return totals
