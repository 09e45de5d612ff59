"""README.md: every shell example (`$ cnncost ...` in a fenced block) prints what it shows.

The README is the user's manual, so each example is run as shown and its output compared:

- a block without ``...`` must be the command's whole output, line for line (trailing
  whitespace ignored);
- a line that is only ``...`` stands for lines left out: the shown runs of lines between
  ellipses must appear in the output in that order, each run as consecutive lines, the first
  at the start and the last at the end unless an ellipsis stands there; a ``...`` inside a
  line stands for any text (``error: .../specs/resnet50.yaml:26: ...``);
- an example whose output starts with ``error:`` must exit 2 (bad input), ``check`` showing
  drift must exit 1, everything else 0.

Commands run in-process (typer's CliRunner on ``cnncost.cli.app``) in a temporary folder
holding ``specs/`` (a link to the bundled specs), an empty ``docs/img/`` for the pictures and
the spec files the README shows in ``yaml`` blocks (saved as ``NAME.yaml`` by their ``name``),
as on a terminal as wide as the one the README's tables were printed at (``COLUMNS``); a
``cnncost ... | grep WORD`` example through a pipe. Only commands that
cannot print the same twice are skipped, each with its reason: benchmarks (timings of this
machine), a headless browser's screenshot, and ``bench``'s memory check (this machine's free
RAM).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cnncost.cli import app
from cnncost.render import terminal as terminal_module

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# The width of the terminal the README's output was printed at: tables wider than this are
# widened to fit (never cut), prose and folding layer names wrap at it.
COLUMNS = "100"
# ... and no colour or terminal that the environment running the tests may ask rich for
ENV: dict[str, str | None] = {"COLUMNS": COLUMNS, "FORCE_COLOR": None, "NO_COLOR": None,
                              "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None}


@dataclass
class Command:
    """One ``$ ...`` line of a README block and the output the README shows under it."""

    line: int                     # 1-based line of README.md
    text: str                     # the command line, as shown (without "$ ")
    shown: list[str] = field(default_factory=list)
    block: list[Command] = field(default_factory=list, compare=False, repr=False)  # its block's

    @property
    def id(self) -> str:
        return f"L{self.line}: {self.text}"


def _fenced_blocks(text: str) -> list[tuple[int, str, list[str]]]:
    """(first content line, info string, dedented lines) of every fenced block."""
    blocks = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        opening = re.match(r"^( *)```(\S*)\s*$", lines[i])
        if not opening:
            i += 1
            continue
        indent, info = len(opening.group(1)), opening.group(2)
        start, i = i + 1, i + 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        body = [line[indent:] if line[:indent].strip() == "" else line
                for line in lines[start:i]]
        blocks.append((start + 1, info, body))
        i += 1
    return blocks


def readme_commands(text: str) -> list[Command]:
    """Every ``$ `` command of the README's plain fenced blocks, with its shown output."""
    found: list[Command] = []
    for first, info, body in _fenced_blocks(text):
        if info or not any(line.startswith("$ ") for line in body):
            continue
        block: list[Command] = []
        for offset, line in enumerate(body):
            if line.startswith("$ "):
                block.append(Command(first + offset, line[2:].strip(), block=block))
            elif block:
                block[-1].shown.append(line.rstrip())
        found.extend(block)
    return found


def readme_specs(text: str) -> dict[str, str]:
    """The whole specs the README shows in ``yaml`` blocks, by file name (``mini.yaml``)."""
    specs = {}
    for _, info, body in _fenced_blocks(text):
        name = re.match(r"name: (\w+)\s*(#.*)?$", body[0]) if info == "yaml" and body else None
        if name:
            specs[f"{name.group(1)}.yaml"] = "\n".join(body) + "\n"
    return specs


TEXT = README.read_text(encoding="utf-8")
COMMANDS = readme_commands(TEXT)
SPECS = readme_specs(TEXT)

# --------------------------------------------------------------------------- what is skipped

SKIPS: list[tuple[str, str]] = [
    # (a regular expression the command matches, why it cannot print the same twice)
    (r"^cnncost bench densenet121 --batch 1024\b",
     "the memory check compares with this machine's free RAM (and would run on a large one)"),
    (r"^cnncost bench ", "bench prints timings measured on this machine"),
    (r"^cnncost plot .*--kind roofline", "the roofline chart runs bench (timings)"),
    (r"^python benchmarks/", "a benchmark: timings of this machine, minutes long"),
    (r"^chromium ", "a headless browser's screenshot (tests/test_browser.py opens the pages)"),
]


