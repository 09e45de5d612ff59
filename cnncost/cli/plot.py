"""``cnncost plot``: the lectures' charts as an image (parse -> api.plot_data ->
render.plot -> atomic write)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from cnncost.cli.options import (
    BatchOpt,
    DtypeOpt,
    InputOpt,
    PolicyOpt,
    SetOpt,
    StrictOpt,
    parse_input,
    parse_policy,
    parse_sets,
)
from cnncost.errors import UsageError
from cnncost.io import check_output, write_atomic
from cnncost.render.console import err_console


def plot(
    models: Annotated[list[str], typer.Argument(
        metavar="MODEL...", help="Specs, bundled names or pkg.module:factory.")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", metavar="FILE",
        help="Image to write (atomically): .png, .svg or .pdf.")],
    kind: Annotated[str | None, typer.Option(
        metavar="KIND", help="layers (default for one model), compare (default for several), "
        "scatter (MACs vs params, bubble = activations), roofline (runs bench --per-layer) or "
        "sweep (each metric against a variable swept with --set res=128..640:32).")] = None,
    depth: Annotated[int | None, typer.Option(
        min=1, metavar="N", help="layers: one bar per block of the first N name parts "
        "(default: every layer, or the deepest level that keeps names readable).")] = None,
    scale: Annotated[str, typer.Option(
        metavar="auto|linear|log", help="Value axes of layers/compare: log where a linear "
        "axis would hide most bars (auto), or always linear / log.")] = "auto",
    input: InputOpt = None,
    batch: BatchOpt = None,
    dtype: DtypeOpt = None,
    set_: SetOpt = None,
    policy: PolicyOpt = "all",
    strict: StrictOpt = False,
    bench_: Annotated[bool, typer.Option(
        "--bench", help="scatter: also measure latency here and plot MACs against it.")
    ] = False,
    max_time: Annotated[float, typer.Option(
        min=0.01, help="roofline: seconds of timing per phase (at most).")] = 2.0,
    zip_: Annotated[list[str] | None, typer.Option(
        "--zip", metavar="NAME,NAME", help="sweep: variables that move together (as in "
        "`cnncost sweep`).")] = None,
) -> None:
    """The lectures' charts: per-layer bars, models side by side, scatter, roofline, sweep."""
    from cnncost.api import plot_data
    from cnncost.plotting import PlotKind, default_kind
    from cnncost.render.plot import Scale, figure, image_format, require_matplotlib, to_bytes
    from cnncost.render.terminal import progress

    fmt = image_format(output)  # a bad extension or a missing matplotlib fails before work
    require_matplotlib()
    check_output(output)  # as an output under a file does
    chosen = _choice(PlotKind, kind, "--kind") if kind else default_kind(models)
    axes = _choice(Scale, scale, "--scale")
    sets = {} if chosen is PlotKind.SWEEP else parse_sets(set_)  # a sweep parses its own
    measuring = chosen is PlotKind.ROOFLINE or (bench_ and chosen is PlotKind.SCATTER)
    with progress(measuring) as bar:
        data = plot_data(chosen, models, input=parse_input(input), batch=batch, dtype=dtype,
                         policy=parse_policy(policy), overrides=sets, strict=strict,
                         max_time=max_time, sweep_sets=set_ or [], zips=zip_ or [],
                         bench=bench_, progress=bar)
    write_atomic(output, to_bytes(figure(data, depth, axes), fmt))
    err_console.print(f"wrote {output}")


E = TypeVar("E", bound=Enum)


def _choice(enum: type[E], text: str, option: str) -> E:
    """An Enum member from its value; UsageError listing the choices otherwise."""
    try:
        return enum(text)
    except ValueError:
        choices = ", ".join(str(m.value) for m in enum)
        raise UsageError(f"{option} {text!r}: expected one of {choices}") from None
