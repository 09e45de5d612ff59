"""cnncost's own table layout (cnncost.render.fasttable.FastTable: the cost, sweep, compare
and advise tables) prints exactly what rich's Table prints for them: the same bytes on a
plain console and on a colour terminal, the same measurements, the same text file.

Each case builds the table twice, once as a FastTable and once with rich's Table in its
place, and compares the output. The bundled specs are laid out by FastTable itself (checked,
so a comparison with rich's fallback cannot pass for one); names it cannot guarantee (non-ASCII,
wide characters, spaces, control characters) go to rich's Table and print the same.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache, partial

import pytest
from rich.console import RenderableType
from rich.table import Table
from torch import nn

import cnncost
from cnncost.api import analyze_target
from cnncost.render import fasttable
from cnncost.render.console import console
from cnncost.render.cost import rich_table
from cnncost.render.formats import Units
from cnncost.render.terminal import (
    _tables,
    fit_width,
    natural_width,
    tables_width,
    to_text,
)
from cnncost.sources import bundled_specs
from cnncost.table import CostTable

BUNDLED = list(bundled_specs())
WIDTHS = (40, 60, 80, 100, 200)
Make = Callable[[], RenderableType]


@cache
def counted(name: str, mode: str = "inference") -> CostTable:
    return analyze_target(name, mode=mode)


def both(make: Make, monkeypatch: pytest.MonkeyPatch) -> tuple[RenderableType, RenderableType]:
    """(the renderable as cnncost draws it, the same drawn with rich's Table)."""
    fast = make()
    with monkeypatch.context() as m:
        m.setattr(fasttable, "FastTable", Table)
        slow = make()
    assert any(isinstance(t, fasttable.FastTable) for t in _tables(fast))
    assert not any(isinstance(t, fasttable.FastTable) for t in _tables(slow))
    return fast, slow


def printed(renderable: RenderableType, width: int, colour: bool) -> tuple[str, int]:
    """What print_whole prints on a terminal ``width`` wide, and the width it prints at."""
    out = console(file=io.StringIO(), width=width, color_system="truecolor" if colour else None,
                  force_terminal=colour)
    out.width = fit_width(renderable, out.width)
    out.print(renderable)
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert not colour or "\x1b[1m" in text  # the header is bold
    return text, out.width


def laid_out_here(renderable: RenderableType, width: int) -> bool:
    return all(t.layout(width) is not None for t in _tables(renderable)
               if isinstance(t, fasttable.FastTable))


def same(make: Make, monkeypatch: pytest.MonkeyPatch, widths: tuple[int, ...] = WIDTHS,
         colours: tuple[bool, ...] = (False, True), fast: bool = True) -> None:
    """Both drawings print the same bytes at each width (and measure the same); the fast
    one was laid out by FastTable (``fast``) or by rich's Table."""
    mine, theirs = both(make, monkeypatch)
    for width in widths:
        for colour in colours:
            got, at = printed(mine, width, colour)
            assert laid_out_here(mine, at) is fast
            assert got == printed(theirs, width, colour)[0], (width, colour)
    assert natural_width(mine) == natural_width(theirs)
    assert tables_width(mine) == tables_width(theirs)


# --------------------------------------------------------------------------- bundled specs


@pytest.mark.parametrize("name", ["resnet50", "resnet18"])
def test_per_layer_table_prints_as_rich_at_every_width(name: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    same(lambda: rich_table(counted(name)), monkeypatch)


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_spec_prints_as_rich_prints_it(name: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # rich's half of a comparison costs ~0.6 ms a row: the whole zoo at the ten settings
    # would take most of a minute, so each spec gets a narrow width on a plain console and
    # a wide one on a colour terminal, the specs taking turns at each
    turn = BUNDLED.index(name) % 2
    mine, theirs = both(lambda: rich_table(counted(name)), monkeypatch)
    for width, colour in ((WIDTHS[turn], False), (WIDTHS[2 + turn], True)):
        got, at = printed(mine, width, colour)
        assert laid_out_here(mine, at)
        assert got == printed(theirs, width, colour)[0], width


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("name", BUNDLED)
def test_block_tables_print_as_rich_prints_them(name: str, depth: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    turn = BUNDLED.index(name) % 2
    same(lambda: rich_table(counted(name), depth=depth), monkeypatch,
         widths=(WIDTHS[turn + 2 * (depth - 1)],), colours=(depth == turn + 1,))


@pytest.mark.parametrize("name", ["resnet50", "googlenet", "lenet5", "unet"])
def test_to_text_writes_what_rich_writes(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for depth in (None, 2):
        make = partial(rich_table, counted(name), depth=depth)
        mine, theirs = both(make, monkeypatch)
        assert to_text(mine) == to_text(theirs)
        mine, theirs = both(make, monkeypatch)
        assert to_text(mine, width=50) == to_text(theirs, width=50)


@pytest.mark.parametrize(("units", "sort", "top"), [
    (Units.FLOPS, None, None), (Units.MACS, "macs", 10), (Units.FLOPS, "params", 3),
    (Units.MACS, "output_bytes", None)])
def test_units_sort_and_top_print_as_rich(units: Units, sort: str | None, top: int | None,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for depth in (None, 1):
        same(partial(rich_table, counted("googlenet"), units, depth, sort, top), monkeypatch,
             widths=(40, 80, 200))


# --------------------------------------------------------------------------- other tables


class Frozen(nn.Module):
    """A frozen stem (fine-tuning) and a long module name, so the frozen column shows."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3).requires_grad_(False)
        self.a_rather_long_block_name_for_folding = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, 2))

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.head(self.a_rather_long_block_name_for_folding(self.stem(x)))


class Uncounted(nn.Module):
    """A layer with an op no formula counts (its kind says so)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.conv(x).cumsum(1)


def test_frozen_column_prints_as_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    table = cnncost.analyze(Frozen(), input=(3, 8, 8))
    assert table.totals.frozen_params > 0
    same(lambda: rich_table(table), monkeypatch)
    same(lambda: rich_table(table, depth=1), monkeypatch, widths=(40, 100))


def test_uncounted_kinds_print_as_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    table = cnncost.analyze(Uncounted(), input=(3, 4, 4))
    assert table.uncounted
    same(lambda: rich_table(table), monkeypatch)


@pytest.mark.parametrize("name", ["lenet5", "unet", "textbook/resnet_bottleneck"])
def test_training_step_tables_print_as_rich(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    table = counted(name, "train")
    for units in Units:
        same(partial(rich_table, table, units), monkeypatch)
        same(partial(rich_table, table, units, depth=1, sort="macs", top=5), monkeypatch,
             widths=(40, 100))
    frozen = cnncost.analyze(Frozen(), input=(3, 8, 8), mode="train")
    same(lambda: rich_table(frozen), monkeypatch, widths=(40, 100))


# --------------------------------------------------------------------------- fallback


def renamed(table: CostTable, name: str) -> CostTable:
    """The table with its second layer renamed."""
    import dataclasses

    layers = list(table.layers)
    layers[1] = dataclasses.replace(layers[1], name=name)
    return dataclasses.replace(table, layers=tuple(layers))


@pytest.mark.parametrize("name", [
    "conv\u00e9", "\u5377\u79ef\u5c42.weight", "two words", "tab\there", "a\x1b[2Jb", "",
    "emoji\U0001f600", "[bold]markup[/bold]"])
def test_names_rich_must_lay_out_print_as_rich(name: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    table = renamed(counted("lenet5"), name)
    ascii_only = name.isascii() and name.isprintable() and " " not in name
    # laid out here where the name is plain ASCII (control characters come escaped)
    fast = ascii_only or name == "a\x1b[2Jb"
    same(lambda: rich_table(table), monkeypatch, widths=(40, 100), fast=fast)
    same(lambda: rich_table(table, depth=1), monkeypatch, widths=(40, 100), fast=fast)


def test_table_too_wide_for_the_console_is_left_to_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    mine, theirs = both(lambda: rich_table(counted("resnet18")), monkeypatch)
    for width in (30, 60):  # without fit_width: rich collapses and cuts, as before
        for colour in (False, True):
            outs = []
            for renderable in (mine, theirs):
                out = console(file=io.StringIO(), width=width, force_terminal=colour,
                              color_system="truecolor" if colour else None)
                out.print(renderable)
                outs.append(out.file.getvalue())  # type: ignore[attr-defined]
            assert outs[0] == outs[1]
    assert not laid_out_here(mine, 30)


# --------------------------------------------------------------------------- other layouts


def synthetic(cls: type[Table], **options: object) -> Table:
    """A table with what the cost tables do not have: a right-justified folding column, a
    header and a footer that fold, styles, an empty cell, a wide minimum."""
    out = cls(show_footer=True, **options)
    out.add_column("a-long-header", footer="a-long-footer", overflow="fold", justify="right",
                   width=4, style="cyan", header_style="magenta")
    out.add_column("b", footer="", no_wrap=True, min_width=9)
    out.add_column("c", justify="right", no_wrap=True, footer_style="red")
    out.add_row("abcdefghij", "two words", "1")
    out.add_row("", "x", "12,345")
    out.add_row("abcd", "", "")
    return out


@pytest.mark.parametrize("options", [
    {}, {"show_edge": False}, {"border_style": "green", "header_style": "bold blue"},
    {"style": "on black", "footer_style": "italic"}], ids=str)
@pytest.mark.parametrize("name", ["HEAVY_HEAD", "SIMPLE_HEAVY", "ASCII", "ROUNDED", "MINIMAL"])
def test_other_boxes_and_styles_print_as_rich(name: str, options: dict[str, object]) -> None:
    from rich import box

    for rows in (True, False):
        mine = synthetic(fasttable.FastTable, box=getattr(box, name), **options)
        theirs = synthetic(Table, box=getattr(box, name), **options)
        if not rows:
            for table in (mine, theirs):
                table.rows.clear()
                for column in table.columns:
                    column._cells.clear()
        assert mine.layout(80) is not None
        for colour in (False, True):
            for renderable in (mine, theirs):
                out = console(file=io.StringIO(), width=80, force_terminal=colour,
                              color_system="truecolor" if colour else None)
                out.print(renderable)
                if renderable is mine:
                    got = out.file.getvalue()  # type: ignore[attr-defined]
            assert got == out.file.getvalue()  # type: ignore[attr-defined]
        probe = console(file=io.StringIO(), width=80)
        assert probe.measure(mine) == probe.measure(theirs)


# --------------------------------------------------------------------------- sweep, compare, advise


# (spec, --set, --zip, --batch, mode): one variable, two, a zip, failing points (at res 1
# and 2 one of vgg16's 2x2 max pools is larger than its input), a batch sweep, a training
# step, and 65 points (a two-digit index column that fit_width may cut)
SWEEPS = [
    ("resnet50", ("res=128..640:64",), (), None, "inference"),
    ("mobilenetv2", ("res=96,160,224", "width=0.5,1.0"), (), None, "inference"),
    ("efficientnet_b0", ("width=1.0,1.1,1.2", "depth=1.0,1.1,1.2", "res=224,240,260"),
     ("width,depth,res",), None, "inference"),
    ("vgg16", ("res=1,2,32,224",), (), None, "inference"),
    ("resnet18", ("res=64,128",), (), "1,8,64", "inference"),
    ("lenet5", ("res=28..92:1",), (), None, "inference"),
    ("textbook/resnet_bottleneck", ("C=64,256",), (), None, "train"),
]


@cache
def swept(index: int) -> object:
    from cnncost.sweep import run_sweep

    model, sets, zips, batch, mode = SWEEPS[index]
    return run_sweep(model, sets, zips, batch, mode=mode)


@pytest.mark.parametrize("index", range(len(SWEEPS)), ids=[s[0] for s in SWEEPS])
def test_sweep_tables_print_as_rich(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from cnncost.render.sweep import rich_sweep

    result = swept(index)
    if SWEEPS[index][0] == "vgg16":
        assert result.failed and result.baseline is not None  # type: ignore[attr-defined]
    # at 40 and 60 columns the table is wider: fit_width widens the console and fixes the
    # index column at one character (rich cuts "10" to an ellipsis), laid out here too
    same(lambda: rich_sweep(result), monkeypatch,  # type: ignore[arg-type]
         widths=(40, 60, 200) if index % 2 else (40, 120))


def test_sweep_table_too_wide_for_the_console_is_left_to_rich(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from cnncost.render.sweep import rich_sweep

    result = swept(0)
    mine, theirs = both(lambda: rich_sweep(result), monkeypatch)  # type: ignore[arg-type]
    for width in (30, 70):  # without fit_width: rich collapses and cuts
        outs = []
        for renderable in (mine, theirs):
            out = console(file=io.StringIO(), width=width, color_system=None)
            out.print(renderable)
            outs.append(out.file.getvalue())  # type: ignore[attr-defined]
        assert outs[0] == outs[1]
        assert not laid_out_here(mine, width)


@pytest.mark.parametrize(("models", "options"), [
    (("alexnet", "vgg16", "resnet50", "mobilenetv2"), {}),
    (("resnet18", "resnet18"), {"overrides": {"res": 112}}),
    (("lenet5", "unet"), {"mode": "train"}),
], ids=["zoo", "overrides", "train"])
def test_compare_tables_print_as_rich(models: tuple[str, ...], options: dict[str, object],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from cnncost.api import compare_targets
    from cnncost.render.compare import compare_rich

    comparison = compare_targets(models, **options)  # type: ignore[arg-type]
    same(lambda: compare_rich(comparison), monkeypatch, widths=(40, 80, 200))


def test_compare_table_with_two_inputs_prints_as_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    # lenet5 reads 1 x 32 x 32, alexnet 3 x 224 x 224: an input column
    from cnncost.api import compare_targets
    from cnncost.render.compare import compare_rich

    comparison = compare_targets(["lenet5", "alexnet"])
    assert len({r.input for r in comparison.rows}) == 2
    same(lambda: compare_rich(comparison), monkeypatch, widths=(40, 120))


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "resnet18"])
def test_advice_tables_print_as_rich(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from cnncost.api import advise_target
    from cnncost.render.advice import _where, advice_rich

    advice = advise_target(name)
    assert advice.findings
    # a layer cell "conv2 (+3 uses)" folds at its spaces: rich's Table lays that one out
    fast = all(" " not in _where(f) for f in advice.findings)
    same(lambda: advice_rich(advice), monkeypatch, widths=(40, 80, 200), fast=fast)


# --------------------------------------------------------------------------- other options


def unpadded(cls: type[Table], **options: object) -> Table:
    """A table as the sweep's: no footer, no padding at the edges, dim columns; and a fixed
    width narrower than some cells (cut with an ellipsis, or cropped)."""
    out = cls(pad_edge=False, **options)
    out.add_column("#", justify="right", style="dim", width=2)
    out.add_column("name", overflow="crop", width=3)
    out.add_column("fold", overflow="fold", width=3, justify="right")
    out.add_column("value", justify="right", no_wrap=True, style="dim")
    out.add_row("1", "ab", "abcdefg", "1.00x")
    out.add_row("100", "abcdef", "", "two words")
    out.add_row("12", "", "x", "")
    return out


@pytest.mark.parametrize("footer", [False, True])
@pytest.mark.parametrize("name", ["SIMPLE_HEAVY", "ASCII", "ROUNDED", "HEAVY_HEAD"])
def test_unpadded_tables_print_as_rich(name: str, footer: bool) -> None:
    from rich import box

    for rows in (True, False):
        tables = [unpadded(cls, box=getattr(box, name), show_footer=footer)
                  for cls in (fasttable.FastTable, Table)]
        if not rows:
            for table in tables:
                table.rows.clear()
                for column in table.columns:
                    column._cells.clear()
        assert tables[0].layout(80) is not None
        for colour in (False, True):
            outs = []
            for renderable in tables:
                out = console(file=io.StringIO(), width=80, force_terminal=colour,
                              color_system="truecolor" if colour else None)
                out.print(renderable)
                outs.append(out.file.getvalue())  # type: ignore[attr-defined]
            assert outs[0] == outs[1], (rows, colour)
        probe = console(file=io.StringIO(), width=80)
        assert probe.measure(tables[0]) == probe.measure(tables[1])


def test_a_cut_cell_with_a_space_is_left_to_rich() -> None:
    table = unpadded(fasttable.FastTable)
    table.add_row("1", "a b c d", "", "")
    assert table.layout(80) is None
