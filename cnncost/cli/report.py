"""The committed baselines: ``report`` writes a folder of reports, ``check`` recounts them
(exit 1 on drift or a budget broken), ``diff`` compares two folders of them.

What belongs here: commands over a reports folder. Its files are ``cnncost.reports``'s;
recounting is ``cnncost.api.recheck``'s; the review of a change (status, totals, layers,
budgets) is ``cnncost.review``'s, its text, Markdown and JSON ``cnncost.render.review``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cnncost.cli.options import (
    BatchOpt,
    DtypeOpt,
    EngineOpt,
    InputOpt,
    ModeOpt,
    OutputOpt,
    PolicyOpt,
    SetOpt,
    StrictOpt,
    parse_input,
    parse_policy,
    parse_sets,
    write_output,
)
from cnncost.count.conventions import Mode
from cnncost.errors import CnnCostError, UsageError
from cnncost.render.console import err_console, print_error, write_stdout
from cnncost.render.review import ReviewFormat

if TYPE_CHECKING:
    from cnncost.budgets import Budgets
    from cnncost.review import ModelReview, Review
    from cnncost.table import CostTable


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
    batch: BatchOpt = None,
    dtype: DtypeOpt = None,
    set_: SetOpt = None,
    policy: PolicyOpt = "all",
    strict: StrictOpt = False,
    engine: EngineOpt = None,
    mode: ModeOpt = Mode.INFERENCE,
) -> None:
    """Write per model a JSON cost table (the baseline `check` reads), a Markdown table and an
    HTML page; and index.html linking every report in the folder."""
    from cnncost.api import analyze_target
    from cnncost.reports import (
        other_reports,
        report_targets,
        save_index,
        save_page,
        save_report,
    )

    shape, sets, pol = parse_input(input), parse_sets(set_), parse_policy(policy)
    targets = report_targets(specs or [], all_, out)
    paths = [out / f"{stem}.json" for stem, _ in targets]
    # Everything that can fail is done before the first file is written: the reports the
    # index will list read and checked, and every model counted.
    kept = other_reports(out, paths)
    tables = [analyze_target(target, input=shape, batch=batch, dtype=dtype, policy=pol,
                             strict=strict, overrides=sets, engine=engine, mode=mode.value)
              for _, target in targets]
    for path, table in zip(paths, tables, strict=True):
        save_report(table, path)
        save_page(table, path, out)
        err_console.print(f"wrote {path}, .md, .html")
    err_console.print(f"wrote {save_index(out, [*kept, *zip(paths, tables, strict=True)])}")


ReviewFormatOpt = Annotated[ReviewFormat, typer.Option(
    "--format", "-f", help="table (text), md (a pull-request comment: summary table, a "
    "collapsible section per model) or json (cnncost.check/1, cnncost.diff/1).")]
LimitOpt = Annotated[int, typer.Option(
    metavar="N", help="Layer lines shown per report (the totals always are).")]


def _limit(limit: int) -> int:
    if limit < 1:
        raise UsageError(f"--limit {limit}: expected a number of lines >= 1")
    return limit
JsonOpt = Annotated[Path | None, typer.Option(
    "--json", metavar="FILE", help="Also write the JSON document to FILE (atomically): one "
    "run gives a CI job the comment (--format md) and the figures.")]
BudgetsOpt = Annotated[Path | None, typer.Option(
    "--budgets", metavar="FILE", help="Ceilings on models' totals (default: budgets.yaml "
    "beside the reports, when there is one); a model over one exits 1.")]


def check(
    directory: Annotated[Path, typer.Argument(
        metavar="DIR", help="Folder of reports (`cnncost report`), or one.")] = Path("reports"),
    tolerance: Annotated[float, typer.Option(
        metavar="REL", help="Allowed relative change of numbers (0.01 = 1%; inf: any number "
        "may move, names, kinds and shapes may not).")] = 0.0,
    update: Annotated[bool, typer.Option(
        help="Rewrite the reports that drifted with the current figures (exit 0).")] = False,
    limit: LimitOpt = 40,
    allow_factory: Annotated[list[str] | None, typer.Option(
        "--allow-factory", metavar="PKG.MODULE:FN", help="Replay reports of this module "
        "factory (fnmatch pattern, repeatable; or check-factories in your own "
        "~/.config/cnncost/config.toml); else check runs no code a report names.")
    ] = None,
    engine: EngineOpt = None,
    fmt: ReviewFormatOpt = ReviewFormat.TABLE,
    output: OutputOpt = None,
    json_file: JsonOpt = None,
    budgets: BudgetsOpt = None,
) -> None:
    """Recompute every report in DIRECTORY; exit 1 when a figure drifted or a model is over
    its budget, with each model's totals (old -> new) and then its layers' differences."""
    from cnncost.budgets import budgets_for
    from cnncost.render.review import model_text, summary_text
    from cnncost.reports import checked_reports, unreported

    _limit(limit)
    if not tolerance >= 0:  # NaN included
        raise UsageError(f"--tolerance {tolerance}: expected a number >= 0 (relative: 0.01 "
                         "= 1%)")
    baselines, broken = checked_reports(directory, allow_factory or [])  # before any work
    ceilings = budgets_for(directory, [b for _, b in baselines], budgets)
    texts: list[str] = []

    def show(m: ModelReview, note: str) -> None:
        text = model_text(m, limit) if m.differences or m.breaches else ""
        if fmt is ReviewFormat.TABLE and output is None:
            write_stdout(text + note)  # as each report is done
        else:
            texts.append(text)
            if note:
                err_console.print(note.strip())

    review = _recheck(directory, baselines, broken, ceilings, tolerance, engine, update, show)
    missing = unreported([b for _, b in baselines], directory)
    review = replace(review, unreported=tuple(missing))
    _write(review, fmt, output, json_file, limit, "".join([*texts, summary_text(review)]))
    if review.exit_code:
        raise typer.Exit(review.exit_code)
    if missing and fmt is ReviewFormat.TABLE:
        from cnncost.render.review import unreported_note

        err_console.print(unreported_note(missing, directory))


def _write(review: Review, fmt: ReviewFormat, output: Path | None, json_file: Path | None,
           limit: int, text: str) -> None:
    """The review in ``fmt`` (``text`` for a table) to stdout or ``output``, and its JSON
    document to ``json_file``."""
    from cnncost.io import write_atomic
    from cnncost.render.review import review_json, review_markdown

    if json_file is not None:
        write_atomic(json_file, review_json(review))
    if fmt is ReviewFormat.JSON:
        text = review_json(review)
    elif fmt is ReviewFormat.MD:
        text = review_markdown(review, limit)
    write_output(text, output)


def _recheck(directory: Path, baselines: Sequence[tuple[Path, CostTable]],
             broken: Sequence[tuple[Path, CnnCostError]], ceilings: Budgets | None,
             tolerance: float, engine: str | None, update: bool,
             show: Callable[[ModelReview, str], None]) -> Review:
    """Recount each report and review it (``show``n as it comes, with what --update wrote);
    a broken report is one more failed review; a Ctrl-C after drift still exits 1."""
    from cnncost.api import recheck
    from cnncost.reports import refresh_index, update_report
    from cnncost.review import Review, broken_review, review_model

    models = [broken_review(path, str(exc)) for path, exc in broken]
    for _, exc in broken:
        print_error(str(exc))
    try:
        for r in recheck(baselines, tolerance, engine):
            if r.error is not None:
                print_error(str(r.error))
            updated = bool(update and r.regressions and r.current is not None)
            m = review_model(r.path, r.baseline, r.current, tolerance, ceilings, r.regressions,
                             None if r.error is None else str(r.error), r.missing, updated)
            models.append(m)
            note = (update_report(r.current, r.path, directory)
                    if updated and r.current is not None else "")
            show(m, note)
    except KeyboardInterrupt:
        if update or not any(m.differences or m.breaches for m in models):
            raise
        err_console.print("interrupted")  # drift was found: that decides the exit code
        raise typer.Exit(1) from None
    if any(m.updated for m in models):
        refresh_index(directory)
    return Review("check", {"reports": str(directory)}, tuple(models), tolerance,
                  ceilings.file if ceilings else None, update)


def diff(
    base: Annotated[Path, typer.Argument(
        metavar="BASE", help="Folder of reports (the base branch's), or one report.")],
    head: Annotated[Path, typer.Argument(
        metavar="HEAD", help="Folder of reports (the change's), or one report.")],
    fmt: ReviewFormatOpt = ReviewFormat.TABLE,
    output: OutputOpt = None,
    json_file: JsonOpt = None,
    limit: LimitOpt = 40,
    budgets: BudgetsOpt = None,
) -> None:
    """What changed from BASE's reports to HEAD's (matched by their path in the folder), no
    recount: each model's totals (old -> new) first, then its layers; exit 1 only when a
    model of HEAD is over its budget."""
    from cnncost.render.review import review_text, summary_text
    from cnncost.review import diff_review

    _limit(limit)
    review = diff_review(base, head, budgets)
    text = "".join([*review_text(review, limit), summary_text(review)])
    _write(review, fmt, output, json_file, limit, text)
    if review.exit_code:
        raise typer.Exit(review.exit_code)
