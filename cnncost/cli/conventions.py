"""What every cnncost command line shares, handled once at the root (``cnncost.cli`` makes its
app with :class:`CnnCostGroup`, :data:`CONTEXT` and :func:`version_option`, and its entry
point runs it with :func:`run`):

- ``-h`` is ``--help`` everywhere; ``cnncost --version`` prints the installed distribution's
  version (``--version`` with anything else: one line, exit 2).
- Global options stand where users type them: ``cnncost analyze x --debug`` is read as
  ``cnncost --debug analyze x``.
- A usage mistake found while parsing (an unknown option, a missing argument, a value out of
  range, NaN, or not one of the choices: ``--batch 0``, ``--max-time nan``, ``--format
  xml``; every command is a :class:`CnnCostCommand`) is one ``error:`` line
  naming the command and the option, exit 2, never click's three-line usage block.
- stdout that cannot take the output (``> /dev/full``, closed, a reader that went away) is one
  line on stderr, exit 2 (exit 1 is ``check``'s drift), never a traceback.
- A command that needs torch where the install has none (``pip install cnncost`` brings
  none) says in one line how to get it (``pip install 'cnncost[torch]'``), exit 2.
- Text the output's encoding cannot show (``PYTHONIOENCODING=ascii`` and a name with an
  accent) is printed escaped (``\\xe7``), never a UnicodeEncodeError.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from cnncost.errors import UsageError
from cnncost.render.console import ESCAPE_ERRORS, print_error, unicode_escapes

# click as typer uses it (typer 0.2x carries its own copy): its exception classes.
click = sys.modules[typer.BadParameter.__module__]
_NO_ARGS = getattr(click, "NoArgsIsHelpError", ())  # (a click before 8.2 printed the help)

# The app's own options that may stand anywhere on the command line, and -h as --help.
GLOBAL_FLAGS = ("--debug",)
CONTEXT = {"help_option_names": ["-h", "--help"]}


def installed_version() -> str:
    """The installed distribution's version (``importlib.metadata``), else the package's own."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cnncost")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from cnncost import __version__

        return f"{__version__} (not installed)"


def show_version(value: bool) -> None:
    """``--version``'s callback: ``cnncost 0.1.0``, exit 0."""
    if value:
        typer.echo(f"cnncost {installed_version()}")
        raise typer.Exit(0)


def version_option() -> Any:
    """The app's ``--version`` option (a typer.Option for its callback)."""
    return typer.Option("--version", is_eager=True, callback=show_version,
                        help="Show the installed version of cnncost and exit.")


def global_first(args: Sequence[str]) -> list[str]:
    """The command line with the global options moved before the command (nothing after a
    ``--`` moves); ``--version`` with anything else is a UsageError."""
    args = list(args)
    end = args.index("--") if "--" in args else len(args)
    if "--version" in args[:end] and len(args) > 1:
        raise click.UsageError("--version takes no other arguments: cnncost --version")
    moved = [a for a in args[:end] if a in GLOBAL_FLAGS]
    return moved + [a for a in args[:end] if a not in GLOBAL_FLAGS] + args[end:]


def usage_line(exc: Any) -> str:
    """A click/typer usage error as one line: 'cnncost analyze: Invalid value for '--batch'
    / '-b': ... (cnncost analyze --help)'."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "cnncost"
    return f"{path}: {message} ({path} --help)"


class CnnCostCommand(TyperCommand):
    """A command whose number options refuse NaN: click's FloatRange lets it through every
    bound (``bench --max-time nan`` timed 1,000 samples, ``--tolerance nan`` matched all)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        for param in self.params:
            value = ctx.params.get(param.name)
            if isinstance(value, float) and math.isnan(value):
                raise click.UsageError(f"{param.opts[0]} nan: expected a number, not NaN",
                                       ctx=ctx)
        return list(rest)


