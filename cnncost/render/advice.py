"""Render `cnncost advise` results: a terminal summary with details, Markdown, JSON, HTML.

Computes nothing: every figure is one an ``advise.Advice`` already holds (counted).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from cnncost.fmt import human, human_bytes, shape
from cnncost.render.console import literal
from cnncost.render.formats import md_code, md_fence, md_text, text_as
from cnncost.table import dumps

if TYPE_CHECKING:
    from rich.console import Group

    from cnncost.advise.engine import Advice, Change, Finding
    from cnncost.render.html import Wrap


class AdviceFormat(str, Enum):
    """Output formats of advise."""

    TABLE = "table"
    JSON = "json"
    MD = "md"
    HTML = "html"


def _pct(change: Change) -> str:
    ratio = change.ratio
    if ratio is None or change.before == change.after:
        return "="
    return f"{100 * (ratio - 1):+.1f}%"


def _arrow(change: Change, fmt: Any = human) -> str:
    if change.before == change.after:
        return f"{fmt(change.before)} ="
    return f"{fmt(change.before)} -> {fmt(change.after)} ({_pct(change)})"


def _short(change: Change) -> str:
    return f"{human(change.before)} -> {human(change.after)}"


def _exact(change: Change) -> str:
    if change.before == change.after:
        return f"{change.before:,} ="
    return f"{change.before:,} -> {change.after:,} ({_pct(change)})"


def _rf(change: Change, after: str = "") -> str:
    """The model's receptive field, or with ``after`` the one after that layer."""
    head = f"receptive field after {after}" if after else "receptive field"
    if change.before == change.after:
        return f"{head} {change.before} ="
    return f"{head} {change.before} -> {change.after}"


def _latency(ms: tuple[float, float]) -> str:
    before, after = ms
    pct = f" ({100 * (after / before - 1):+.1f}%)" if before else ""
    return f"{before:.3g} ms -> {after:.3g} ms{pct}"


def _where(f: Finding) -> str:
    layers = f.proposal.layers
    more = f" (+{len(layers) - 1} uses)" if len(layers) > 1 else ""
    return layers[0] + more


def header(advice: Advice) -> str:
    t = advice.totals
    sets = "".join(f"  {k}={v}" for k, v in sorted(advice.vars.items()))
    count = len(advice.findings)
    return "\n".join([
        f"{advice.model}  ({advice.source})  input {shape(advice.input)}{sets}",
        f"params {t['params']:,}  MACs {t['macs']:,}  activations "
        f"{human_bytes(t['activation_bytes'])}  peak memory {human_bytes(t['peak_memory_bytes'])}"
        f"  receptive field {t['receptive_field']}",
        f"{count} finding{'' if count == 1 else 's'}, largest saving first (cost rules: at "
        f"least {100 * advice.min_saving:g}% of the model's params or MACs; every figure "
        "counted on the rewritten spec)",
    ])


def details(i: int, f: Finding) -> list[str]:
    """The lines of one finding."""
    p, e = f.proposal, f.effect
    lines = [f"{i}. {f.rule.name}: {f.rule.guideline}",
             f"   at {', '.join(p.layers[:3])}{' ...' if len(p.layers) > 3 else ''} ({p.source})"]
    if p.shared:
        lines.append(f"   note     {p.shared}")
    lines += [f"   found    {p.found}", f"   rewrite  {p.rewrite}"]
    if p.expected:
        lines.append(f"   lecture  {p.expected}")
    lines.append(f"   model    params {_exact(e['params'])}  MACs {_exact(e['macs'])}")
    lines.append(f"            activations {_arrow(e['activation_bytes'], human_bytes)}  peak "
                 f"{_arrow(e['peak_memory_bytes'], human_bytes)}  {_rf(f.model_rf)}")
    le = f.layer_effect
    lines.append(f"   layers   params {_exact(le['params'])}  MACs {_exact(le['macs'])}  "
                 f"{_rf(f.layers_rf, f.proposal.layers[-1])}")
    if f.latency_ms is not None:
        lines.append(f"   latency  {_latency(f.latency_ms)} predicted (cnncost predict's "
                     "calibration)")
    lines.append(f"   function {'changes: ' if p.changes_function else 'unchanged: '}{p.note}")
    lines.append(f"   cites    {f.rule.lecture}")
    lines.append(f"   spec     {f.spec_file}")
    return lines


