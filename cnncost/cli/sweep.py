"""``cnncost sweep``: one spec counted over a grid of its variables (the work is
``cnncost.sweep``'s, the table ``cnncost.render.sweep``'s).
"""

from __future__ import annotations

from typing import Annotated

import typer

from cnncost.cli.options import (
    DtypeOpt,
    EngineOpt,
    FormatOpt,
    InputOpt,
    ModeOpt,
    OutputOpt,
    PolicyOpt,
    StrictOpt,
    parse_input,
    parse_policy,
    show,
    write_output,
)
from cnncost.count.conventions import Mode
from cnncost.render.formats import Format


def sweep(
    model: Annotated[str, typer.Argument(metavar="SPEC", help="Spec file or bundled name.")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", "-s", metavar="NAME=VALUES",
        help="Values of a spec variable: a range 128..640:32 (ends included), a list "
             "0.5,0.75,1.0, or one fixed value (repeatable; several swept variables make a "
             "cartesian product).")] = None,
    zip_: Annotated[list[str] | None, typer.Option(
        "--zip", metavar="NAME,NAME",
        help="Variables that move together (one value of each per step), e.g. --zip "
             "width,depth,res for compound scaling (repeatable).")] = None,
    batch: Annotated[str | None, typer.Option(
        "--batch", "-b", metavar="VALUES", help="Batch sizes: 1, 1,8,32 or 1..64:8.")] = None,
    input: InputOpt = None,
    dtype: DtypeOpt = None,
    policy: PolicyOpt = "all",
    strict: StrictOpt = False,
    jobs: Annotated[int, typer.Option(
        "--jobs", "-j", min=1, metavar="N", help="Count points in N local processes (at most "
        "one per point and one per CPU).")] = 1,
    dask: Annotated[str | None, typer.Option(
        metavar="tcp://HOST:PORT",
        help="Count points on this Dask distributed scheduler (pip install 'cnncost[dask]').")
    ] = None,
    max_points: Annotated[int, typer.Option(
        "--max-points", metavar="N", help="Refuse sweeps of more points than this.")] = 100_000,
    fmt: FormatOpt = Format.TABLE,
    output: OutputOpt = None,
    engine: EngineOpt = None,
    mode: ModeOpt = Mode.INFERENCE,
    latency: Annotated[bool, typer.Option(
        "--latency", help="Also predict each point's latency from this machine's calibration "
        "(`cnncost calibrate`), with its fitted exponent.")] = False,
) -> None:
    """How cost scales: one row per point of a grid of spec variables, and fitted exponents."""
    from cnncost.sweep import prepare_sweep

    prepared = prepare_sweep(model, set_ or [], zip_ or [], batch, input=parse_input(input),
                             dtype=dtype, policy=parse_policy(policy), strict=strict,
                             max_points=max_points, engine=engine, mode=mode.value,
                             latency=latency)
    from cnncost.render.sweep import render_text, rich_sweep
    from cnncost.render.terminal import point_progress
    from cnncost.sweep import pool_size

    if jobs > 1 and dask is None and pool_size(jobs, prepared.plan.size) < jobs:
        from cnncost.measure.machine import usable_cpus
        from cnncost.render.console import err_console

        n = pool_size(jobs, prepared.plan.size)
        err_console.print(f"sweep: --jobs {jobs}: {n} process{'es' if n > 1 else ''} (at most "
                          f"one per point, {prepared.plan.size}, and per CPU, {usable_cpus()})")

    with point_progress("sweep", prepared.plan.size) as update:
        result = prepared.run(jobs, dask, update)
    if fmt is Format.TABLE:
        show(rich_sweep(result), output)
    else:
        write_output(render_text(result, fmt), output)
