"""``cnncost calibrate`` and ``cnncost predict``: time this machine's kernels once, then predict
any model's latency from its count (the work is ``cnncost.predict``'s, through
``cnncost.api.calibrate_here`` and ``predict_target``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnncost.cli.options import (
    BatchOpt,
    DtypeOpt,
    FormatOpt,
    InputOpt,
    ModelArg,
    OutputOpt,
    SetOpt,
    parse_input,
    parse_sets,
    show,
    write_output,
)
from cnncost.errors import UsageError
from cnncost.render.formats import Format

DEVICES = ("auto", "cpu", "cuda")
DeviceOpt = Annotated[str, typer.Option(
    metavar="auto|cpu|cuda", help="auto: cuda where torch finds a GPU, else cpu.")]
ThreadsOpt = Annotated[int | None, typer.Option(
    min=1, help="CPU threads (default: torch's default, as bench uses).")]


def _device(device: str) -> str:
    if device not in DEVICES:
        raise UsageError(f"--device {device!r}: expected auto, cpu or cuda")
    return device


def calibrate(
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "float32",
    threads: ThreadsOpt = None,
    max_time: Annotated[float, typer.Option(
        help="The budget in seconds (at least 5): more kernels, a closer fit.")] = 240.0,
    seed: Annotated[int, typer.Option(help="Seed of the kernels drawn.")] = 0,
) -> None:
    """Time a sample of kernels of every op class on this machine (convolutions, 1x1,
    depthwise and grouped; linear; pooling; batch norm, activations, add, concat, ...) and fit
    a latency predictor per class; cached per machine, device, threads, dtype and torch
    version, for `cnncost predict`. Sampling is adaptive: time goes where the held-out error
    is high. Run it on a quiet machine: other processes slow the kernels too (with --threads 1
    a kernel's CPU time counts where it is shorter than the wall clock)."""
    from cnncost.api import calibrate_here
    from cnncost.predict.calibrate import CalibrateOptions
    from cnncost.render.predict import rich_calibration
    from cnncost.render.terminal import progress

    options = CalibrateOptions(device=_device(device), dtype=dtype or "float32", threads=threads,
                               max_time=max_time, seed=seed)
    with progress() as bar:
        cal, path = calibrate_here(options, bar)
    show(rich_calibration(cal, str(path)), None)


def predict(
    model: ModelArg,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = "float32",
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    calibration: Annotated[Path | None, typer.Option(
        metavar="FILE", help="A calibration file (another machine's: predict for it) instead "
        "of this machine's cached one.")] = None,
    input: InputOpt = None,
    set_: SetOpt = None,
    top: Annotated[int | None, typer.Option(
        min=1, help="Show only the N slowest layers (table/md/csv).")] = None,
    fmt: FormatOpt = Format.TABLE,
    output: OutputOpt = None,
) -> None:
    """Predicted latency per layer and of the whole model on a calibrated machine, without
    running it (a spec is counted without torch): each layer by its op class's fit, with the
    held-out error of the calibration; a layer outside the calibrated range says so."""
    from cnncost.api import predict_target
    from cnncost.render import predict as view

    p = predict_target(model, parse_input(input), batch or 1, dtype or "float32",
                       parse_sets(set_),
                       _device(device), threads, calibration)
    if fmt is Format.TABLE:
        show(view.rich_prediction(p, top), output)
        return
    write_output(view.render_text(p, fmt, top), output)
