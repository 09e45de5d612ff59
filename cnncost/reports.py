"""The reports folder: what ``cnncost report`` writes and ``cnncost check`` reads back.

What belongs here: a report's files (the JSON baseline, the Markdown table beside it, its
HTML page, the folder's ``index.html``), naming them after the model, reading a folder of
them, and rewriting them on ``check --update``. Reading one report and checking it against
the schema is ``cnncost.check``'s; recomputing a report (which counts) is ``api.recheck``'s;
how a page or a table looks is ``cnncost.render``'s. Nothing here prints or counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from cnncost.check import (
    find_reports,
    load_report,
    read_reports,
    refuse_code,
    report_files,
    report_folder,
)
from cnncost.errors import UsageError
from cnncost.io import not_a_folder, write_atomic
from cnncost.sources import Target, bundled_specs, resolve, specs_dir
from cnncost.table import CostTable


def report_name(target: Target) -> str:
    """reports/ file stem for a Target: the bundled name, a file's stem, or mod.factory."""
    if target.spec_path is not None:
        try:
            rel = target.spec_path.resolve().relative_to(specs_dir().resolve())
            return str(rel.with_suffix("").as_posix())
        except ValueError:
            return str(target.spec_path.stem)
    return str(target.stem)


def report_targets(names: Sequence[str], all_bundled: bool,
                   out: Path) -> list[tuple[str, Target]]:
    """(file stem, Target) per model, every name resolved and no two clashing in ``out``."""
    names = list(names)
    if all_bundled:
        names += [n for n in bundled_specs() if n not in names]
    if not names:
        raise UsageError("report: name some specs, or --all for every bundled spec")
    seen: dict[str, str] = {}
    targets = []
    for name in names:  # every name resolved (and no two clash) before anything is written
        target = resolve(name)
        stem = report_name(target)
        if stem in seen:
            raise UsageError(f"{name} and {seen[stem]} would both write {out / stem}.json")
        seen[stem] = name
        targets.append((stem, target))
    return targets


def save_report(table: CostTable, path: Path, replace_input: bool = False) -> Path:
    """Write a report: ``path`` (the JSON baseline) and its Markdown table beside it;
    ``replace_input``: ``path`` is the report being updated (cnncost.io.guard_inputs)."""
    from cnncost.render.cost import to_markdown

    write_atomic(path, table.to_json(), replace_input)
    md = path.with_suffix(".md")
    write_atomic(md, to_markdown(table))
    return md


def save_page(table: CostTable, path: Path, folder: Path) -> Path:
    """Write a report's HTML page beside its JSON ``path``, linked back to
    ``folder/index.html``; returns the page's path."""
    import os

    from cnncost.render.cost import table_page

    page = path.with_suffix(".html")
    back = Path(os.path.relpath(folder / "index.html", page.parent)).as_posix()
    write_atomic(page, table_page(table, links=[(back, "all reports")]))
    return page


def save_index(folder: Path, reports: Sequence[tuple[Path, CostTable]] | None = None) -> Path:
    """Write ``folder/index.html`` linking every report in the folder (``reports``, else
    those read from it) to its page (a report without a page, e.g. from an older cnncost,
    gets one made from its JSON)."""
    from cnncost.render.cost import index_page

    entries = []
    for path, table in sorted(load_reports(folder) if reports is None else reports,
                              key=lambda r: r[0]):
        page = path.with_suffix(".html")
        if not page.exists():
            save_page(table, path, folder)
        entries.append((page.relative_to(folder).as_posix(), table))
    index = folder / "index.html"
    write_atomic(index, index_page(entries, folder.as_posix()))
    return index


def source_target(source: str) -> Target:
    """The Target a report's ``source`` names: ``specs/x.yaml`` is that file where it exists
    (a checkout's specs, or a project's own file of a bundled spec's name), else the bundled
    spec x."""
    if source.startswith("specs/") and not Path(source).is_file():
        bundled = specs_dir() / source.removeprefix("specs/")
        if bundled.is_file():
            return resolve(str(bundled))
    return resolve(source)


def load_reports(directory: Path) -> list[tuple[Path, CostTable]]:
    """Every report under ``directory``, each one read and checked before any work is done."""
    return [(f, load_report(f)) for f in report_files(directory)]


def other_reports(folder: Path, replaced: Iterable[Path]) -> list[tuple[Path, CostTable]]:
    """``report --out``'s check before it counts or writes anything: the reports already in
    ``folder`` that it keeps (all but ``replaced``), each read and checked, as its index will
    list them. Files that are not cnncost's reports are left alone (cnncost.check.is_report);
    a broken report, a folder nested too deep or ``folder`` being a file is a UsageError."""
    problem = not_a_folder(folder)
    if problem is not None:
        raise UsageError(f"--out {folder}: {problem}; expected a folder for the reports")
    if not folder.exists():
        return []
    skip = {p.resolve() for p in replaced}
    return [(f, load_report(f)) for f in find_reports(folder) if f.resolve() not in skip]


def checked_reports(directory: Path, allow_factories: Sequence[str] = ()
                    ) -> tuple[list[tuple[Path, CostTable]], list[tuple[Path, UsageError]]]:
    """The reports ``check`` recomputes, and those that cannot be read (each with its error:
    a broken report hides no other's drift). A report whose source is a module factory must
    be allowed (cnncost.check.refuse_code), or nothing is recomputed."""
    baselines, broken = read_reports(directory)
    refuse_code(baselines, allow_factories)
    return baselines, broken


def update_report(table: CostTable, path: Path, folder: Path) -> str:
    """``check --update``: rewrite a drifted report, its Markdown and (where ``report`` wrote
    one) its page; says what it wrote."""
    md = save_report(table, path, replace_input=True)
    if path.with_suffix(".html").exists():
        save_page(table, path, report_folder(folder))
    return f"  updated {path} and {md.name}\n"


def refresh_index(folder: Path) -> None:
    """Rewrite ``folder/index.html`` after an update, where ``report`` wrote one."""
    folder = report_folder(folder)
    if (folder / "index.html").exists():
        save_index(folder)


def unreported(baselines: Sequence[CostTable], checked: Path | None = None) -> list[str]:
    """When a folder of reports (``checked``; not one report) is of bundled specs: the
    bundled specs that have none."""
    sources = {b.source for b in baselines}
    if (checked is not None and checked.is_file()) or not any(
            _bundled(s) for s in sources):
        return []
    return [n for n in bundled_specs() if f"specs/{n}.yaml" not in sources]


def _bundled(source: str) -> bool:
    """A report's source is a bundled spec (not a project's own file of that name)."""
    if not source.startswith("specs/"):
        return False
    local, root = Path(source), specs_dir().resolve()
    if local.is_file():
        return root in local.resolve().parents
    return (root / source.removeprefix("specs/")).is_file()