def advice_rich(advice: Advice) -> Group:
    """The summary table, then every finding in detail."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = [Text(header(advice), style="bold")]
    if advice.findings:
        out = Table(box=box.SIMPLE_HEAVY, padding=(0, 1), pad_edge=False)
        out.add_column("#", justify="right", no_wrap=True)
        out.add_column("rule", no_wrap=True)
        out.add_column("layer", overflow="fold",
                       min_width=min(24, max(len(_where(f)) for f in advice.findings)))
        out.add_column("params", justify="right", no_wrap=True)
        out.add_column("MACs", justify="right", no_wrap=True)
        out.add_column("saving", justify="right", no_wrap=True)
        latency = any(f.latency_ms is not None for f in advice.findings)
        if latency:
            out.add_column("predicted latency", justify="right", no_wrap=True)
        for i, f in enumerate(advice.findings, 1):
            e = f.effect
            cells: list[Any] = [str(i), f.rule.name, Text(literal(_where(f))),
                                _short(e["params"]), _short(e["macs"]),
                                f"{100 * f.saving:.1f}%"]
            if latency:
                cells.append(_latency(f.latency_ms) if f.latency_ms else "-")
            out.add_row(*cells)
        parts.append(out)
        for i, f in enumerate(advice.findings, 1):
            parts.append(Text("\n".join(details(i, f))))
    parts.append(Text("saving = the larger relative drop of the model's params and MACs; "
                      "--emit DIR writes each rewritten spec", style="dim"))
    return Group(*parts)


def advice_markdown(advice: Advice) -> str:
    """A Markdown table of the findings, then one section per finding."""
    lines = [f"# {md_text(advice.model)}: design advice", "",
             *md_fence(header(advice).split("\n")), ""]
    if advice.findings:
        lines += ["| # | rule | layer | params | MACs | saving |", "|---:|---|---|---:|---:|---:|"]
        for i, f in enumerate(advice.findings, 1):
            e = f.effect
            lines.append(f"| {i} | {f.rule.name} | {md_code(_where(f))} | {_exact(e['params'])} | "
                         f"{_exact(e['macs'])} | {100 * f.saving:.1f}% |")
        for i, f in enumerate(advice.findings, 1):
            lines += ["", f"## {i}. {f.rule.name}", "", *md_fence(details(i, f)[1:])]
    return "\n".join(lines) + "\n"


def advice_page(advice: Advice, wrap: Wrap | None = None) -> str:
    """The header, the findings side by side (sortable) and each finding in detail (the
    terminal's lines, folded under its title)."""
    from html import escape

    from cnncost.render.html import Col, cell, page, sortable_table

    body = [f"<h1>advise: {escape(advice.model)}</h1>"]
    body += [f'<p class="recipe">{escape(line)}</p>' for line in header(advice).splitlines()]
    if advice.findings:
        cols = [Col("#", True), Col("rule"), Col("layer"), Col("params", True),
                Col("MACs", True), Col("saving", True)]
        rows = [[cell(str(i), i, "n"), cell(f.rule.name), cell(_where(f)),
                 cell(_short(f.effect["params"]), f.effect["params"].after, "n"),
                 cell(_short(f.effect["macs"]), f.effect["macs"].after, "n"),
                 cell(f"{100 * f.saving:.1f}%", f.saving, "n")]
                for i, f in enumerate(advice.findings, 1)]
        body.append(sortable_table(cols, rows, table_id="advice-table"))
        for i, f in enumerate(advice.findings, 1):
            lines = details(i, f)
            body.append(f"<details><summary>{escape(lines[0])}</summary><pre>"
                        + escape("\n".join(lines[1:])) + "</pre></details>")
    body.append('<p class="note">saving = the larger relative drop of the model\'s params and '
                "MACs; every figure counted on the rewritten spec</p>")
    return (wrap or page)(f"advise: {advice.model}", body)


def render_text(advice: Advice, fmt: AdviceFormat) -> str:
    """Text renderings (json, md, html); the table goes through advice_rich."""
    return text_as(fmt, json=lambda: dumps(advice.to_dict()),
                   md=lambda: advice_markdown(advice), html=lambda: advice_page(advice))
