"""What the output formats share: the choices every renderer answers to (``Format``, and
``Units``, a cost table's compute column), user text in Markdown (md_text, md_line, md_code,
md_fence, md_cell: every renderer writes a name, description or path through one of them)
and in CSV (csv_writer: every CSV cnncost writes), and the cost table's columns and Markdown
head that its inference and training renderers (render.cost, render.train) both use.

What belongs here: a piece two renderers of different results (or a result and its variant)
share. A result's own rendering is in its renderer (render.cost, render.compare, ...). No
torch, no rich.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from typing import Any

from cnncost.fmt import shape
from cnncost.table import CostTable


class Format(str, Enum):
    """Output formats of analyze/compare/sweep/bench."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    MD = "md"
    HTML = "html"  # one self-contained page (each renderer's, from the render/html.py kit)


def text_as(fmt: Enum, **makers: Callable[[], str]) -> str:
    """The text of ``fmt`` (a Format, or a command's own choices such as advise's), made by
    the maker named by its value (json=..., csv=..., md=..., html=...): every result's
    render_text in one rule; a format without a maker (the terminal's table) is a
    ValueError."""
    make = makers.get(fmt.value)
    if make is None:
        raise ValueError(f"{fmt} is not a text format")
    return make()


class Units(str, Enum):
    """Which compute column a table shows."""

    MACS = "macs"
    FLOPS = "flops"


CSV_FIELDS = ("name", "kind", "input_shape", "output_shape", "params", "buffers", "macs",
              "flops", "output_bytes", "receptive_field", "formula")


# --------------------------------------------------------------------------- user text in Markdown
# A spec's or report's text (names, descriptions, paths) goes into Markdown through md_text
# (prose, table cells) or md_code (a code span), never as is: no HTML, link, image or
# emphasis of its own, and no line break that would end a table row or a list item.


def one_line(text: str) -> str:
    """``text`` with control characters, line breaks and lone surrogates shown as escapes:
    'a\\nb' -> 'a\\\\nb' (what a one-line cell or an error message can hold)."""
    from cnncost.render.console import literal

    return _SURROGATE.sub(_escaped, literal(text).translate(_LINE_BREAKS))


def md_text(text: str) -> str:
    """User text made inert in Markdown (inline, never opening a line): one_line; "<" as an
    entity (no tag, no autolink); "\\" and "|" escaped (no escape of ours undone, no cell
    split); "*", "_", "~" and "`" escaped where two of them could pair into emphasis, strike
    or code; no "](" of a link or image."""
    if _PLAIN.fullmatch(text):
        return text  # a name such as layer1.0.conv2 or peak_memory_bytes: nothing to escape
    text = one_line(text)
    delimiters = Counter(ch for i, ch in enumerate(text)
                         if ch in "*_~`" and not _intraword(text, i))
    paired = {ch for ch, n in delimiters.items() if n > 1}
    out = [("\\" + ch if ch in "\\|" or (ch in paired and not _intraword(text, i))
            else "&lt;" if ch == "<" else ch) for i, ch in enumerate(text)]
    return "".join(out).replace("](", "\\](")


def _intraword(text: str, i: int) -> bool:
    """An "_" between two letters or digits, which opens and closes no emphasis."""
    return (text[i] == "_" and 0 < i < len(text) - 1 and text[i - 1].isalnum()
            and text[i + 1].isalnum())


def md_line(text: str) -> str:
    """User text as a line of its own (a paragraph): md_text, and no heading, list, quote or
    setext underline made of what it starts with (#, -, +, =, >, 1., indentation)."""
    text = md_text(text.strip())
    if text[:1] in ("#", "+", "=", "-", ">"):
        return "\\" + text
    return re.sub(r"^(\d+)([.)])", r"\1\\\2", text)  # "1. x" would open a list


def md_code(text: str) -> str:
    """User text as a Markdown code span (shown literally, HTML included): one_line, "|"
    escaped (a table cell), fenced by more backticks than it holds."""
    text = one_line(text).replace("|", "\\|")
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_fence(lines: Sequence[str]) -> list[str]:
    """Lines as a fenced code block whose fence no line of them can close."""
    longest = max((len(r) for line in lines for r in re.findall("`{3,}", line)), default=2)
    fence = "`" * (longest + 1)
    return [fence, *(one_line(line) for line in lines), fence]


def md_cell(text: str) -> str:
    """User text safe inside a Markdown table cell (md_text)."""
    return md_text(text)


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match[0]):04x}"


# Words of letters and digits joined by one "." "_" "-" "/" "," "+" "%" or space: no markup
# can start inside (an "_" between two letters or digits opens no emphasis). Each joint is
# one character, so a long name is matched in one pass (no backtracking over its splits).
_PLAIN = re.compile(r"[A-Za-z0-9]+(?:[._\-/,+% ][A-Za-z0-9]+)*%?")
_LINE_BREAKS = str.maketrans({"\n": "\\n", "\t": "\\t", "\u2028": "\\u2028",
                              "\u2029": "\\u2029", "\x85": "\\x85"})
_SURROGATE = re.compile("[\ud800-\udfff]")


# --------------------------------------------------------------------------- user text in CSV
# OWASP's rule for CSV injection: a cell starting with one of these is a formula to a
# spreadsheet (=HYPERLINK(...), +cmd|..., @SUM(...)); a quote before it makes it text. (A tab
# or carriage return, OWASP's other two, is shown as an escape by one_line first.)
_FORMULA_START = ("=", "+", "-", "@")


def csv_cell(value: Any) -> Any:
    """A CSV cell as cnncost writes it: numbers as they are; text on one line (one_line), with
    a quote before it where it would start a formula (not a number such as -0.5, which is a
    number to a spreadsheet too)."""
    if not isinstance(value, str):
        return value
    text = one_line(value)
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class CsvWriter:
    """A ``csv.writer`` (rows end in "\\n") whose every cell is :func:`csv_cell`'s: the one
    writer of every CSV cnncost writes (a test holds that no other module makes one)."""

    def __init__(self, buf: io.StringIO) -> None:
        self._writer = csv.writer(buf, lineterminator="\n")

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([csv_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(buf: io.StringIO) -> CsvWriter:
    """The CSV writer into ``buf`` (:class:`CsvWriter`)."""
    return CsvWriter(buf)


def markdown_head(table: CostTable, title: str, mode: str = "") -> list[str]:
    """The lines that open a Markdown table: title, description, source and the recipe
    (input, dtype, policy, then ``mode`` and the --set vars)."""
    recipe = (f"- input: `{shape(table.input)}`, dtype `{table.dtype}`, policy "
              f"`{table.policy}`{mode}")
    if table.vars:
        recipe += ", vars " + ", ".join(md_code(f"{k}={v}") for k, v in sorted(table.vars.items()))
    lines = [f"# {md_text(title)}", ""]
    if table.description:
        lines += [md_line(table.description), ""]
    return [*lines, f"- source: {md_code(table.source)}", recipe]
