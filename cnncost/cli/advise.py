"""``cnncost advise``: the lectures' design guidelines applied to a spec, each suggestion
counted on the rewritten spec (the work is ``cnncost.advise``'s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnncost.cli.options import (
    OutputOpt,
    SetOpt,
    SpecArg,
    parse_sets,
    write_output,
)
from cnncost.errors import UsageError
from cnncost.io import inside, not_a_folder, write_atomic
from cnncost.render.advice import AdviceFormat
from cnncost.render.console import err_console


def advise(
    spec: SpecArg,
    set_: SetOpt = None,
    fmt: Annotated[AdviceFormat, typer.Option("--format", "-f", help="Output format.")
                   ] = AdviceFormat.TABLE,
    min_saving: Annotated[str, typer.Option(
        metavar="PCT", help="Drop cost findings saving less of the model's params and MACs "
        "than this: 5%, 0.05.")] = "5%",
    emit: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Write each rewritten spec (the one counted) into DIR.")] = None,
    output: OutputOpt = None,
    latency: Annotated[bool, typer.Option(
        "--latency", help="Also predict each rewrite's latency change from this machine's "
        "calibration (`cnncost calibrate`).")] = False,
) -> None:
    """The lectures' design guidelines, each suggestion counted on the rewritten spec."""
    from cnncost.advise.engine import parse_saving
    from cnncost.api import advise_target
    from cnncost.render.advice import advice_rich, render_text
    from cnncost.render.terminal import print_whole, to_text

    problem = None if emit is None else not_a_folder(emit)
    if problem is not None:  # said before anything is counted or printed
        raise UsageError(f"--emit {emit}: {problem}; expected a folder for the rewritten specs")
    advice = advise_target(spec, parse_sets(set_), parse_saving(min_saving), latency)
    if fmt is AdviceFormat.TABLE and output is None:
        print_whole(advice_rich(advice))
    else:
        text = to_text(advice_rich(advice)) if fmt is AdviceFormat.TABLE else (
            render_text(advice, fmt))
        write_output(text, output)
    if emit is not None:
        for finding in advice.findings:  # each a file name made from the spec's (io.file_name)
            write_atomic(inside(emit, finding.spec_file), finding.spec_text)
        err_console.print(f"wrote {len(advice.findings)} rewritten spec(s) to {emit}")