class CnnCostGroup(TyperGroup):
    """The app's click group: global options anywhere, and every usage error in one line."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, global_first(args))

    def main(self, *args: Any, **kwargs: Any) -> Any:
        standalone_mode = kwargs.pop("standalone_mode", True)
        kwargs["standalone_mode"] = False  # errors come here, to be said in one line
        try:
            code = super().main(*args, **kwargs)
        except _NO_ARGS as exc:  # bare `cnncost`: the help
            if not standalone_mode:
                raise
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            if not standalone_mode:
                raise
            print_error(usage_line(exc))
            sys.exit(2)
        except typer.Abort:
            if not standalone_mode:
                raise
            print_error("aborted")
            sys.exit(2)
        except OutputError as exc:  # stdout failed outside a command (--help, --version)
            if not standalone_mode:
                raise
            print_error(str(exc))
            sys.exit(exc.exit_code)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


# --------------------------------------------------------------------------- a missing torch

# A module the base install leaves out, imported by a command that needs it: what brings it.
EXTRAS = {"torch": "cnncost[torch]"}


def missing_extra(exc: ModuleNotFoundError, command: str) -> str | None:
    """The one line for ``cnncost COMMAND`` that needs a package the install left out
    (torch), or None for any other missing module."""
    top = (exc.name or "").partition(".")[0]
    if top not in EXTRAS:
        return None
    return (f"cnncost {command} needs PyTorch here (modules, bench, training steps, --engine "
            f"torch, export), and it is not installed: pip install '{EXTRAS[top]}' (an "
            "installed torch 2.2 or later is kept)")


# --------------------------------------------------------------------------- the output


class OutputError(UsageError):
    """stdout cannot take the output: a full disk or device, closed, or its reader gone."""

    def __init__(self, exc: OSError) -> None:
        why = exc.strerror or str(exc)
        super().__init__(f"cannot write the output to stdout: {why}")


class _Stdout:
    """sys.stdout for the console script: a write or flush that fails raises OutputError
    (one line, exit 2) once, and what was left unwritten goes nowhere (the interpreter's
    last flush would fail again, with a message of its own)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _failed(self, exc: OSError) -> OutputError:
        try:  # what remains in the buffer is dropped into /dev/null, not reported twice
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
        except (OSError, AttributeError, ValueError):
            pass
        return OutputError(exc)

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # (click probes for a binary stream with b"")
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not text:  # (and with nothing to say, say nothing: a probe must not fail)
            return 0
        if self._stream is None:
            raise OutputError(OSError(errno.EBADF, "it is closed"))
        try:
            return int(self._stream.write(text))
        except OSError as exc:
            raise self._failed(exc) from None

    def flush(self) -> None:
        if self._stream is None:
            return
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._failed(exc) from None

    def isatty(self) -> bool:
        return self._stream is not None and bool(self._stream.isatty())

    def __getattr__(self, name: str) -> Any:
        if self._stream is None:
            raise AttributeError(name)
        return getattr(self._stream, name)


def _escaping(stream: Any) -> None:
    """Characters the stream's encoding cannot show are written as escapes (``\\u00e7``,
    valid in JSON too: render.console.unicode_escapes)."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        codecs.register_error(ESCAPE_ERRORS, unicode_escapes)
        with contextlib.suppress(ValueError, OSError):  # (a stream that cannot)
            reconfigure(errors=ESCAPE_ERRORS)


def run(app: Callable[[], Any]) -> None:
    """Run the app as the ``cnncost`` script: the output's encoding never fails, a stdout
    that cannot be written is one line and exit 2."""
    _escaping(sys.stdout)
    _escaping(sys.stderr)
    guarded = _Stdout(sys.stdout)
    sys.stdout = guarded
    code: Any = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code
    try:
        guarded.flush()  # what is still buffered must reach stdout before the exit code
    except OutputError as exc:
        print_error(str(exc))
        code = exc.exit_code
    if code:
        sys.exit(code)
