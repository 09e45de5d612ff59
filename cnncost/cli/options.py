"""What the command modules share: the options more than one command takes, their parsing,
and the two ways a command's output leaves (``write_output``, ``show``).

What belongs here: an option (an ``Annotated`` type) or a parser as soon as a second command
module needs it, and nothing a single command uses alone (that stays in its module). Every
``cnncost.cli`` command module imports this one and no other command module, as in typer's
own layout. Nothing here imports torch or rich at import time: ``cnncost --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cnncost.count.conventions import Mode
from cnncost.errors import UsageError
from cnncost.io import write_atomic
from cnncost.render.console import err_console, write_stdout
from cnncost.render.formats import Format

# --------------------------------------------------------------------------- option parsing


def parse_input(text: str | None) -> tuple[int, ...] | None:
    """'3x512x512' -> (3, 512, 512)."""
    if text is None:
        return None
    try:
        dims = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise UsageError(f"--input {text!r}: expected sizes like 3x224x224") from None
    if not dims or any(d <= 0 for d in dims):
        raise UsageError(f"--input {text!r}: sizes must be positive, like 3x224x224")
    return dims


def parse_sets(items: list[str] | None) -> dict[str, str]:
    """['width=0.5', 'res=160'] -> {'width': '0.5', 'res': '160'} (values evaluated by the spec)."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"--set {item!r}: expected name=value, e.g. --set width=0.5")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def parse_batches(text: str) -> tuple[int, ...]:
    """'1,8,32' -> (1, 8, 32)."""
    try:
        batches = tuple(int(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError:
        raise UsageError(f"--batch {text!r}: expected batch sizes like 1,8,32") from None
    if not batches or any(b < 1 for b in batches):
        raise UsageError(f"--batch {text!r}: expected positive batch sizes like 1,8,32")
    return batches


def parse_policy(text: str) -> str:
    """--policy's text, checked: 'all' or 'conv+linear'."""
    if text not in ("all", "conv+linear"):
        raise UsageError(f"--policy {text!r}: expected 'all' or 'conv+linear'")
    return text


InputOpt = Annotated[str | None, typer.Option(
    "--input", "-i", metavar="CxHxW",
    help="One sample's shape, channels first: 3x224x224 (default: the spec's).")]
BatchOpt = Annotated[int | None, typer.Option(
    "--batch", "-b", min=1, metavar="N",
    help="Batch size N (default 1; an ONNX file's own where it fixes one).")]
DtypeOpt = Annotated[str | None, typer.Option(
    metavar="DTYPE",
    help="Analysis dtype: float32, float16, bfloat16, float64 (sets bytes per element; "
         "default float32, an ONNX file's own float type).")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", "-s", metavar="NAME=VALUE",
    help="Override a spec variable: --set width=0.5 (repeatable).")]
PolicyOpt = Annotated[str, typer.Option(
    metavar="all|conv+linear",
    help="Which ops count toward FLOPs: 'all' or 'conv+linear' (the papers' convention).")]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
OutputOpt = Annotated[Path | None, typer.Option(
    "--output", "-o", metavar="FILE", help="Write to this file (atomically) instead of stdout.")]
StrictOpt = Annotated[bool, typer.Option(help="Fail when an op has no counting formula.")]
EngineOpt = Annotated[str | None, typer.Option(
    metavar="analytic|torch",
    help="Counting engine for specs: analytic (the default; the spec's own shapes, no torch) "
         "or torch (runs the modules on the meta device). Modules always count with torch.")]
ModeOpt = Annotated[Mode, typer.Option("--mode", help="inference: one forward pass; train: one "
    "training step (forward, backward per gradient, optimizer update, memory; torch engine).")]
ModelArg = Annotated[str, typer.Argument(
    metavar="MODEL", help="Spec file, bundled name (see `cnncost list`), pkg.module:factory, "
    "torchvision:NAME or an .onnx file.")]
SpecArg = Annotated[str, typer.Argument(help="Spec file or bundled name.")]


# --------------------------------------------------------------------------- output


def write_output(text: str, output: Path | None) -> None:
    """Print, or write atomically (a temp file renamed into place: never half a file)."""
    if output is None:
        write_stdout(text)
        return
    write_atomic(output, text)
    err_console.print(f"wrote {output}")


def show(renderable: Any, output: Path | None) -> None:
    """A rich table to the terminal (widened rather than cut), or as plain text to a file (as
    wide as the longest name needs)."""
    from cnncost.render.terminal import print_whole, to_text

    if output is None:
        print_whole(renderable)
    else:
        write_output(to_text(renderable), output)
