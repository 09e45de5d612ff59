"""The bundled specs: ``list`` (each with its totals) and ``validate`` (a spec checked,
its layer tree printed; no torch).

What belongs here: commands about the specs themselves rather than their cost.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cnncost.cli.options import (
    InputOpt,
    SetOpt,
    SpecArg,
    parse_input,
    parse_sets,
)
from cnncost.errors import UsageError


def validate(
    spec: SpecArg,
    set_: SetOpt = None,
    input: InputOpt = None,
) -> None:
    """Check a spec (no PyTorch needed) and print its layer tree."""
    from cnncost.api import load_spec_target
    from cnncost.render.catalog import layer_tree, validated_line
    from cnncost.render.terminal import stdout_console

    model = load_spec_target(spec, parse_sets(set_), parse_input(input))
    console = stdout_console()
    console.print(layer_tree(model))
    console.print(validated_line(model))


def list_specs(
    totals: Annotated[bool, typer.Option(
        help="Also count each spec (params, MACs at its default input; cached).")] = True,
) -> None:
    """Bundled specs with their one-line description and headline totals."""
    from cnncost import catalog
    from cnncost.render.catalog import list_table
    from cnncost.render.terminal import print_whole

    entries = catalog.list_specs(totals)
    print_whole(list_table(entries, totals))
    broken = sum(e.error is not None for e in entries)
    if broken:
        raise UsageError(f"{broken} bundled spec(s) do not load (see above)")
