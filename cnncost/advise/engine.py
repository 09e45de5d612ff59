"""Run every registered rule on a spec, count each proposed rewrite, keep what pays.

Each proposal's document is written out as YAML text (vars with the --set values baked in),
compiled and counted like any spec: the effect reported is the difference between two
counted tables, never an estimate, and the text is what ``--emit`` writes. Results are
frozen dataclasses; ``Advice.to_dict()`` is the ``cnncost.advice/2`` document.

Every finding has two effects, kept apart: the model's (``effect``, its totals, and
``model_rf``, see ``model_receptive_field``) and the rewritten layers' (``layer_effect``,
their params and MACs, and ``layers_rf``, the receptive field at the output of the last).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cnncost.advise import rules as _rules  # noqa: F401  (registers the rules)
from cnncost.advise.registry import ADVICE_RULES, Context, Goal, Proposal, Rule
from cnncost.advise.rewrite import dump, load_doc, with_vars
from cnncost.display import repr_html
from cnncost.errors import CnnCostError, UsageError
from cnncost.io import file_name, read_text
from cnncost.spec import MAX_FILE_BYTES, ModelSpec, parse_spec
from cnncost.table import CostRow, CostTable, final_receptive_field, relocated

SCHEMA = "cnncost.advice/2"
DEFAULT_MIN_SAVING = 0.05
EFFECT_FIELDS = ("params", "macs", "activation_bytes", "peak_memory_bytes")


@dataclass(frozen=True)
class Change:
    """One figure before and after a rewrite."""

    before: int
    after: int

    @property
    def ratio(self) -> float | None:
        return self.after / self.before if self.before else None

    @property
    def saving(self) -> float:
        """1 - after / before (negative when the rewrite costs more)."""
        return 1 - self.after / self.before if self.before else 0.0

    def to_dict(self) -> dict[str, Any]:
        ratio = self.ratio
        return {"before": self.before, "after": self.after,
                "ratio": None if ratio is None else round(ratio, 6)}


@dataclass(frozen=True)
class Finding:
    """A rule's counted suggestion."""

    rule: Rule
    proposal: Proposal
    effect: Mapping[str, Change]           # model totals: params, macs, activation/peak bytes
    layer_effect: Mapping[str, Change]     # the rewritten layers: params, macs
    # Receptive fields (along the first spatial axis), kept apart: the model's (see
    # model_receptive_field) and the one at the output of the last rewritten layer.
    model_rf: Change
    layers_rf: Change
    spec_file: str                         # the file name --emit writes
    spec_text: str                         # the rewritten spec (what was counted)
    # --latency: the model's latency predicted from the machine's calibration, before and
    # after the rewrite (ms); None without a calibration.
    latency_ms: tuple[float, float] | None = None

    @property
    def saving(self) -> float:
        """The larger relative saving of the model's params and MACs."""
        return max(self.effect["params"].saving, self.effect["macs"].saving)

    @property
    def layer_saving(self) -> float:
        """The larger relative saving of the rewritten layers' params and MACs."""
        return max(self.layer_effect["params"].saving, self.layer_effect["macs"].saving)

    def to_dict(self) -> dict[str, Any]:
        p = self.proposal
        return {
            "rule": self.rule.name,
            "goal": self.rule.goal.value,
            "guideline": self.rule.guideline,
            "lecture": self.rule.lecture,
            "layers": list(p.layers),
            "source": p.source,
            "shared": p.shared or None,
            "found": p.found,
            "rewrite": p.rewrite,
            "expected": p.expected or None,
            "changes_function": p.changes_function,
            "note": p.note,
            "saving": round(self.saving, 6),
            "effect": {k: c.to_dict() for k, c in self.effect.items()},
            "layer_effect": {k: c.to_dict() for k, c in self.layer_effect.items()},
            "receptive_field": {"model": self.model_rf.to_dict(),
                                "layers": self.layers_rf.to_dict(),
                                "layers_at": p.layers[-1]},
            "spec_file": self.spec_file,
            **({} if self.latency_ms is None else {"latency_ms": {
                "before": self.latency_ms[0], "after": self.latency_ms[1],
                "ratio": round(self.latency_ms[1] / self.latency_ms[0], 6)
                if self.latency_ms[0] else None}}),
        }


@dataclass(frozen=True)
class Advice:
    """Every finding for one spec, largest saving first."""

    _repr_html_ = repr_html  # in a notebook: its HTML page (cnncost.display)

    model: str
    source: str
    input: tuple[int, ...]
    vars: Mapping[str, Any]
    totals: Mapping[str, int]
    min_saving: float
    findings: tuple[Finding, ...]
    # Proposals that did not become findings: (rule, first layer, why). For tests and --debug.
    dropped: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The ``cnncost.advice/2`` document (see the README)."""
        return {
            "schema": SCHEMA,
            "model": self.model,
            "source": self.source,
            "input": list(self.input),
            "vars": dict(sorted(self.vars.items())),
            "min_saving": self.min_saving,
            "totals": dict(self.totals),
            "rules": [{"name": r.name, "goal": r.goal.value, "guideline": r.guideline,
                       "threshold": r.threshold} for r in ADVICE_RULES.values()],
            "findings": [f.to_dict() for f in self.findings],
        }


def parse_saving(text: str) -> float:
    """'5%' or '0.05' -> 0.05."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"--min-saving {text!r}: expected a percentage like 5% or a "
                         "fraction like 0.05") from None
    if not 0 <= value < 1:
        raise UsageError(f"--min-saving {text!r}: expected a saving from 0% to below 100%")
    return value


