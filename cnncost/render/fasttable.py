"""A rich Table that lays out cnncost's tables itself, byte for byte as rich would.

rich's Table measures and renders every cell through Padding, Text.wrap and render_lines:
about 0.2 s for resnet50's 175 rows, 1.5 s for a 1,000-point sweep. The cost, sweep,
compare and advise tables need none of that generality: their folding columns have widths
fixed by ``terminal.fit_width`` (a cell longer than such a width folds, or is cut as rich
cuts it), the others print whole, and every cell is one line of plain ASCII; a footer or
none, padded table edges or not (``pad_edge``). :class:`FastTable` is a ``rich.table.Table`` (so
``fit_width``, ``tables_width`` and anything else reading columns keep working) whose
``__rich_console__`` and ``__rich_measure__`` compute that simple layout directly, yielding
the segments rich's Table yields, with the same styles: rich still does all the encoding.

It lays out only what it can guarantee to match (see :meth:`FastTable.layout`): any other
cell (a non-ASCII or wide character, whitespace in a folding cell, markup-like text, a
styled Text), table option or console too narrow for the whole table goes to rich's own
Table, unchanged. Importing this module imports rich: import it where a table is drawn.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.table import Column, Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult

# A cell rich renders as written: printable ASCII, words separated by spaces, nothing
# leading or trailing (a right-justified cell loses trailing spaces in rich), no markup
# ("[") or emoji code (":") a str cell could be parsed for. Folding cells: one word only.
_LINE = re.compile(r"(?:[!-~]+(?: +[!-~]+)*)?")
_WORD = re.compile(r"[!-~]*")
_PARSED = re.compile(r"[\[:]")
_PADDING = (0, 1, 0, 1)

Lines = list[str]


def _cell_text(cell: RenderableType, fold: bool) -> str | None:
    """The text of a cell rich would print as written, or None."""
    if isinstance(cell, str):
        if _PARSED.search(cell):
            return None
        text = cell
    elif type(cell) is Text:
        if (cell.style or cell.spans or cell.justify or cell.overflow
                or cell.no_wrap is not None or cell.end != "\n"):
            return None
        text = cell.plain
    else:
        return None
    return text if (_WORD if fold else _LINE).fullmatch(text) else None


def _column_texts(column: Column, footer: bool) -> list[str] | None:
    """Header, cells and (``footer``) footer of a column as plain text, or None if one is
    not plain."""
    fold = not column.no_wrap
    texts = []
    for cell in (column.header, *column.cells, *((column.footer,) if footer else ())):
        text = _cell_text(cell, fold)
        if text is None:
            return None
        texts.append(text)
    return texts


def _supported(table: Table) -> bool:
    """Whether the table's options are the ones laid out here (the cost tables', the sweep's:
    a footer or none, padded edges or not)."""
    return (table.box is not None and table.show_header
            and not table.show_lines and not table.leading and table.padding == _PADDING
            and not table.collapse_padding and not table.expand
            and table.width is None and table.min_width is None and not table.title
            and not table.caption and not table.row_styles and not table.highlight
            and all(r.style is None and not r.end_section for r in table.rows)
            and all(c.justify in ("left", "right") and c.vertical == "top"
                    and c.max_width is None and c.ratio is None and not c.highlight
                    for c in table.columns))


def _pads(table: Table) -> list[tuple[int, int]]:
    """Each column's (left, right) padding: one space, none at the table's edges without
    pad_edge (rich's ``_get_cells``/``_get_padding_width``)."""
    last = len(table.columns) - 1
    edge = 1 if table.pad_edge else 0
    return [(edge if i == 0 else 1, edge if i == last else 1) for i in range(last + 1)]


def _column_width(column: Column, texts: list[str]) -> int | None:
    """The column's content width as rich lays it out when the table fits, or None where
    rich would cut a cell in a way not matched here. A fixed width narrower than a cell:
    folded (a folding column) or cut (``overflow`` ellipsis or crop, the cell one word)."""
    natural = max(len(t) for t in texts)
    if column.width is None:
        return max(natural, column.min_width or 0)
    width = column.width
    if width < 1 or natural <= width:
        return None if width < 1 else width
    if column.overflow == "fold" and not column.no_wrap:
        return width
    cut_ok = column.overflow in ("ellipsis", "crop")
    return width if cut_ok and all(" " not in t for t in texts if len(t) > width) else None


def _lines(text: str, width: int, right: bool, overflow: str) -> Lines:
    """A cell's lines, each ``width`` wide: folded every ``width`` characters (one word), or
    cut to ``width`` ending in an ellipsis or cropped (rich's Text.truncate)."""
    if len(text) <= width:
        return [text.rjust(width) if right else text.ljust(width)]
    if overflow == "ellipsis":
        return [text[:width - 1] + "\u2026"]
    if overflow == "crop":
        return [text[:width]]
    chunks = [text[i:i + width] for i in range(0, len(text), width)]
    return [c.rjust(width) if right else c.ljust(width) for c in chunks]


class FastTable(Table):
    """A rich Table that lays out plain one-line ASCII cells itself, exactly as rich does,
    and hands anything else to rich's Table."""

    def layout(self, max_width: int) -> tuple[list[list[str]], list[int]] | None:
        """(each column's texts: header, cells, footer if shown; content widths) when this
        table is laid out here at ``max_width``, or None when rich's Table must lay it out."""
        if not self.columns or not _supported(self):
            return None
        texts, widths, total = [], [], self._extra_width
        for column, (left, right) in zip(self.columns, _pads(self), strict=True):
            column_texts = _column_texts(column, self.show_footer)
            width = None if column_texts is None else _column_width(column, column_texts)
            if column_texts is None or width is None or width + left + right < 1:
                return None
            texts.append(column_texts)
            widths.append(width)
            total += width + left + right
        # everything fits: rich's widths are the measured ones, nothing collapses
        return (texts, widths) if total <= max_width else None

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        plan = self.layout(options.max_width)
        if plan is None:
            return super().__rich_measure__(console, options)
        texts, widths = plan
        minimum = maximum = self._extra_width
        for column, column_texts, width, (left, right) in zip(
                self.columns, texts, widths, _pads(self), strict=True):
            maximum += width + left + right
            if column.width is not None:
                minimum += width + left + right
                continue
            words = max(max((len(w) for w in t.split()), default=len(t)) for t in column_texts)
            minimum += max(words, column.min_width or 0) + left + right
        return Measurement(minimum, maximum)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        plan = self.layout(options.max_width)
        if plan is None:
            yield from super().__rich_console__(console, options)
            return
        yield from self._render_fast(console, options, *plan)

    def _render_fast(self, console: Console, options: ConsoleOptions, texts: list[list[str]],
                     widths: list[int]) -> Iterator[Segment]:
        """rich's Table._render for one-line cells: the styles computed as it computes them
        (a row's style is null: no row styles), the box drawn by the same Box methods."""
        get = console.get_style
        border = get(self.style or "") + get(self.border_style or "")
        header, footer = get(self.header_style or ""), get(self.footer_style or "")
        null = Style.null()
        box = self.box
        assert box is not None
        box = box.substitute(options, safe=self.safe_box if self.safe_box is not None
                             else console.safe_box)
        pads = _pads(self)
        cells = [w + left + right for w, (left, right) in zip(widths, pads, strict=True)]
        edge = self.show_edge
        newline = Segment.line()
        right = [c.justify == "right" for c in self.columns]
        overflows = [c.overflow for c in self.columns]
        heads = [header + get(c.header_style) for c in self.columns]
        foots = [footer + get(c.footer_style) for c in self.columns]
        bodies = [get(c.style or "") + null for c in self.columns]
        count = len(texts[0])
        if edge:
            yield Segment(box.get_top(cells), border)
            yield newline
        for index in range(count):
            first, last = index == 0, index == count - 1
            foot = last and self.show_footer and not first
            styles = heads if first else foots if foot else bodies
            left, end, divider = ((box.head_left, box.head_right, box.head_vertical) if first
                                  else (box.foot_left, box.foot_right, box.foot_vertical)
                                  if last else (box.mid_left, box.mid_right, box.mid_vertical))
            if foot:
                yield Segment(box.get_row(cells, "foot", edge=edge), border)
                yield newline
            row = [_lines(t[index], w, r, o)
                   for t, w, r, o in zip(texts, widths, right, overflows, strict=True)]
            yield from _row_segments(row, (cells, pads), styles, bottom=first,
                                     edges=(left, end) if edge else None,
                                     divider=(divider, border if divider.strip()
                                              else null.background_style + border),
                                     border=border)
            if first:
                yield Segment(box.get_row(cells, "head", edge=edge), border)
                yield newline
        if edge:
            yield Segment(box.get_bottom(cells), border)
            yield newline


def _row_segments(row: list[Lines], shape: tuple[list[int], list[tuple[int, int]]],
                  styles: list[Style], bottom: bool,
                  edges: tuple[str, str] | None, divider: tuple[str, Style],
                  border: Style) -> Iterator[Segment]:
    """The segments of one table row, line by line: edge, padded cells between dividers,
    edge, newline. Cells shorter than the row are filled with blank lines below (above for
    the header row: rich aligns it to the bottom). Runs of unstyled segments are joined
    into one (the same bytes: rich prints an unstyled segment's text as it is)."""
    cells, pads = shape
    height = max(len(lines) for lines in row)
    filled: list[list[str | None]] = [_fill(lines, height, bottom) for lines in row]
    last = len(row) - 1
    for line_no in range(height):
        parts: list[tuple[str, Style | None]] = []
        if edges:
            parts.append((edges[0], border))
        for i, lines in enumerate(filled):
            text, style = lines[line_no], styles[i]
            if text is None:  # a blank line filling the cell, padding included
                parts.append((" " * cells[i], style))
            else:
                left, right = pads[i]
                if left:
                    parts.append((" " * left, style))
                parts.append((text, style or None))
                if right:
                    parts.append((" " * right, style))
            if i != last:
                parts.append(divider)
        if edges:
            parts.append((edges[1], border))
        yield from _joined(parts)
        yield Segment.line()


def _fill(lines: Lines, height: int, bottom: bool) -> list[str | None]:
    if len(lines) == height:
        return list(lines)
    blank: list[str | None] = [None] * (height - len(lines))
    return [*blank, *lines] if bottom else [*lines, *blank]


def _joined(parts: Iterable[tuple[str, Style | None]]) -> Iterator[Segment]:
    """Segments of ``parts``, consecutive unstyled ones (None or a null Style) joined."""
    run: list[str] = []
    for text, style in parts:
        if not style:
            run.append(text)
            continue
        if run:
            yield Segment("".join(run))
            run = []
        yield Segment(text, style)
    if run:
        yield Segment("".join(run))
