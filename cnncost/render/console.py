"""The terminal's consoles, and the one rule for the text they print: literally.

Every rich Console cnncost prints with is a :class:`SafeConsole` made by :func:`console`:

- rich markup (``[red]``, ``[link=...]``) and emoji codes (``:thumbs_up:``) are off, so a
  spec name, a layer name, a path or an error message quoting user input prints as written;
  styling is given as rich ``Text`` styles, never as markup in strings;
- control characters in any text it prints (ESC ] 0;... sets a window title, ESC [2J clears
  the screen, a carriage return overwrites a line) are shown escaped (``\\x1b``) by
  :func:`literal`: strings before they are measured (so a column is as wide as the escaped
  name), and every text segment again as it is printed (``Text`` made elsewhere); the escape
  sequences rich itself emits for colour and progress bars are styles and control segments,
  not text, and pass unchanged.

Plain text cnncost writes to stdout or stderr itself (``--format md`` on the terminal,
``check``'s diff, ``explain``) goes through :func:`literal` too (:func:`write_stdout`). Files
written with ``--output`` keep their text exactly.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from cnncost.caches import cache

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType
    from rich.segment import Segment
    from rich.text import Text

# C0 controls but newline and tab, DEL, C1 controls, and the bidirectional overrides and
# isolates that reorder what a terminal shows (U+202A-U+202E, U+2066-U+2069); and lone
# surrogates (U+D800-U+DFFF, from a YAML "\ud800"), which no encoding can write.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x7F else f"\\u{code:04x}"


# The escapes of what is shown escaped, one form for every output: \x1b for a C0 control
# (JSON has already written those as \u001b), \u00e9 for any other character, a surrogate
# pair (\ud83d\ude00) above U+FFFF, so that JSON printed to stdout stays JSON.
ESCAPE_ERRORS = "cnncost.escape"


def unicode_escapes(exc: UnicodeError) -> tuple[str, int]:
    """The codec error handler ``ESCAPE_ERRORS``: what the encoding cannot hold as \\uXXXX
    escapes (a lone surrogate as its own escape)."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = []
    for ch in exc.object[exc.start:exc.end]:
        code = ord(ch)
        if code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out), exc.end


def literal(text: str) -> str:
    """``text`` with every control character shown as an escape: 'a\\x1b[2Jb' -> 'a\\\\x1b[2Jb'.

    Idempotent (an escaped text has no control characters left)."""
    return _CONTROL.sub(_escaped, text)


def write_stdout(text: str) -> None:
    """Plain text to stdout, control characters escaped."""
    sys.stdout.write(literal(text))


_SAFE: dict[str, type] = cache("render: the safe console class")  # made on first use


def _safe_class() -> type:
    """SafeConsole, defined on first use (importing rich costs ~0.1 s --help need not pay)."""
    if "cls" not in _SAFE:
        from rich.console import Console

        class SafeConsole(Console):
            """A Console that prints every text segment through :func:`literal`."""

            # The thread whose outermost render's segments are being filtered (a progress
            # bar's refresh thread renders on its own and is filtered on its own).
            _filtering: int | None = None

            def render_str(self, text: str, **options: Any) -> Text:
                # Before measuring: a table column is as wide as the escaped name.
                return super().render_str(literal(text), **options)

            def render(self, renderable: RenderableType,
                       options: ConsoleOptions | None = None) -> Iterable[Segment]:
                if self._filtering == threading.get_ident():
                    # A renderable inside another (a table's cell): its segments reach the
                    # outermost render, which escapes them, so each text is scanned once.
                    return super().render(renderable, options)
                return self._literal(super().render(renderable, options))

            def _literal(self, segments: Iterable[Segment]) -> Iterable[Segment]:
                from rich.segment import Segment

                self._filtering = threading.get_ident()
                try:
                    for seg in segments:
                        if seg.control or not _CONTROL.search(seg.text):
                            yield seg
                        else:
                            yield Segment(literal(seg.text), seg.style)
                finally:
                    self._filtering = None

        _SAFE["cls"] = SafeConsole
    return _SAFE["cls"]


def console(**options: Any) -> Console:
    """A SafeConsole: no markup, no emoji codes, no number highlighting, controls escaped."""
    defaults = {"markup": False, "emoji": False, "highlight": False}
    made: Console = _safe_class()(**{**defaults, **options})
    return made


class LazyConsole:
    """A console made on first use."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def _real(self) -> Console:
        if self._console is None:
            self._console = console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)

    def __enter__(self) -> Console:  # special methods bypass __getattr__
        return self._real().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._real().__exit__(*exc)


err_console: Any = LazyConsole(stderr=True, soft_wrap=True)


def print_error(message: str) -> None:
    """The one error line on stderr: ``error: `` (red on a terminal) and the message as it is."""
    from rich.text import Text

    err_console.print(Text.assemble(("error:", "red"), " ", message))
