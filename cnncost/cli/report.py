"""The committed baselines: ``report`` writes a folder of reports, ``check`` recounts them
and exits 1 on drift.

What belongs here: commands over a reports folder. Its files are ``cnncost.reports``'s;
recounting is ``cnncost.api.recheck``'s; the diff's text is ``cnncost.render.check``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnncost.cli.options import (
    BatchOpt,
    DtypeOpt,
    EngineOpt,
    InputOpt,
    ModeOpt,
    PolicyOpt,
    SetOpt,
    StrictOpt,
    parse_input,
    parse_policy,
    parse_sets,
)
from cnncost.count.conventions import Mode
from cnncost.render.console import err_console, print_error, write_stdout


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
    from cnncost.api import analyze_target
    from cnncost.reports import report_targets, save_index, save_page, save_report

    shape, sets, pol = parse_input(input), parse_sets(set_), parse_policy(policy)
    for stem, target in report_targets(specs or [], all_, out):
        table = analyze_target(target, input=shape, batch=batch, dtype=dtype, policy=pol,
                               strict=strict, overrides=sets, engine=engine, mode=mode.value)
        save_report(table, out / f"{stem}.json")
        save_page(table, out / f"{stem}.json", out)
        err_console.print(f"wrote {out / stem}.json, .md, .html")
    err_console.print(f"wrote {save_index(out)}")


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
    from cnncost.api import recheck
    from cnncost.render.check import check_summary, drift_text, unreported_note
    from cnncost.reports import checked_reports, refresh_index, unreported, update_report

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
