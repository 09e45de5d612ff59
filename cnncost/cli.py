"""The cnncost command line: a thin typer layer (parse -> call -> render).

torch is imported inside the commands that need it, so ``cnncost --help`` is instant.
Only this module catches CnnCostError: one line on stderr, exit 1 (drift) or 2 (bad input).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from cnncost.errors import CnnCostError, UsageError
from cnncost.io import write_atomic
from cnncost.render.advice import AdviceFormat
from cnncost.render.report import SORT_FIELDS, Format, Units

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    name="cnncost",
    help="What a convolutional network costs: MACs, FLOPs, parameters and memory, layer by "
    "layer, from a YAML spec, a bundled model name, or any torch module (pkg.module:factory).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class _LazyConsole:
    """A rich Console made on first use: importing rich costs ~0.1 s that --help need not pay."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def _real(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)

    def __enter__(self) -> Console:  # special methods bypass __getattr__
        return self._real().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._real().__exit__(*exc)


err_console: Any = _LazyConsole(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])
_debug = {"on": False}


def handle_errors(fn: F) -> F:
    """Turn CnnCostError (and torch's own shape errors) into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CnnCostError as exc:
            if _debug["on"]:
                raise
            from rich.markup import escape

            # escape: messages quote user text such as "cnncost[torchvision]" or "[3, 8]"
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", markup=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False
          ) -> None:
    _debug["on"] = debug


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


def write_output(text: str, output: Path | None) -> None:
    """Print, or write atomically (a temp file renamed into place: never half a file)."""
    if output is None:
        sys.stdout.write(text)
        return
    write_atomic(output, text)
    err_console.print(f"wrote {output}")


InputOpt = Annotated[str | None, typer.Option(
    "--input", "-i", metavar="CxHxW",
    help="One sample's shape, channels first: 3x224x224 (default: the spec's).")]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", min=1, metavar="N",
                                        help="Batch size N.")]
DtypeOpt = Annotated[str, typer.Option(
    metavar="DTYPE",
    help="Analysis dtype: float32, float16, bfloat16, float64 (sets bytes per element).")]
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


def _policy(text: str) -> str:
    if text not in ("all", "conv+linear"):
        raise UsageError(f"--policy {text!r}: expected 'all' or 'conv+linear'")
    return text


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


# --------------------------------------------------------------------------- commands


@app.command()
@handle_errors
def analyze(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="Spec file, bundled name "
                                         "(see `cnncost list`), pkg.module:factory or "
                                         "torchvision:NAME.")],
    input: InputOpt = None,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = "float32",
    set_: SetOpt = None,
    policy: PolicyOpt = "all",
    units: Annotated[Units, typer.Option(help="Compute column of the table.")] = Units.MACS,
    depth: Annotated[int | None, typer.Option(
        min=1, metavar="N",
        help="Collapse rows to the first N parts of their names (block level).")] = None,
    sort: Annotated[str | None, typer.Option(
        metavar="FIELD", help=f"Sort rows by one of: {', '.join(SORT_FIELDS)}.")] = None,
    top: Annotated[int | None, typer.Option(min=1, metavar="N",
                                            help="Show only the first N rows.")] = None,
    fmt: FormatOpt = Format.TABLE,
    output: OutputOpt = None,
    strict: StrictOpt = False,
    crosscheck: Annotated[str | None, typer.Option(
        metavar="TOOL", help="Also compare per-layer MACs with fvcore (batch 1, real CPU "
        "tensor) and explain any difference; exit 1 if one is unexplained.")] = None,
) -> None:
    """Per-layer cost table: output shape, params, MACs (or FLOPs), share, output memory."""
    if sort is not None and sort not in SORT_FIELDS:
        raise UsageError(f"--sort {sort!r}: expected one of {', '.join(SORT_FIELDS)}")
    from cnncost.api import analyze_target

    table = analyze_target(model, input=parse_input(input), batch=batch, dtype=dtype,
                           policy=_policy(policy), strict=strict, overrides=parse_sets(set_))
    from cnncost.render.report import render_text, rich_table, to_text

    if fmt is Format.TABLE:
        renderable = rich_table(table, units, depth, sort, top)
        if output is not None:
            write_output(to_text(renderable), output)  # as wide as the longest name needs
        else:
            print_whole(renderable)
    else:
        write_output(render_text(table, fmt, depth, sort, top), output)
    if crosscheck is not None:
        from cnncost.measure.crosscheck import crosscheck_report

        shown, error = crosscheck_report(crosscheck, model, parse_input(input), parse_sets(set_))
        console = _console() if fmt is Format.TABLE and output is None else err_console
        for item in shown:
            console.print(item)
        if error is not None:
            raise error


def print_whole(renderable: Any) -> None:
    """Print to stdout, widening past a narrow terminal rather than cutting a figure."""
    from cnncost.render.report import fit_width

    console = _console()
    console.width = fit_width(renderable, console.width)
    console.print(renderable)


@app.command()
@handle_errors
def validate(
    spec: Annotated[str, typer.Argument(help="Spec file or bundled name.")],
    set_: SetOpt = None,
    input: InputOpt = None,
) -> None:
    """Check a spec without torch and print its layer tree with shapes."""
    from cnncost.sources import resolve
    from cnncost.spec import load_spec

    target = resolve(spec)
    if target.spec_path is None:
        raise UsageError(f"{spec}: validate takes a spec, not a module factory")
    model = load_spec(target.spec_path, overrides=parse_sets(set_),
                      input_shape=parse_input(input))
    from rich.tree import Tree

    from cnncost.render.report import shape

    root = Tree(f"[bold]{model.name}[/bold]  input {shape(model.input_shape)}")
    nodes: dict[str, Tree] = {"": root}
    for layer in model.layers:
        parts = layer.path.split(".")
        for depth in range(1, len(parts)):
            prefix = ".".join(parts[:depth])
            if prefix not in nodes:
                nodes[prefix] = nodes[".".join(parts[:depth - 1])].add(parts[depth - 1])
        parent = nodes[".".join(parts[:-1])]
        detail = ", ".join(f"{k}={v}" for k, v in layer.params.items()
                           if k not in ("dim", "start", "length"))
        parent.add(f"{parts[-1]}  [cyan]{layer.kind}[/cyan]{'(' + detail + ')' if detail else ''}"
                   f"  -> {shape(layer.out_shape)}")
    _console().print(root)
    _console().print(f"ok: {len(model.layers)} layers, output {shape(model.output_shape)}")


@app.command("list")
@handle_errors
def list_specs(
    totals: Annotated[bool, typer.Option(
        help="Also count each spec (params, MACs at its default input; cached).")] = True,
) -> None:
    """Bundled specs with their one-line description and headline totals."""
    from rich.table import Table

    from cnncost.render.report import human
    from cnncost.sources import bundled_specs

    cache = _ListCache()
    table = Table(box=None)
    table.add_column("name", no_wrap=True)
    table.add_column("description", min_width=30)
    if totals:
        table.add_column("params", justify="right", no_wrap=True)
        table.add_column("MACs", justify="right", no_wrap=True)
    broken = 0
    for name, path in bundled_specs().items():
        try:
            description, params, macs = cache.get(path, totals)
        except CnnCostError as exc:
            broken += 1
            table.add_row(name, f"[red]invalid: {exc}[/red]")
            continue
        cells = [name, description]
        if totals:
            cells += [human(params or 0), human(macs or 0)]
        table.add_row(*cells)
    cache.save()
    print_whole(table)
    if broken:
        raise UsageError(f"{broken} bundled spec(s) do not load (see above)")


class _ListCache:
    """`list`'s totals, cached per spec text and counting code (an edit of either recounts)."""

    COUNTING = ("spec/loader", "spec/model", "spec/expr", "spec/context", "spec/fields",
                "spec/compiler", "spec/composites", "layers", "shapes", "graph/build",
                "count/formulas", "count/conventions", "count/meta", "count/mode",
                "count/memory", "count/drivers", "table")

    def __init__(self) -> None:
        import hashlib
        import json

        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        self.path = Path(base) / "cnncost" / "list-totals.json"
        code = hashlib.sha256()
        for module in self.COUNTING:
            code.update((Path(__file__).parent / f"{module}.py").read_bytes())
        self.code = code.hexdigest()
        self.entries: dict[str, Any] = {}
        self.dirty = False
        try:
            doc = json.loads(self.path.read_text())
            if doc.get("code") == self.code:
                self.entries = dict(doc["specs"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass

    def get(self, path: Path, totals: bool) -> tuple[str, int | None, int | None]:
        """(description, params, macs) of a spec file; counts only when ``totals``."""
        import hashlib

        from cnncost.spec import load_spec, spec_files

        # A variant's meaning is its text and that of the specs it extends.
        text = b"\0".join(Path(f).read_bytes() for f in spec_files(path))
        key = hashlib.sha256(text).hexdigest()
        hit = self.entries.get(key)
        if hit is not None and (not totals or hit.get("params") is not None):
            return str(hit["description"]), hit.get("params"), hit.get("macs")
        spec = load_spec(path)
        params = macs = None
        if totals:
            from cnncost.count.drivers import count_spec

            t = count_spec(spec).totals
            params, macs = t.params, t.macs
        self.entries[key] = {"description": spec.description, "params": params, "macs": macs}
        self.dirty = True
        return spec.description, params, macs

    def save(self) -> None:
        """Write the cache (best effort: an unwritable cache only costs time)."""
        import contextlib
        import json

        if not self.dirty:
            return
        with contextlib.suppress(OSError, CnnCostError):
            write_atomic(self.path, json.dumps({"code": self.code, "specs": self.entries}))


# --------------------------------------------------------------------------- compare


@app.command()
@handle_errors
def compare(
    models: Annotated[list[str], typer.Argument(
        metavar="MODEL...",
        help="Two or more specs, bundled names or pkg.module:factory; ratios are against the "
             "first.")],
    input: InputOpt = None,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = "float32",
    set_: SetOpt = None,
    policy: PolicyOpt = "all",
    fmt: FormatOpt = Format.TABLE,
    output: OutputOpt = None,
    strict: StrictOpt = False,
    bench_: Annotated[bool, typer.Option(
        "--bench", help="Also measure latency and throughput here (as `cnncost bench`).")
    ] = False,
) -> None:
    """Models side by side: params, MACs, FLOPs, activation and peak memory, with ratios."""
    if len(models) < 2:
        raise UsageError("compare needs at least two models, e.g. cnncost compare resnet50 "
                         "vgg16")
    from cnncost.api import analyze_target
    from cnncost.render.report import compare_tables

    shape, sets, pol = parse_input(input), parse_sets(set_), _policy(policy)
    tables = [analyze_target(m, input=shape, batch=batch, dtype=dtype, policy=pol,
                             strict=strict, overrides=sets) for m in models]
    comparison = compare_tables(tables)
    if bench_:
        comparison = add_bench_columns(comparison, models, batch, dtype, shape, sets)
    emit_comparison(comparison, fmt, output)


def emit_comparison(comparison: Any, fmt: Format, output: Path | None) -> None:
    """Render a report.Comparison in ``fmt`` to stdout or (atomically) to ``output``."""
    from cnncost.render.report import compare_rich, render_compare, to_text

    if fmt is Format.TABLE:
        table = compare_rich(comparison)
        if output is not None:
            write_output(to_text(table), output)
        else:
            print_whole(table)
        return
    write_output(render_compare(comparison, fmt), output)


# --------------------------------------------------------------------------- advise


@app.command()
@handle_errors
def advise(
    spec: Annotated[str, typer.Argument(help="Spec file or bundled name.")],
    set_: SetOpt = None,
    fmt: Annotated[AdviceFormat, typer.Option("--format", "-f", help="Output format.")
                   ] = AdviceFormat.TABLE,
    min_saving: Annotated[str, typer.Option(
        metavar="PCT", help="Drop cost findings saving less of the model's params and MACs "
        "than this: 5%, 0.05.")] = "5%",
    emit: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Write each rewritten spec (the one counted) into DIR.")] = None,
    output: OutputOpt = None,
) -> None:
    """The lectures' design guidelines, each suggestion counted on the rewritten spec."""
    from cnncost.advise.engine import parse_saving
    from cnncost.api import advise_target
    from cnncost.render.advice import advice_rich, render_advice
    from cnncost.render.report import to_text

    advice = advise_target(spec, parse_sets(set_), parse_saving(min_saving))
    if fmt is AdviceFormat.TABLE and output is None:
        print_whole(advice_rich(advice))
    else:
        text = to_text(advice_rich(advice)) if fmt is AdviceFormat.TABLE else (
            render_advice(advice, fmt))
        write_output(text, output)
    if emit is not None:
        for finding in advice.findings:
            write_atomic(emit / finding.spec_file, finding.spec_text)
        err_console.print(f"wrote {len(advice.findings)} rewritten spec(s) to {emit}")


# --------------------------------------------------------------------------- report / check


def report_name(target: Any) -> str:
    """reports/ file stem for a sources.Target: the bundled name, a file's stem, or mod.factory."""
    from cnncost.sources import specs_dir

    if target.spec_path is not None:
        try:
            rel = target.spec_path.resolve().relative_to(specs_dir().resolve())
            return str(rel.with_suffix("").as_posix())
        except ValueError:
            return str(target.spec_path.stem)
    return str(target.stem)


@app.command()
@handle_errors
def report(
    specs: Annotated[list[str] | None, typer.Argument(
        metavar="[MODEL...]",
        help="Specs, bundled names or pkg.module:factory (or --all).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every bundled spec.")] = False,
    out: Annotated[Path, typer.Option(
        "--out", metavar="DIR",
        help="Folder for one NAME.json and one NAME.md per model.")] = Path("reports"),
    input: InputOpt = None,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = "float32",
    set_: SetOpt = None,
    policy: PolicyOpt = "all",
    strict: StrictOpt = False,
) -> None:
    """Write one JSON cost table (the baseline `check` reads) and one Markdown table per model."""
    from cnncost.sources import bundled_specs, resolve

    names = list(specs or [])
    if all_:
        names += [n for n in bundled_specs() if n not in names]
    if not names:
        raise UsageError("report: name some specs, or --all for every bundled spec")
    from cnncost.api import analyze_target
    from cnncost.render.report import to_markdown

    shape, sets, pol = parse_input(input), parse_sets(set_), _policy(policy)
    seen: dict[str, str] = {}
    targets = []
    for name in names:  # every name resolved (and no two clash) before anything is written
        target = resolve(name)
        stem = report_name(target)
        if stem in seen:
            raise UsageError(f"{name} and {seen[stem]} would both write {out / stem}.json")
        seen[stem] = name
        targets.append((stem, target))
    for stem, target in targets:
        table = analyze_target(target, input=shape, batch=batch, dtype=dtype, policy=pol,
                               strict=strict, overrides=sets)
        write_atomic(out / f"{stem}.json", table.to_json())
        write_atomic(out / f"{stem}.md", to_markdown(table))
        err_console.print(f"wrote {out / stem}.json, .md")


def _source_target(source: str) -> Any:
    """The Target a report's ``source`` names (``specs/x.yaml`` = the bundled spec x)."""
    from cnncost.sources import resolve, specs_dir

    if source.startswith("specs/"):
        bundled = specs_dir() / source.removeprefix("specs/")
        if bundled.is_file():
            return resolve(str(bundled))
    return resolve(source)


@app.command()
@handle_errors
def check(
    directory: Annotated[Path, typer.Argument(
        metavar="DIR", help="Folder of reports (from `cnncost report`).")] = Path("reports"),
    tolerance: Annotated[float, typer.Option(
        min=0.0, metavar="REL", help="Allowed relative change of numbers (0.01 = 1%).")] = 0.0,
    update: Annotated[bool, typer.Option(
        help="Rewrite the reports that drifted with the current figures (exit 0).")] = False,
    limit: Annotated[int, typer.Option(
        min=1, metavar="N", help="Differences shown per report.")] = 40,
) -> None:
    """Recompute every report in DIRECTORY; exit 1 with a diff when any figure drifted."""
    from cnncost.check import diff_tables, format_regressions, load_report, recipe, report_files

    files = report_files(directory)
    baselines = [(f, load_report(f)) for f in files]  # every file readable before any work
    from cnncost.api import analyze_target
    from cnncost.render.report import to_markdown

    drifted = 0
    for path, baseline in baselines:
        r = recipe(baseline)
        try:
            current = analyze_target(_source_target(r.source), input=r.input, batch=r.batch,
                                     dtype=r.dtype, policy=r.policy, overrides=r.vars)
        except CnnCostError as exc:
            raise UsageError(f"{path}: cannot recompute {r.source}: {exc}") from None
        regressions = diff_tables(baseline, current, tolerance)
        if not regressions:
            continue
        drifted += 1
        sys.stdout.write(f"{path}: {baseline.model} ({r.source}) drifted, "
                         f"{len(regressions)} difference(s):\n")
        sys.stdout.write(format_regressions(regressions, limit))
        if update:
            write_atomic(path, current.to_json())
            write_atomic(path.with_suffix(".md"), to_markdown(current))
            sys.stdout.write(f"  updated {path} and {path.with_suffix('.md').name}\n")
    if drifted and not update:
        sys.stdout.write(f"drift in {drifted} of {len(files)} report(s); if the change is "
                         f"intended: cnncost check {directory} --update\n")
        raise typer.Exit(1)
    verb = "updated" if drifted else "match"
    sys.stdout.write(f"ok: {len(files)} report(s) checked, "
                     f"{drifted if drifted else len(files)} {verb}\n")
    _note_unreported([b for _, b in baselines], directory)


def _note_unreported(baselines: list[Any], directory: Path) -> None:
    """If the folder holds bundled specs' reports, name the bundled specs it lacks."""
    from cnncost.sources import bundled_specs

    sources = {b.source for b in baselines}
    if not any(s.startswith("specs/") for s in sources):
        return
    missing = [n for n in bundled_specs() if f"specs/{n}.yaml" not in sources]
    if missing:
        err_console.print(f"note: {len(missing)} bundled spec(s) have no report in {directory}: "
                          f"{', '.join(missing)} (cnncost report NAME --out {directory})")


# --------------------------------------------------------------------------- bench


def parse_batches(text: str) -> tuple[int, ...]:
    """'1,8,32' -> (1, 8, 32)."""
    try:
        batches = tuple(int(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError:
        raise UsageError(f"--batch {text!r}: expected batch sizes like 1,8,32") from None
    if not batches or any(b < 1 for b in batches):
        raise UsageError(f"--batch {text!r}: expected positive batch sizes like 1,8,32")
    return batches


def _progress_callback(bar: Any) -> Callable[[str, float], None]:
    """A callback that shows each phase the benchmark reports as one bar of ``bar``."""
    tasks: dict[str, Any] = {}

    def update(label: str, fraction: float) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=1.0)
        bar.update(tasks[label], completed=fraction)

    return update


def add_bench_columns(comparison: Any, models: list[str], batch: int, dtype: str,
                      shape: tuple[int, ...] | None, sets: dict[str, str]) -> Any:
    """``compare --bench``: measured latency and images/s, placed right after MACs."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cnncost.measure import bench as bench_mod
    from cnncost.render.report import Column

    latency, throughput = [], []
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        for m in models:
            run = bench_mod.bench(m, (batch,), bench_mod.BenchOptions(dtype=dtype), input=shape,
                                  overrides=sets, progress=_progress_callback(bar)).runs[0]
            latency.append(run.timing.median_s * 1e3)
            throughput.append(run.images_per_s)
    cmp = comparison.with_column(Column("latency_ms", "latency", "ms"), latency)
    cmp = cmp.with_column(Column("images_per_s", "images/s", "count"), throughput)
    # MAC ratio next to latency ratio: how far counted work predicts measured time.
    cols = list(cmp.columns)
    moved = cols[-2:]
    rest = cols[:-2]
    at = next((i + 1 for i, c in enumerate(rest) if c.key == "macs"), len(rest))
    return type(cmp)(cmp.rows, (*rest[:at], *moved, *rest[at:]))


@app.command()
@handle_errors
def bench(
    model: Annotated[str, typer.Argument(help="Spec file, bundled name or pkg.module:factory.")],
    device: Annotated[str, typer.Option(help="auto (cuda if available), cpu or cuda.")
                      ] = "auto",
    batch: Annotated[str, typer.Option("--batch", "-b", help="Batch sizes: 1,8,32.")] = "1",
    threads: Annotated[int | None, typer.Option(
        min=1, help="CPU threads (default: torch's current setting).")] = None,
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.")] = "float32",
    channels_last: Annotated[bool, typer.Option(
        "--channels-last", help="Run in NHWC memory layout.")] = False,
    compile_: Annotated[bool, typer.Option(
        "--compile", help="Time the torch.compile'd model.")] = False,
    per_layer: Annotated[bool, typer.Option(
        "--per-layer", help="Also time every layer and compare it with its roofline.")] = False,
    top: Annotated[int | None, typer.Option(
        min=1, help="Show only the N slowest layers per batch (table/md).")] = None,
    max_time: Annotated[float, typer.Option(
        min=0.01, help="Seconds of timing per batch size and phase (at most).")] = 10.0,
    min_samples: Annotated[int, typer.Option(min=1, help="Samples to take at least.")] = 7,
    recalibrate: Annotated[bool, typer.Option(
        "--recalibrate", help="Measure the machine's roofline again (it is cached).")] = False,
    input: InputOpt = None,
    set_: SetOpt = None,
    fmt: FormatOpt = Format.TABLE,
    output: OutputOpt = None,
) -> None:
    """Measured latency, throughput and GFLOP/s, with every layer on the machine's roofline."""
    from cnncost.measure import bench as bench_mod
    from cnncost.measure.bench import (
        BenchOptions,
        Budget,
        Device,
        rich_report,
        table_width,
        to_csv,
        to_markdown,
    )

    if device not in {d.value for d in Device}:
        raise UsageError(f"--device {device!r}: expected auto, cpu or cuda")
    options = BenchOptions(device=device, dtype=dtype, threads=threads,
                           channels_last=channels_last, compile=compile_, per_layer=per_layer,
                           recalibrate=recalibrate,
                           budget=Budget(min_samples=min_samples, max_time=max_time,
                                         min_time=min(0.5, max_time / 2),
                                         warmup_time=min(0.25, max_time / 4)))
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    batches = parse_batches(batch)
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        report = bench_mod.bench(model, batches, options, input=parse_input(input),
                                 overrides=parse_sets(set_), progress=_progress_callback(bar))
    if fmt is Format.TABLE:
        rendered = rich_report(report, top)
        if output is not None:
            console = Console(record=True, width=160, file=open(os.devnull, "w"))  # noqa: SIM115
        else:
            console = _console()
        # Widen rather than cut: a narrow terminal wraps lines, no figure is lost.
        console.width = max(console.width, table_width(rendered))
        console.print(rendered)
        if output is not None:
            write_output(console.export_text(), output)
        return
    text = {Format.JSON: report.to_json, Format.CSV: lambda: to_csv(report),
            Format.MD: lambda: to_markdown(report, top)}[fmt]()
    write_output(text, output)


@app.command()
@handle_errors
def explain(
    model: Annotated[str, typer.Argument(help="Spec file, bundled name (e.g. "
                                         "textbook/dwsep_6x6x3) or pkg.module:factory.")],
    layer: Annotated[str | None, typer.Argument(
        help="Only this layer (a name, or a name prefix for a block).")] = None,
    input: InputOpt = None,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = "float32",
    set_: SetOpt = None,
    policy: PolicyOpt = "all",
) -> None:
    """The formula behind each number, the way the slides derive it, then the spec's ratios."""
    from cnncost.api import analyze_target, load_target
    from cnncost.count.drivers import count_spec
    from cnncost.render.explain import explain_lines, references
    from cnncost.sources import resolve
    from cnncost.spec import ModelSpec, load_spec

    target = resolve(model)
    shape, overrides, pol = parse_input(input), parse_sets(set_), _policy(policy)
    loaded = load_target(target, overrides, shape)
    if not isinstance(loaded, ModelSpec):
        table = analyze_target(loaded, input=shape, batch=batch, dtype=dtype, policy=pol)
        lines = explain_lines(table, layer=layer)
    else:
        table = count_spec(loaded, batch, dtype, pol, source=target.display)
        tables = {}
        for ref in references(loaded.explain, loaded.vars, batch, loaded.file):
            if ref.spec is None:  # the same spec with other variables: keep --set and --input
                other = load_spec(loaded.file, {**overrides, **dict(ref.set)}, shape)
            else:  # another spec: it gets the variables it shares with this one
                path = Path(loaded.file).parent / ref.spec
                shared = load_spec(path).vars.keys() & loaded.vars.keys()
                other = load_spec(path, {**{k: loaded.vars[k] for k in shared},
                                         **dict(ref.set)})
            tables[ref] = count_spec(other, batch, dtype, pol)
        lines = explain_lines(table, loaded.explain, loaded.vars, tables, layer, loaded.file)
    sys.stdout.write("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- sweep


@app.command()
@handle_errors
def sweep(
    model: Annotated[str, typer.Argument(metavar="SPEC", help="Spec file or bundled name.")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", "-s", metavar="NAME=VALUES",
        help="Values of a spec variable: a range 128..640:32 (ends included), a list "
             "0.5,0.75,1.0, or one fixed value (repeatable; several swept variables make a "
             "cartesian product).")] = None,
    zip_: Annotated[list[str] | None, typer.Option(
        "--zip", metavar="NAME,NAME",
        help="Variables that move together (one value of each per step), e.g. --zip "
             "width,depth,res for compound scaling (repeatable).")] = None,
    batch: Annotated[str | None, typer.Option(
        "--batch", "-b", metavar="VALUES", help="Batch sizes: 1, 1,8,32 or 1..64:8.")] = None,
    input: InputOpt = None,
    dtype: DtypeOpt = "float32",
    policy: PolicyOpt = "all",
    strict: StrictOpt = False,
    jobs: Annotated[int, typer.Option(
        "--jobs", "-j", min=1, metavar="N", help="Count points in N local processes.")] = 1,
    dask: Annotated[str | None, typer.Option(
        metavar="tcp://HOST:PORT",
        help="Count points on this Dask distributed scheduler (pip install 'cnncost[dask]').")
    ] = None,
    max_points: Annotated[int, typer.Option(
        "--max-points", metavar="N", help="Refuse sweeps of more points than this.")] = 100_000,
    fmt: FormatOpt = Format.TABLE,
    output: OutputOpt = None,
) -> None:
    """How cost scales: one row per point of a grid of spec variables, and fitted exponents."""
    from cnncost.sweep import prepare_sweep

    prepared = prepare_sweep(model, set_ or [], zip_ or [], batch, input=parse_input(input),
                             dtype=dtype, policy=_policy(policy), strict=strict,
                             max_points=max_points)  # every bad input fails here, before work
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from cnncost.render.sweep import render_text, rich_sweep

    stderr = Console(stderr=True)
    with Progress("sweep", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=stderr, transient=True, disable=not stderr.is_terminal) as bar:
        task = bar.add_task("sweep", total=prepared.plan.size)
        result = prepared.run(jobs, dask, lambda done, _: bar.update(task, completed=done))
    if fmt is Format.TABLE:
        from cnncost.render.report import to_text

        renderable = rich_sweep(result)
        if output is not None:
            write_output(to_text(renderable), output)
        else:
            print_whole(renderable)
    else:
        write_output(render_text(result, fmt), output)


def main() -> None:
    """Console-script entry point."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        # As `python -m cnncost` would: a pkg.module:factory in the current folder imports.
        sys.path.insert(0, os.getcwd())
    app()


if __name__ == "__main__":
    main()
