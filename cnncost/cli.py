"""The cnncost command line: a thin typer layer. Each command parses its options, calls
cnncost.api (or an engine's entry point), and hands the result to a cnncost.render module.

torch and rich are imported inside the commands that need them, so ``cnncost --help`` is
instant. Only this module catches CnnCostError: one line on stderr, exit 1 (drift) or 2
(bad input).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from cnncost.cli_coerce import install as _lazy_coercion
from cnncost.count.conventions import Mode
from cnncost.errors import CnnCostError, UsageError
from cnncost.io import guard_inputs, write_atomic
from cnncost.render.advice import AdviceFormat
from cnncost.render.console import err_console, print_error, write_stdout
from cnncost.render.formats import Format
from cnncost.render.terminal import Units
from cnncost.table import SORT_FIELDS

_lazy_coercion()  # pydantic only when an option's text needs converting
app = typer.Typer(
    name="cnncost",
    help="What a convolutional network costs: MACs, FLOPs, parameters and memory, layer by "
    "layer, from a YAML spec, a bundled model name, or any PyTorch module "
    "(pkg.module:factory).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


F = TypeVar("F", bound=Callable[..., Any])
_debug = {"on": False}


def handle_errors(fn: F) -> F:
    """Turn CnnCostError (and torch's own shape errors) into one line and an exit code."""

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


def parse_batches(text: str) -> tuple[int, ...]:
    """'1,8,32' -> (1, 8, 32)."""
    try:
        batches = tuple(int(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError:
        raise UsageError(f"--batch {text!r}: expected batch sizes like 1,8,32") from None
    if not batches or any(b < 1 for b in batches):
        raise UsageError(f"--batch {text!r}: expected positive batch sizes like 1,8,32")
    return batches


def _policy(text: str) -> str:
    if text not in ("all", "conv+linear"):
        raise UsageError(f"--policy {text!r}: expected 'all' or 'conv+linear'")
    return text


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
EngineOpt = Annotated[str | None, typer.Option(
    metavar="analytic|torch",
    help="Counting engine for specs: analytic (the default; the spec's own shapes, no torch) "
         "or torch (runs the modules on the meta device). Modules always count with torch.")]
ModeOpt = Annotated[Mode, typer.Option("--mode", help="inference: one forward pass; train: one "
    "training step (forward, backward per gradient, optimizer update, memory; torch engine).")]
ModelArg = Annotated[str, typer.Argument(
    metavar="MODEL", help="Spec file, bundled name (see `cnncost list`), pkg.module:factory "
    "or torchvision:NAME.")]


# --------------------------------------------------------------------------- output


def write_output(text: str, output: Path | None) -> None:
    """Print, or write atomically (a temp file renamed into place: never half a file)."""
    if output is None:
        write_stdout(text)
        return
    write_atomic(output, text)
    err_console.print(f"wrote {output}")


def show(renderable: Any, output: Path | None) -> None:
    """A rich table to the terminal (widened rather than cut), or as plain text to a file (as
    wide as the longest name needs)."""
    from cnncost.render.terminal import print_whole, to_text

    if output is None:
        print_whole(renderable)
    else:
        write_output(to_text(renderable), output)


# --------------------------------------------------------------------------- commands


@app.command()
@handle_errors
def analyze(
    model: ModelArg,
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
    engine: EngineOpt = None,
    mode: ModeOpt = Mode.INFERENCE,
) -> None:
    """Per-layer cost table: output shape, params, MACs (or FLOPs), share, output memory."""
    if sort is not None and sort not in SORT_FIELDS:
        raise UsageError(f"--sort {sort!r}: expected one of {', '.join(SORT_FIELDS)}")
    from cnncost.api import analyze_target

    shape, sets = parse_input(input), parse_sets(set_)
    table = analyze_target(model, input=shape, batch=batch, dtype=dtype,
                           policy=_policy(policy), strict=strict, overrides=sets,
                           engine=engine, mode=mode.value)
    if fmt is Format.TABLE:
        from cnncost.render.terminal import rich_table

        show(rich_table(table, units, depth, sort, top), output)
    else:
        from cnncost.render.formats import render_text

        write_output(render_text(table, fmt, depth, sort, top), output)
    if crosscheck is not None:
        _crosscheck(crosscheck, model, shape, sets, to_stdout=fmt is Format.TABLE and not output)


def _crosscheck(tool: str, model: str, shape: tuple[int, ...] | None, sets: dict[str, str],
                to_stdout: bool) -> None:
    """``analyze --crosscheck``: the comparison after the table (on stderr when the table
    went to a file or is machine-readable); exit 1 on an unexplained difference."""
    from cnncost.measure.crosscheck import crosscheck, disagreement
    from cnncost.render.crosscheck import crosscheck_renderables
    from cnncost.render.terminal import stdout_console

    cc = crosscheck(tool, model, shape, sets)
    console = stdout_console() if to_stdout else err_console
    for item in crosscheck_renderables(cc):
        console.print(item)
    error = disagreement(cc)
    if error is not None:
        raise error


@app.command()
@handle_errors
def validate(
    spec: Annotated[str, typer.Argument(help="Spec file or bundled name.")],
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


@app.command("list")
@handle_errors
def list_specs(
    totals: Annotated[bool, typer.Option(
        help="Also count each spec (params, MACs at its default input; cached).")] = True,
) -> None:
    """Bundled specs with their one-line description and headline totals."""
    from cnncost import api
    from cnncost.render.catalog import list_table
    from cnncost.render.terminal import print_whole

    entries = api.list_specs(totals)
    print_whole(list_table(entries, totals))
    broken = sum(e.error is not None for e in entries)
    if broken:
        raise UsageError(f"{broken} bundled spec(s) do not load (see above)")


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
    engine: EngineOpt = None,
    mode: ModeOpt = Mode.INFERENCE,
) -> None:
    """Models side by side: params, MACs, FLOPs, activation and peak memory, with ratios."""
    from cnncost.api import compare_targets
    from cnncost.render.terminal import progress

    shape, sets, pol = parse_input(input), parse_sets(set_), _policy(policy)
    with progress(bench_) as bar:
        comparison = compare_targets(models, shape, batch, dtype, pol, strict, sets,
                                     bench=bench_, progress=bar, engine=engine, mode=mode.value)
    if fmt is Format.TABLE:
        from cnncost.render.compare import compare_rich

        show(compare_rich(comparison), output)
    else:
        from cnncost.render.compare import render_compare

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
    from cnncost.render.terminal import print_whole, to_text

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


@app.command()
@handle_errors
def report(
    specs: Annotated[list[str] | None, typer.Argument(
        metavar="[MODEL...]",
        help="Specs, bundled names or pkg.module:factory (or --all).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every bundled spec.")] = False,
    out: Annotated[Path, typer.Option(
        "--out", metavar="DIR",
        help="Folder for NAME.json, NAME.md and NAME.html per model, and index.html."
    )] = Path("reports"),
    input: InputOpt = None,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = "float32",
    set_: SetOpt = None,
    policy: PolicyOpt = "all",
    strict: StrictOpt = False,
    engine: EngineOpt = None,
    mode: ModeOpt = Mode.INFERENCE,
) -> None:
    """Write per model a JSON cost table (the baseline `check` reads), a Markdown table and an
    HTML page; and index.html linking every report in the folder."""
    from cnncost.api import analyze_target, report_targets, save_index, save_page, save_report

    shape, sets, pol = parse_input(input), parse_sets(set_), _policy(policy)
    for stem, target in report_targets(specs or [], all_, out):
        table = analyze_target(target, input=shape, batch=batch, dtype=dtype, policy=pol,
                               strict=strict, overrides=sets, engine=engine, mode=mode.value)
        save_report(table, out / f"{stem}.json")
        save_page(table, out / f"{stem}.json", out)
        err_console.print(f"wrote {out / stem}.json, .md, .html")
    err_console.print(f"wrote {save_index(out)}")


@app.command()
@handle_errors
def check(
    directory: Annotated[Path, typer.Argument(
        metavar="DIR", help="Folder of reports (`cnncost report`), or one.")] = Path("reports"),
    tolerance: Annotated[float, typer.Option(
        min=0.0, metavar="REL", help="Allowed relative change of numbers (0.01 = 1%).")] = 0.0,
    update: Annotated[bool, typer.Option(
        help="Rewrite the reports that drifted with the current figures (exit 0).")] = False,
    limit: Annotated[int, typer.Option(
        min=1, metavar="N", help="Differences shown per report.")] = 40,
    allow_factory: Annotated[list[str] | None, typer.Option(
        "--allow-factory", metavar="PKG.MODULE:FN", help="Replay reports of this module "
        "factory (fnmatch pattern, repeatable); else check runs no code a report names.")
    ] = None,
    engine: EngineOpt = None,
) -> None:
    """Recompute every report in DIRECTORY; exit 1 with a diff when any figure drifted."""
    from cnncost.api import checked_reports, recheck, refresh_index, unreported, update_report
    from cnncost.render.check import check_summary, drift_text, unreported_note

    baselines = checked_reports(directory, allow_factory or [])  # all read before any work
    drifted = failed = 0
    try:
        for r in recheck(baselines, tolerance, engine):
            if r.error is not None:
                failed += 1
                print_error(str(r.error))
            elif r.regressions:
                drifted += 1
                write_stdout(drift_text(r.path, r.baseline, r.regressions, limit))
                if update and r.current is not None:
                    write_stdout(update_report(r.current, r.path, directory))
    except KeyboardInterrupt:
        if not drifted or update:
            raise
        err_console.print("interrupted")  # drift was found: that decides the exit code
        raise typer.Exit(1) from None
    if drifted and update:
        refresh_index(directory)
    write_stdout(check_summary(len(baselines), drifted, update, directory, failed))
    if drifted and not update:
        raise typer.Exit(1)  # drift is exit 1, also when another report failed
    if failed:
        raise typer.Exit(2)
    missing = unreported([b for _, b in baselines], directory)
    if missing:
        err_console.print(unreported_note(missing, directory))


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
    train: Annotated[bool, typer.Option("--train", help="Time whole training steps (zero_grad, "
        "forward, loss, backward, --optimizer's step) and measure their peak memory.")] = False,
    optimizer: Annotated[str, typer.Option(metavar="sgd|sgd_momentum|adam")] = "sgd",
) -> None:
    """Measured latency, throughput and GFLOP/s, with every layer on the machine's roofline."""
    from cnncost.api import bench_target
    from cnncost.measure.bench import BenchOptions, Device
    from cnncost.measure.timing import Budget
    from cnncost.render.bench_train import bench_view
    from cnncost.render.terminal import print_wide, progress, wide_text

    if device not in {d.value for d in Device}:
        raise UsageError(f"--device {device!r}: expected auto, cpu or cuda")
    options = BenchOptions(device=device, dtype=dtype, threads=threads,
                           channels_last=channels_last, compile=compile_, per_layer=per_layer,
                           recalibrate=recalibrate, optimizer=optimizer,
                           budget=Budget(min_samples=min_samples, max_time=max_time,
                                         min_time=min(0.5, max_time / 2),
                                         warmup_time=min(0.25, max_time / 4)))
    view: Any = bench_view(train, fmt is Format.HTML)  # training steps: their own renderer
    with progress() as bar:
        result: Any = bench_target(model, parse_batches(batch), options, train,
                                   parse_input(input), parse_sets(set_), bar)
    if fmt is Format.TABLE:
        rendered = view.rich_report(result, top)
        if output is None:
            print_wide(rendered)
        else:
            write_output(wide_text(rendered), output)
        return
    from cnncost.render.html import bench_page

    text = {Format.JSON: result.to_json, Format.CSV: lambda: view.to_csv(result),
            Format.MD: lambda: view.to_markdown(result, top),
            Format.HTML: lambda: bench_page(result, top)}[fmt]()
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
    engine: EngineOpt = None,
    mode: ModeOpt = Mode.INFERENCE,
) -> None:
    """The formula behind each number, the way the slides derive it, then the spec's ratios."""
    from cnncost.api import explain_target
    from cnncost.render.explain import explain_lines

    e = explain_target(model, parse_input(input), batch, dtype, _policy(policy),
                       parse_sets(set_), engine, mode=mode.value)
    lines = explain_lines(e.table, e.explain, e.vars, e.tables, layer, e.file)
    write_stdout("\n".join(lines) + "\n")


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
    engine: EngineOpt = None,
    mode: ModeOpt = Mode.INFERENCE,
) -> None:
    """How cost scales: one row per point of a grid of spec variables, and fitted exponents."""
    from cnncost.sweep import prepare_sweep

    prepared = prepare_sweep(model, set_ or [], zip_ or [], batch, input=parse_input(input),
                             dtype=dtype, policy=_policy(policy), strict=strict,
                             max_points=max_points, engine=engine, mode=mode.value)
    from cnncost.render.sweep import render_text, rich_sweep
    from cnncost.render.terminal import point_progress

    with point_progress("sweep", prepared.plan.size) as update:
        result = prepared.run(jobs, dask, update)
    if fmt is Format.TABLE:
        show(rich_sweep(result), output)
    else:
        write_output(render_text(result, fmt), output)


def _command(argv: list[str]) -> str | None:
    """The subcommand named on a command line (the first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


# Commands in modules of their own register on `app` when imported (this one is at its size).
from cnncost import cli_plot  # noqa: E402, F401


def main() -> None:
    """Console-script entry point."""
    # Not for check: it replays committed reports, and must not import a module (a torch.py,
    # a factory a report names) from the folder it is run in.
    if (_command(sys.argv[1:]) != "check" and "" not in sys.path
            and os.getcwd() not in sys.path):
        # As `python -m cnncost` would: a pkg.module:factory in the current folder imports.
        sys.path.insert(0, os.getcwd())
    app()


if __name__ == "__main__":
    main()
