"""Counting commands: ``analyze`` (one model's table), ``compare`` (models side by side) and
``explain`` (the formula behind each number).

What belongs here: a command that counts named models and renders the result, with the
options only it takes. Shared options come from ``cnncost.cli.options``; the work is
``cnncost.api``'s, the output ``cnncost.render``'s.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cnncost.cli.options import (
    BatchOpt,
    DtypeOpt,
    EngineOpt,
    FormatOpt,
    InputOpt,
    ModelArg,
    ModeOpt,
    OutputOpt,
    PolicyOpt,
    SetOpt,
    StrictOpt,
    parse_input,
    parse_policy,
    parse_sets,
    show,
    write_output,
)
from cnncost.count.conventions import Mode
from cnncost.errors import UsageError
from cnncost.render.console import err_console, write_stdout
from cnncost.render.formats import Format, Units
from cnncost.table import SORT_FIELDS


def analyze(
    model: ModelArg,
    input: InputOpt = None,
    batch: BatchOpt = None,
    dtype: DtypeOpt = None,
    set_: SetOpt = None,
    policy: PolicyOpt = "all",
    units: Annotated[Units, typer.Option(help="Compute column of the table.")] = Units.MACS,
    depth: Annotated[int | None, typer.Option(
        min=1, metavar="N",
        help="Collapse rows to the first N parts of their names (block level).")] = None,
    sort: Annotated[str | None, typer.Option(
        metavar="FIELD", help=f"Sort rows by one of: {', '.join(SORT_FIELDS)}.")] = None,
    top: Annotated[int | None, typer.Option(min=1, metavar="N",
                                            help="Show only the first N rows.")] = None,
    fmt: FormatOpt = Format.TABLE,
    output: OutputOpt = None,
    strict: StrictOpt = False,
    crosscheck: Annotated[str | None, typer.Option(
        metavar="TOOL", help="Also compare per-layer MACs with fvcore (batch 1, real CPU "
        "tensor) and explain any difference; exit 1 if one is unexplained.")] = None,
    engine: EngineOpt = None,
    mode: ModeOpt = Mode.INFERENCE,
) -> None:
    """Per-layer cost table: output shape, params, MACs (or FLOPs), share, output memory."""
    if sort is not None and sort not in SORT_FIELDS:
        raise UsageError(f"--sort {sort!r}: expected one of {', '.join(SORT_FIELDS)}")
    from cnncost.api import analyze_target

    shape, sets = parse_input(input), parse_sets(set_)
    table = analyze_target(model, input=shape, batch=batch, dtype=dtype,
                           policy=parse_policy(policy), strict=strict, overrides=sets,
                           engine=engine, mode=mode.value)
    if fmt is Format.TABLE:
        from cnncost.render.cost import rich_table

        show(rich_table(table, units, depth, sort, top), output)
    else:
        from cnncost.render.cost import render_text

        write_output(render_text(table, fmt, depth, sort, top), output)
    if crosscheck is not None:
        _crosscheck(crosscheck, model, shape, sets, to_stdout=fmt is Format.TABLE and not output)


def _crosscheck(tool: str, model: str, shape: tuple[int, ...] | None, sets: dict[str, str],
                to_stdout: bool) -> None:
    """``analyze --crosscheck``: the comparison after the table (on stderr when the table
    went to a file or is machine-readable); exit 1 on an unexplained difference."""
    from cnncost.measure.crosscheck import crosscheck, disagreement
    from cnncost.render.crosscheck import crosscheck_renderables
    from cnncost.render.terminal import stdout_console

    cc = crosscheck(tool, model, shape, sets)
    console = stdout_console() if to_stdout else err_console
    for item in crosscheck_renderables(cc):
        console.print(item)
    error = disagreement(cc)
    if error is not None:
        raise error


def compare(
    models: Annotated[list[str], typer.Argument(
        metavar="MODEL...",
        help="Two or more specs, bundled names or pkg.module:factory; ratios are against the "
             "first.")],
    input: InputOpt = None,
    batch: BatchOpt = None,
    dtype: DtypeOpt = None,
    set_: SetOpt = None,
    policy: PolicyOpt = "all",
    fmt: FormatOpt = Format.TABLE,
    output: OutputOpt = None,
    strict: StrictOpt = False,
    bench_: Annotated[bool, typer.Option(
        "--bench", help="Also measure latency and throughput here (as `cnncost bench`).")
    ] = False,
    engine: EngineOpt = None,
    mode: ModeOpt = Mode.INFERENCE,
    latency: Annotated[bool, typer.Option(
        "--latency", help="Also predict each model's latency from this machine's calibration "
        "(`cnncost calibrate`), without running it.")] = False,
) -> None:
    """Models side by side: params, MACs, FLOPs, activation and peak memory, with ratios."""
    from cnncost.api import compare_targets
    from cnncost.render.terminal import progress

    shape, sets, pol = parse_input(input), parse_sets(set_), parse_policy(policy)
    with progress(bench_) as bar:
        comparison = compare_targets(models, shape, batch, dtype, pol, strict, sets,
                                     bench=bench_, progress=bar, engine=engine, mode=mode.value,
                                     latency=latency)
    if fmt is Format.TABLE:
        from cnncost.render.compare import compare_rich

        show(compare_rich(comparison), output)
    else:
        from cnncost.render.compare import render_text

        write_output(render_text(comparison, fmt), output)


def explain(
    model: Annotated[str, typer.Argument(help="Spec file, bundled name (e.g. "
                                         "textbook/dwsep_6x6x3) or pkg.module:factory.")],
    layer: Annotated[str | None, typer.Argument(
        help="Only this layer (a name, or a name prefix for a block).")] = None,
    input: InputOpt = None,
    batch: BatchOpt = None,
    dtype: DtypeOpt = None,
    set_: SetOpt = None,
    policy: PolicyOpt = "all",
    engine: EngineOpt = None,
    mode: ModeOpt = Mode.INFERENCE,
) -> None:
    """The formula behind each number, the way the slides derive it, then the spec's ratios."""
    from cnncost.api import explain_target
    from cnncost.render.explain import explain_lines

    e = explain_target(model, parse_input(input), batch, dtype, parse_policy(policy),
                       parse_sets(set_), engine, mode=mode.value)
    lines = explain_lines(e.table, e.explain, e.vars, e.tables, layer, e.file, e.case)
    write_stdout("\n".join(lines) + "\n")