def skip_reason(command: str) -> str | None:
    return next((why for pattern, why in SKIPS if re.search(pattern, command)), None)


# --------------------------------------------------------------------------- running


@dataclass
class Ran:
    code: int
    output: str                   # what a terminal shows: stdout and stderr as printed


def invoke(args: list[str], cwd: Path, terminal: bool = True) -> tuple[int, str, str, str]:
    """Run ``cnncost ARGS`` in-process in ``cwd``: (exit code, output, stdout, stderr).

    ``terminal``: stdout is shown as on a terminal COLUMNS wide (the README's tables were
    printed there), else as through a pipe (one row per line at its natural width)."""
    here = Path.cwd()
    os.chdir(cwd)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(terminal_module, "piped", lambda: not terminal)
            result = CliRunner().invoke(app, args, env=ENV)
    finally:
        os.chdir(here)
    return result.exit_code, result.output, result.stdout, result.stderr


def _cnncost_args(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    assert words[0] == "cnncost", command
    return words[1:]


PIPE = re.compile(r"^(cnncost [^|]+) \| cmp - <\((cnncost [^)]+)\) && echo (\w+)$")
GREP = re.compile(r"^(cnncost [^|]+) \| grep (\S+)$")


def run_command(command: str, cwd: Path) -> Ran:
    """Run one README command line as a shell would show it."""
    piped = PIPE.match(command)
    if piped:
        # `A | cmp - <(B) && echo same`: both commands succeed and print the same bytes
        first, second = (invoke(_cnncost_args(c), cwd) for c in piped.group(1, 2))
        assert first[0] == second[0] == 0, (first[1], second[1])
        same = first[2] == second[2]
        return Ran(0 if same else 1, piped.group(3) + "\n" if same else "- differ\n")
    grep = GREP.match(command)
    if grep:
        # `A | grep WORD`: A's stdout through a pipe, the lines holding WORD (a plain word)
        code, _, stdout, stderr = invoke(_cnncost_args(grep.group(1)), cwd, terminal=False)
        kept = [line for line in stdout.splitlines() if grep.group(2) in line]
        return Ran(code, stderr + "".join(line + "\n" for line in kept))
    args = _cnncost_args(command)
    if ">" in args:
        at = args.index(">")
        args, target = args[:at] + args[at + 2:], args[at + 1]
        code, _, stdout, stderr = invoke(args, cwd)
        (cwd / target).write_text(stdout)
        return Ran(code, stderr)
    code, output, _, _ = invoke(args, cwd)
    return Ran(code, output)


WRITES = re.compile(r"(--output|--out|--emit|--onnx|>)\s")
# The files an earlier `cnncost export ... --onnx FILE` of a block wrote, by command: an export
# runs torch's exporter (tens of seconds), so a block's later commands reuse its file.
_EXPORTED: dict[str, tuple[str, bytes]] = {}


def prepare(tmp: Path) -> None:
    """The folder every example runs in: specs/, docs/img/, and the README's own specs."""
    (tmp / "specs").symlink_to(ROOT / "specs", target_is_directory=True)
    (tmp / "docs" / "img").mkdir(parents=True)
    for name, spec in SPECS.items():
        (tmp / name).write_text(spec)


def _drifted_mini(tmp: Path) -> None:
    """`check reports/` after mini.yaml's report was written, then classes 10 -> 100."""
    code, output, _, _ = invoke(["report", "mini.yaml", "--out", "reports/"], tmp)
    assert code == 0, output
    spec = tmp / "mini.yaml"
    text = spec.read_text()
    assert text.count("classes: 10\n") == 1
    spec.write_text(text.replace("classes: 10\n", "classes: 100\n"))


def _factory_report(tmp: Path) -> None:
    """`check reports/` on a report whose source is a module factory, sys:exit."""
    code, output, stdout, _ = invoke(["analyze", "mini.yaml", "--format", "json"], tmp)
    assert code == 0, output
    document = json.loads(stdout)
    document["source"] = "sys:exit"
    (tmp / "reports").mkdir()
    (tmp / "reports" / "b.json").write_text(json.dumps(document, indent=1) + "\n")


def _bad_budgets(tmp: Path) -> None:
    """`check reports/` beside a budgets.yaml whose second line names no totals field."""
    code, output, _, _ = invoke(["report", "mini.yaml", "--out", "reports/"], tmp)
    assert code == 0, output
    (tmp / "reports" / "budgets.yaml").write_text("mini:\n  mac: 1G\n")


# What an example needs besides prepare(), by a file its shown output names.
SETUPS: dict[str, Callable[[Path], None]] = {
    "reports/mini.json": _drifted_mini,
    "reports/b.json": _factory_report,
    "reports/budgets.yaml:": _bad_budgets,
}


def setup_for(cmd: Command, tmp: Path) -> None:
    prepare(tmp)
    shown = "\n".join(cmd.shown)
    for marker, setup in SETUPS.items():
        if marker in shown:
            setup(tmp)
    # earlier commands of the same block that write files the later ones read
    for earlier in cmd.block[:cmd.block.index(cmd)]:
        if WRITES.search(earlier.text + " ") and skip_reason(earlier.text) is None:
            if earlier.text in _EXPORTED:
                name, data = _EXPORTED[earlier.text]
                (tmp / name).write_bytes(data)
                continue
            ran = run_command(earlier.text, tmp)
            assert ran.code == 0, ran.output
            args = _cnncost_args(earlier.text)
            if args[0] == "export" and "--onnx" in args:
                name = args[args.index("--onnx") + 1]
                _EXPORTED[earlier.text] = (name, (tmp / name).read_bytes())


# --------------------------------------------------------------------------- comparing


def _line_matches(shown: str, real: str) -> bool:
    if "..." not in shown:
        return shown == real
    parts = [re.escape(part) for part in shown.split("...")]
    return re.fullmatch(".*".join(parts), real) is not None


def mismatch(shown: list[str], output: str) -> str | None:
    """Why ``output`` is not what ``shown`` shows (None: it is)."""
    real = [line.rstrip() for line in output.split("\n")]
    while real and real[-1] == "":
        real.pop()
    shown = list(shown)
    while shown and shown[-1] == "":
        shown.pop()
    runs: list[list[str]] = [[]]
    for line in shown:
        if line.strip() == "...":
            runs.append([])
        else:
            runs[-1].append(line)
    anchored_start, anchored_end = bool(runs[0]), bool(runs[-1])
    if len(runs) == 1:
        if len(runs[0]) != len(real) or not all(map(_line_matches, runs[0], real)):
            return "the output differs from the README's block"
        return None
    at = 0
    for k, run in enumerate(runs):
        if not run:
            continue
        last = k == len(runs) - 1
        starts = [0] if k == 0 and anchored_start else (
            [len(real) - len(run)] if last and anchored_end else range(at, len(real)))
        hit = next((s for s in starts if s >= at and s + len(run) <= len(real)
                    and all(map(_line_matches, run, real[s:s + len(run)]))), None)
        if hit is None:
            where = ("at the start" if k == 0 else "at the end" if last and anchored_end
                     else f"after output line {at}")
            return f"these shown lines are not {where} of the output, in order:\n" + \
                "\n".join(run)
        at = hit + len(run)
    return None


def expected_code(cmd: Command) -> int:
    first = next((line for line in cmd.shown if line.strip()), "")
    if first.startswith("error:"):
        return 2
    if cmd.text.startswith("cnncost check") and any("drift" in line for line in cmd.shown):
        return 1
    return 0


# --------------------------------------------------------------------------- the tests


def test_the_readme_has_examples() -> None:
    # the examples this file is about; a parser that found none would pass vacuously
    assert len(COMMANDS) >= 30
    assert {"mini.yaml", "bad.yaml"} <= set(SPECS)
    assert sum(skip_reason(c.text) is None for c in COMMANDS) >= 25


def _param(cmd: Command) -> object:
    why = skip_reason(cmd.text)
    marks = [pytest.mark.skip(reason=why)] if why else []
    if cmd.text.startswith("cnncost plot") and "--format html" not in cmd.text:
        marks.append(pytest.mark.slow)  # matplotlib images: the slow tier
    elif re.search(r"cnncost export|\.onnx\b", cmd.text):
        marks.append(pytest.mark.slow)  # torch's ONNX exporter, seconds a model: the slow tier
    return pytest.param(cmd, id=cmd.id if not why else f"{cmd.id} [skipped: {why}]",
                        marks=marks)


@pytest.mark.parametrize("cmd", [_param(c) for c in COMMANDS])
def test_example_prints_what_the_readme_shows(cmd: Command, tmp_path: Path) -> None:
    setup_for(cmd, tmp_path)
    ran = run_command(cmd.text, tmp_path)
    assert ran.code == expected_code(cmd), f"exit {ran.code}:\n{ran.output}"
    problem = mismatch(cmd.shown, ran.output)
    assert problem is None, f"README.md:{cmd.line}: $ {cmd.text}\n{problem}\n" \
        f"--- the real output:\n{ran.output}"
    for word in _cnncost_args(cmd.text) if not PIPE.match(cmd.text) else []:
        if word.endswith((".png", ".svg", ".pdf", ".html")):
            assert (tmp_path / word).stat().st_size > 0, word
        if word.startswith(PICTURES):  # a committed picture: the command draws it as committed
            assert_same_picture(tmp_path / word, ROOT / word, cmd)


# --------------------------------------------------------------------------- pictures

PICTURES = "docs/img/"
# matplotlib writes its version into every PNG (tEXt "Software") and SVG (dc:creator) it draws
_DRAWN_BY = re.compile(rb"Matplotlib v(?:ersion)?\s*([0-9][0-9A-Za-z.+-]*)")


def _drawn_by(picture: Path) -> str | None:
    found = _DRAWN_BY.search(picture.read_bytes()[:200_000])
    return found.group(1).decode() if found else None


def picture_difference(made: Path, committed: Path) -> str | None:
    """Why ``made`` is not ``committed`` (None: the same). SVG: the same bytes (no date, a
    fixed hash salt: see render/plot.to_bytes); PNG: the same pixels."""
    if committed.suffix != ".png":
        return None if made.read_bytes() == committed.read_bytes() else "other bytes"
    from PIL import Image

    with Image.open(made) as a, Image.open(committed) as b:
        if a.size != b.size:
            return f"size {a.size} instead of {b.size}"
        pa, pb = a.convert("RGBA").tobytes(), b.convert("RGBA").tobytes()
    if pa == pb:
        return None
    differ = sum(pa[i:i + 4] != pb[i:i + 4] for i in range(0, len(pa), 4))
    return f"{differ:,} of {len(pa) // 4:,} pixels differ"


def assert_same_picture(made: Path, committed: Path, cmd: Command) -> None:
    """The picture a README command drew is the one committed, unless the committed one was
    drawn by another matplotlib than the installed one (its text is laid out differently)."""
    if not committed.exists():
        pytest.fail(f"README.md:{cmd.line}: {committed.relative_to(ROOT)} is not committed")
    import matplotlib

    drawn = _drawn_by(committed)
    if drawn is not None and drawn != matplotlib.__version__:
        pytest.skip(f"{committed.name} was drawn by matplotlib {drawn}, "
                    f"{matplotlib.__version__} is installed")
    problem = picture_difference(made, committed)
    assert problem is None, (f"README.md:{cmd.line}: {committed.relative_to(ROOT)} is not "
                             f"what `{cmd.text}` draws ({problem}); run it from the "
                             "repository's root to redraw it")


def _writer(picture: str) -> Command | None:
    """The README command that writes ``docs/img/NAME`` (an argument of its own or after
    ``=``, as chromium's ``--screenshot=FILE``)."""
    for cmd in COMMANDS:
        if any(w == picture or w.endswith("=" + picture) for w in shlex.split(cmd.text)):
            return cmd
    return None


@pytest.mark.parametrize("picture", sorted(p.name for p in (ROOT / PICTURES).iterdir()))
def test_every_committed_picture_is_drawn_by_a_readme_command(picture: str) -> None:
    # test_example_prints_what_the_readme_shows draws it again and compares; the commands
    # it skips (with their reason: a measured roofline, a browser's screenshot) are the
    # pictures that cannot be drawn the same twice.
    cmd = _writer(PICTURES + picture)
    assert cmd is not None, f"no `$ ...` command in README.md writes {PICTURES}{picture}"
    assert f"]({PICTURES}{picture})" in TEXT, f"README.md does not show {picture}"
    why = skip_reason(cmd.text)
    if why is not None:
        pytest.skip(f"{picture} is not drawn again: {why}")


@pytest.mark.slow  # matplotlib images
def test_a_changed_picture_is_caught(tmp_path: Path) -> None:
    from PIL import Image

    committed = ROOT / PICTURES / "alexnet-layers.png"
    with Image.open(committed) as image:
        edited = image.convert("RGBA")
    assert picture_difference(committed, committed) is None
    edited.putpixel((0, 0), (1, 2, 3, 255))
    edited.save(tmp_path / "edited.png")
    assert picture_difference(tmp_path / "edited.png", committed) == \
        f"1 of {edited.size[0] * edited.size[1]:,} pixels differ"
    svg = ROOT / PICTURES / "alexnet-vs-vgg16.svg"
    (tmp_path / "edited.svg").write_bytes(svg.read_bytes() + b"<!-- edited -->\n")
    assert picture_difference(tmp_path / "edited.svg", svg) == "other bytes"
    assert _drawn_by(committed) is not None and _drawn_by(svg) is not None


# --------------------------------------------------------------------------- options


@functools.cache
def _group() -> Any:
    """The CLI's click group, made once for every line (typer builds every command's
    parameters from their signatures each time)."""
    import typer.main

    return typer.main.get_command(app)


def _options(command: str | None) -> set[str]:
    """The long options of ``cnncost COMMAND`` (and the global ones; only those for None)."""
    group = _group()
    names = {n for p in group.params for n in getattr(p, "opts", [])} | {"--help"}
    if command is None:
        return names
    sub = group.commands[command]  # type: ignore[attr-defined]
    return names | {n for p in sub.params for n in getattr(p, "opts", [])}


def _listed() -> list[tuple[int, str]]:
    """Every ``cnncost ...`` line of a plain fenced block (the command lists), as written,
    comment included, split at ``&&``; in a block of ``$ `` examples, only the commands (not
    an output line such as ``cnncost 0.1.0``)."""
    found = []
    for first, info, body in _fenced_blocks(TEXT):
        if info:
            continue
        shell = any(line.startswith("$ ") for line in body)
        for offset, line in enumerate(body):
            if shell and not line.startswith("$ "):
                continue
            for part in line.lstrip("$ ").split("&&"):
                if part.strip().startswith("cnncost "):
                    found.append((first + offset, part.strip()))
    return found


@pytest.mark.parametrize("line,text", _listed(), ids=[f"L{n}" for n, _ in _listed()])
def test_every_option_the_readme_names_exists(line: int, text: str) -> None:
    # the option a comment attributes to the command counts too ("--format html: a page")
    command = next((w for w in text.split()[1:] if not w.startswith("-")), None)
    known = _options(command if command and not command.startswith("#") else None)
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))
    assert named <= known, f"README.md:{line}: cnncost {command} has no " \
        f"{', '.join(sorted(named - known))}"