def advise_spec(path: str | Path, overrides: Mapping[str, Any] | None = None,
                min_saving: float = DEFAULT_MIN_SAVING, source: str | None = None,
                rules: Iterable[str] | None = None, calibration: Any = None) -> Advice:
    """Run the rules (all, or those named) on the spec file at ``path``; with a
    ``calibration`` (cnncost.predict), each finding also has the model's predicted latency
    before and after."""
    from cnncost.count.engines import count_loaded

    file = str(path)
    text = read_text(path, MAX_FILE_BYTES, "spec")
    values = dict(overrides or {})
    spec = parse_spec(text, file, values)
    table = count_loaded(spec, source=source or file)
    ctx = Context(spec, load_doc(text, file), table)
    chosen = [ADVICE_RULES[n] for n in rules] if rules is not None else ADVICE_RULES.values()
    findings: list[Finding] = []
    dropped: list[tuple[str, str, str]] = []
    for rule in chosen:
        for proposal in rule.find(ctx):
            finding, why = _evaluate(rule, proposal, ctx, values, min_saving)
            if finding is None:
                dropped.append((rule.name, proposal.layers[0], why))
            else:
                findings.append(_with_latency(finding, table, calibration))
    findings.sort(key=lambda f: (-f.saving, f.rule.name, f.proposal.layers))
    totals = {k: getattr(table.totals, k) for k in EFFECT_FIELDS}
    totals["receptive_field"] = model_receptive_field(table)
    return Advice(spec.name, source or file, table.input, values, totals, min_saving,
                  tuple(findings), tuple(dropped))


def _evaluate(rule: Rule, p: Proposal, ctx: Context, values: Mapping[str, Any],
              min_saving: float) -> tuple[Finding | None, str]:
    spec, table = ctx.spec, ctx.table
    if table.source != spec.file:
        p = replace(p, source=relocated(p.source, spec.file, table.source))
    # The rewrite's file name (what --emit writes in its folder): from the spec's own name,
    # which may hold anything ("../x", "/etc/y"), made one safe name.
    spec_file = file_name(f"{spec.name}.{rule.name}.{_slug(p.layers[0])}", ".yaml")
    doc = with_vars(p.doc, values)
    doc["name"] = f"{spec.name}_{rule.name.replace('-', '_')}"
    doc["description"] = f"{spec.name} with {p.rewrite} (cnncost advise: {rule.name})"
    for key in ("reference", "explain"):  # published figures and slide ratios of the original
        doc.pop(key, None)
    text = dump(_ordered(doc), [
        f"{spec.name}, rewritten by `cnncost advise` ({rule.name}) at {p.source}:",
        f"{p.rewrite}.",
        "The original's comments are not kept."])
    try:
        new_spec: ModelSpec = parse_spec(text, spec_file)
    except CnnCostError as exc:
        return None, f"the rewrite does not compile: {exc}"
    if new_spec.output_shape != spec.output_shape:
        return None, (f"the rewrite changes the output shape {spec.output_shape} -> "
                      f"{new_spec.output_shape}")
    from cnncost.count.engines import count_loaded

    new = count_loaded(new_spec, source=spec_file)
    effect = {k: Change(getattr(table.totals, k), getattr(new.totals, k)) for k in EFFECT_FIELDS}
    anchors = p.anchors or p.layers
    old_rows = [r for r in table.layers if r.name in p.layers]
    new_rows = [r for r in new.layers if _under(r.name, anchors)]
    before, after = _sum(old_rows), _sum(new_rows)
    layer_effect = {k: Change(before[k], after[k]) for k in ("params", "macs")}
    model_rf = Change(model_receptive_field(table), model_receptive_field(new))
    layers_rf = Change(_last_rf(old_rows), _last_rf(new_rows))
    finding = Finding(rule, p, effect, layer_effect, model_rf, layers_rf, spec_file, text)
    if rule.goal is Goal.COST:
        if finding.layer_saving < rule.min_layer_saving:
            return None, (f"saves {finding.layer_saving:.1%} of the rewritten layers, below "
                          f"the rule's {rule.min_layer_saving:.0%}")
        if finding.saving < min_saving:
            return None, f"saves {finding.saving:.1%} of the model, below {min_saving:.0%}"
    return finding, ""


def _with_latency(finding: Finding, table: CostTable, calibration: Any) -> Finding:
    """The finding with the model's predicted latency before and after (a calibration's)."""
    if calibration is None:
        return finding
    from cnncost.count.engines import count_loaded
    from cnncost.predict.model import predict_table

    new = count_loaded(parse_spec(finding.spec_text, finding.spec_file),
                       source=finding.spec_file)
    return replace(finding, latency_ms=(predict_table(table, calibration).latency_ms,
                                        predict_table(new, calibration).latency_ms))


def _ordered(doc: dict[str, Any]) -> dict[str, Any]:
    order = ("name", "description", "source", "input", "vars", "blocks", "layers")
    return {**{k: doc[k] for k in order if k in doc},
            **{k: v for k, v in doc.items() if k not in order}}


def _slug(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", path)


def _under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _sum(rows: Iterable[CostRow]) -> dict[str, int]:
    out = {"params": 0, "macs": 0}
    for r in rows:
        out["params"] += r.params
        out["macs"] += r.macs
    return out


def _last_rf(rows: list[CostRow]) -> int:
    """Receptive field at the output of the last of ``rows`` (0 if none)."""
    return int(rows[-1].receptive_field or 0) if rows else 0


def model_receptive_field(table: CostTable) -> int:
    """The model's receptive field (cnncost.table.final_receptive_field): that of the last
    layer whose output still has a spatial extent (what a global pool or a flatten reads)."""
    return final_receptive_field(table)
