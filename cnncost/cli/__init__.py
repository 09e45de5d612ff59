"""The cnncost command line: a thin typer layer (entry point ``cnncost.cli:main``).

This module makes the typer app, turns CnnCostError into one line and an exit code (the only
place that catches it), and registers the commands, which live one group per module:
``analyze`` (analyze, compare, explain), ``catalog`` (list, validate), ``advise``, ``report``
(report, check, diff), ``bench``, ``predict`` (calibrate, predict), ``sweep``, ``plot``,
``export``, ``schema``. Each command parses its options (the shared ones from
``cnncost.cli.options``), calls cnncost.api (or a domain module's entry point) and hands the
result to cnncost.render. A new command is a function in its group's module (or a new
module) and one line in ``COMMANDS`` below; no command module imports another.

torch and rich are imported inside the commands that need them, so ``cnncost --help`` is
instant. Exit codes: 1 drift (check), 2 bad input.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from cnncost.cli import (
    advise,
    analyze,
    bench,
    catalog,
    conventions,
    export,
    plot,
    predict,
    report,
    schema,
    sweep,
)
from cnncost.errors import CnnCostError
from cnncost.io import guard_inputs
from cnncost.render.console import err_console, print_error

app = typer.Typer(
    cls=conventions.CnnCostGroup,  # global options anywhere, usage errors in one line
    context_settings=conventions.CONTEXT,  # -h is --help
    name="cnncost",
    help="What a convolutional network costs: MACs, FLOPs, parameters and memory, layer by "
    "layer, from a YAML spec, a bundled model name, any PyTorch module "
    "(pkg.module:factory) or an ONNX file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


F = TypeVar("F", bound=Callable[..., Any])
_debug = {"on": False}


def handle_errors(fn: F, name: str | None = None) -> F:
    """Turn CnnCostError (and torch's own shape errors) into one line and an exit code; and
    a missing torch into the line that says how to get it (``name``: the command's)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with guard_inputs():  # --output never replaces a file the command reads
                return fn(*args, **kwargs)
        except CnnCostError as exc:
            if _debug["on"]:
                raise
            print_error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except ModuleNotFoundError as exc:  # torch, where the install has none
            needed = conventions.missing_extra(exc, name or fn.__name__)
            if needed is None or _debug["on"]:
                raise
            print_error(needed)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _main(debug: Annotated[bool, typer.Option(
              "--debug", help="Show tracebacks (here or after the command).")] = False,
          version: Annotated[bool, conventions.version_option()] = False) -> None:
    _debug["on"] = debug


# Every command, in the order `cnncost --help` lists them: (name, function).
COMMANDS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("analyze", analyze.analyze),
    ("validate", catalog.validate),
    ("list", catalog.list_specs),
    ("compare", analyze.compare),
    ("advise", advise.advise),
    ("report", report.report),
    ("check", report.check),
    ("diff", report.diff),
    ("bench", bench.bench),
    ("calibrate", predict.calibrate),
    ("predict", predict.predict),
    ("explain", analyze.explain),
    ("sweep", sweep.sweep),
    ("plot", plot.plot),
    ("export", export.export),
    ("schema", schema.schema),
)
for _name, _command_fn in COMMANDS:
    app.command(_name, cls=conventions.CnnCostCommand)(handle_errors(_command_fn, _name))


def _command(argv: list[str]) -> str | None:
    """The subcommand named on a command line (the first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main() -> None:
    """Console-script entry point."""
    # Not for check: it replays committed reports, and must not import a module (a torch.py,
    # a factory a report names) from the folder it is run in.
    if (_command(sys.argv[1:]) != "check" and "" not in sys.path
            and os.getcwd() not in sys.path):
        # As `python -m cnncost` would: a pkg.module:factory in the current folder imports.
        sys.path.insert(0, os.getcwd())
    conventions.run(app)


if __name__ == "__main__":
    main()