@pytest.mark.parametrize("command", ["cnncost analyze mini.yaml --depth 1",
                                     "cnncost sweep resnet50 --set res=128..640:64",
                                     "cnncost analyze bad.yaml"])
def test_a_changed_figure_is_caught(command: str, tmp_path: Path) -> None:
    # The comparison can fail: each shown line with a figure, that figure's first digit
    # changed, no longer matches the real output (an elided block, a whole one, an error).
    cmd = next(c for c in COMMANDS if c.text.split("#")[0].strip() == command)
    setup_for(cmd, tmp_path)
    output = run_command(cmd.text, tmp_path).output
    assert mismatch(cmd.shown, output) is None
    changed = 0
    for i, line in enumerate(cmd.shown):
        digit = re.search(r"\d", line)
        if digit:
            other = str((int(digit.group()) + 1) % 10)
            edited = [*cmd.shown[:i], line[:digit.start()] + other + line[digit.end():],
                      *cmd.shown[i + 1:]]
            assert mismatch(edited, output) is not None, line
            changed += 1
    assert changed >= 1


def test_mismatch_follows_the_conventions() -> None:
    real = "a\nb\nc\nd\n"
    assert mismatch(["a", "b", "c", "d"], real) is None
    assert mismatch(["a", "b", "c"], real) is not None          # whole block: every line
    assert mismatch(["a", "...", "d"], real) is None
    assert mismatch(["a", "...", "c"], real) is not None        # no "..." at the end: last
    assert mismatch(["a", "...", "c", "..."], real) is None
    assert mismatch(["...", "c", "b", "..."], real) is not None  # in order
    assert mismatch(["...", "b", "d", "..."], real) is not None  # a run is consecutive
    assert mismatch(["x ... z"], "x 1 2 z\n") is None
    assert mismatch(["x ... z"], "x 1 2 y\n") is not None
