"""``cnncost export``: a spec (or module) written as an ONNX file through PyTorch's exporter,
so it opens in Netron and runs in ONNX Runtime (the work is ``cnncost.onnx.export``'s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnncost.cli.options import InputOpt, ModelArg, SetOpt, parse_input, parse_sets
from cnncost.render.console import err_console


def export(
    model: ModelArg,
    onnx: Annotated[Path, typer.Option(
        "--onnx", metavar="FILE", help="The ONNX file to write (atomically).")],
    input: InputOpt = None,
    set_: SetOpt = None,
    static_batch: Annotated[int | None, typer.Option(
        "--static-batch", min=1, metavar="N",
        help="Fix the batch at N (default: a dynamic batch named 'batch').")] = None,
    opset: Annotated[int | None, typer.Option(
        min=7, metavar="N", help="ONNX opset to write (default: the exporter's).")] = None,
) -> None:
    """Write a spec (or module) as ONNX through torch.onnx (the dynamo exporter): the model
    as it is, batch norms unfolded, a dynamic batch."""
    from cnncost.api import export_target

    done = export_target(model, onnx, parse_input(input), parse_sets(set_),
                         static_batch=static_batch, opset=opset)
    batch = "dynamic batch" if done.dynamic_batch else f"batch {done.input_shape[0]}"
    sample = "x".join(map(str, done.input_shape[1:]))
    err_console.print(f"wrote {onnx} ({len(done.data):,} bytes, {done.nodes} nodes, opset "
                      f"{done.opset}, input {sample}, {batch})")
