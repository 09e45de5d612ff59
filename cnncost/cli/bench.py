"""``cnncost bench``: measured latency, throughput and memory on this machine (the work is
``cnncost.measure``'s, through ``cnncost.api.bench_target``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cnncost.cli.options import (
    FormatOpt,
    InputOpt,
    OutputOpt,
    SetOpt,
    parse_batches,
    parse_input,
    parse_sets,
    write_output,
)
from cnncost.errors import UsageError
from cnncost.render.formats import Format


def bench(
    model: Annotated[str, typer.Argument(
        help="Spec file, bundled name, pkg.module:factory or an .onnx file.")],
    device: Annotated[str, typer.Option(help="auto (cuda if available), cpu or cuda.")
                      ] = "auto",
    batch: Annotated[str, typer.Option("--batch", "-b", help="Batch sizes: 1,8,32.")] = "1",
    threads: Annotated[int | None, typer.Option(
        min=1, help="CPU threads (default: torch's current setting).")] = None,
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.")] = "float32",
    channels_last: Annotated[bool, typer.Option(
        "--channels-last", help="Run in NHWC memory layout.")] = False,
    compile_: Annotated[bool, typer.Option(
        "--compile", help="Time the torch.compile'd model.")] = False,
    per_layer: Annotated[bool, typer.Option(
        "--per-layer", help="Also time every layer and compare it with its roofline.")] = False,
    top: Annotated[int | None, typer.Option(
        min=1, help="Show only the N slowest layers per batch (table/md).")] = None,
    max_time: Annotated[float, typer.Option(
        min=0.01, help="Seconds of timing per batch size and phase (at most).")] = 10.0,
    min_samples: Annotated[int, typer.Option(min=1, help="Samples to take at least.")] = 7,
    recalibrate: Annotated[bool, typer.Option(
        "--recalibrate", help="Measure the machine's roofline again (it is cached).")] = False,
    input: InputOpt = None,
    set_: SetOpt = None,
    fmt: FormatOpt = Format.TABLE,
    output: OutputOpt = None,
    train: Annotated[bool, typer.Option("--train", help="Time whole training steps (zero_grad, "
        "forward, loss, backward, --optimizer's step) and measure their peak memory.")] = False,
    optimizer: Annotated[str, typer.Option(metavar="sgd|sgd_momentum|adam")] = "sgd",
    predict: Annotated[bool, typer.Option("--predict", help="Also predict each batch from "
        "this machine's calibration (cnncost calibrate) and show it beside the measurement, "
        "per layer (implies --per-layer) and whole.")] = False,
    runtime: Annotated[str | None, typer.Option(
        metavar="torch|onnxruntime|torch,onnxruntime",
        help="What runs the model: PyTorch eager, ONNX Runtime (CPU; a spec or module is "
             "exported first) or both in one run (default: torch; onnxruntime for an .onnx "
             "file).")] = None,
) -> None:
    """Measured latency, throughput and GFLOP/s, with every layer on the machine's roofline."""
    from cnncost.api import bench_target
    from cnncost.measure.bench import BenchOptions, Device
    from cnncost.measure.ort import parse_runtimes
    from cnncost.measure.timing import Budget
    from cnncost.render.bench_train import bench_view
    from cnncost.render.terminal import print_wide, progress, wide_text

    if device not in {d.value for d in Device}:
        raise UsageError(f"--device {device!r}: expected auto, cpu or cuda")
    options = BenchOptions(device=device, dtype=dtype, threads=threads,
                           channels_last=channels_last, compile=compile_, per_layer=per_layer,
                           recalibrate=recalibrate, optimizer=optimizer,
                           budget=Budget(min_samples=min_samples, max_time=max_time,
                                         min_time=min(0.5, max_time / 2),
                                         warmup_time=min(0.25, max_time / 4)))
    if predict and runtime:
        raise UsageError("--predict predicts torch's latency; leave out --runtime")
    if predict:
        _bench_predicted(model, batch, options, input, set_, fmt, output, top, train)
        return
    view: Any = bench_view(train)  # training steps: their own renderer
    with progress() as bar:
        result: Any = bench_target(model, parse_batches(batch), options, train,
                                   parse_input(input), parse_sets(set_), bar,
                                   parse_runtimes(runtime) if runtime else None)
    if fmt is Format.TABLE:
        rendered = view.rich_report(result, top)
        if output is None:
            print_wide(rendered)
        else:
            write_output(wide_text(rendered), output)
        return
    write_output(view.render_text(result, fmt, top), output)


def _bench_predicted(model: str, batch: str, options: Any, input: str | None,
                     set_: list[str] | None, fmt: Format, output: Any, top: int | None,
                     train: bool) -> None:
    """bench --predict: measured beside predicted (table or JSON)."""
    from cnncost.api import bench_predicted
    from cnncost.render import predict as view
    from cnncost.render.terminal import print_wide, progress, wide_text

    if train or fmt not in (Format.TABLE, Format.JSON, Format.HTML):
        raise UsageError("--predict: inference only (not --train), as a table, JSON or HTML")
    with progress() as bar:
        result = bench_predicted(model, parse_batches(batch), options, parse_input(input),
                                 parse_sets(set_), bar)
    if fmt is Format.JSON:
        write_output(view.versus_json(result), output)
    elif fmt is Format.HTML:
        write_output(view.versus_page(result), output)
    elif output is None:
        print_wide(view.rich_versus(result, top))
    else:
        write_output(wide_text(view.rich_versus(result, top)), output)
