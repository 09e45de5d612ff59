"""The cost review where changes are made: the pre-commit hook (.pre-commit-hooks.yaml) run by
the real `pre-commit` tool in a temporary git repository, and the GitHub Action (action.yml)
whose run steps are executed as a runner executes them, with GITHUB_STEP_SUMMARY and
GITHUB_OUTPUT files. No network: the hook runs the cnncost installed here (`repo: local`),
and the action's steps that install (setup-python, pip) are left out by their inputs.

The spec is tests/small_spec.py's: at width 4 conv params 3*3*3*4 = 108 and linear
4*10 + 10 = 50 (158 in all); widened to 5: 135 + 60 = 195.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from small_spec import small

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # this environment's cnncost and pre-commit
SPEC = small("name: small")
WIDE = SPEC.replace("width: 4", "width: 5")
MARKER = "<!-- cnncost-review -->"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def environment(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GITHUB_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PRE_COMMIT_HOME=str(tmp / "pc"),
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com",
               GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", COLUMNS="100")
    return env


def sh(cwd: Path, *args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A git repository on branch main: specs/small.yaml and its reports/ committed."""
    work, env = tmp_path / "repo", environment(tmp_path)
    (work / "specs").mkdir(parents=True)
    (work / "specs" / "small.yaml").write_text(SPEC)
    assert sh(work, "git", "init", "-q", "-b", "main", env=env).returncode == 0
    made = sh(work, BIN / "cnncost", "report", "specs/small.yaml", "--out", "reports", env=env)
    assert made.returncode == 0, made.stderr
    return work, env


def commit(work: Path, env: dict[str, str], message: str) -> subprocess.CompletedProcess[str]:
    assert sh(work, "git", "add", "-A", env=env).returncode == 0
    return sh(work, "git", "commit", "-q", "-m", message, env=env)


# --------------------------------------------------------------------------- pre-commit


@pytest.mark.slow  # the real pre-commit and the action's steps, in a git repository
def test_the_pre_commit_hook(repo: tuple[Path, dict[str, str]]) -> None:
    work, env = repo
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = [h for h in hooks if h["id"] == "cnncost-check"]
    assert hook["entry"] == "cnncost check" and hook["args"][0] == "reports/"
    # As published the hook installs cnncost with pip (language: python); here it runs the
    # one installed in this environment, everything else as published.
    local = {**hook, "language": "unsupported"}
    (work / ".pre-commit-config.yaml").write_text(yaml.safe_dump(
        {"repos": [{"repo": "local", "hooks": [local]}]}))
    installed = sh(work, BIN / "pre-commit", "install", env=env)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    clean = commit(work, env, "specs and their reports")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    # (git shows a hook's output on stderr)
    assert re.search(r"cnncost check \(cost reports match their specs\)\.+Passed", clean.stderr)

    (work / "specs" / "small.yaml").write_text(WIDE)  # a changed spec, its report not
    refused = commit(work, env, "wider")
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0, out
    assert re.search(r"cnncost check \(cost reports match their specs\)\.+Failed", out)
    assert "- exit code: 1" in out
    assert MARKER in out and "### cnncost check: drift in 1 of 1 report(s)" in out
    assert "| params | 158 | 195 | +37 | 1.234x |" in out  # the Markdown, totals first

    (work / "notes.txt").write_text("unrelated\n")  # no spec or report staged: not run
    assert sh(work, "git", "stash", "-q", env=env).returncode == 0
    skipped = commit(work, env, "notes")
    assert skipped.returncode == 0 and "Skipped" in skipped.stderr, skipped.stderr
    assert sh(work, "git", "stash", "pop", "-q", env=env).returncode == 0

    updated = sh(work, BIN / "cnncost", "check", "reports/", "--update", env=env)
    assert updated.returncode == 0, updated.stdout + updated.stderr
    accepted = commit(work, env, "wider, on purpose")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


# --------------------------------------------------------------------------- the Action

ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
EXPRESSION = re.compile(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}")
CONDITION = re.compile(r"inputs\.([\w-]+) != ''")


def run_action(work: Path, env: dict[str, str], **given: str) -> dict[str, Any]:
    """Execute action.yml's steps as a runner would (bash -eo pipefail, each step's env with
    its ${{ inputs.X }} filled in), without the steps that install (their inputs empty)."""
    inputs = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()}
    inputs.update({"install": "", "python-version": ""}, **given)
    files = work.parent / "runner"
    files.mkdir(exist_ok=True)
    summary, output = files / "summary.md", files / "output.txt"
    for f in (summary, output):
        f.write_text("")
    result = None
    for step in ACTION["runs"]["steps"]:
        condition = CONDITION.fullmatch(step.get("if", "inputs.reports != ''"))
        assert condition, step  # the only kind of condition this runner understands
        if inputs[condition[1]] == "":
            continue
        assert "uses" not in step and step["shell"] == "bash", step
        step_env = {k: EXPRESSION.sub(lambda m: inputs[m[1]], str(v))
                    for k, v in step.get("env", {}).items()}
        script = files / f"{step['id']}.sh"
        script.write_text(step["run"])
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=work,
            env={**env, **step_env, "GITHUB_STEP_SUMMARY": str(summary),
                 "GITHUB_OUTPUT": str(output), "RUNNER_TEMP": str(files),
                 "GITHUB_ACTION_PATH": str(ROOT)},
            capture_output=True, text=True, timeout=300, check=False)
        if result.returncode:
            break
    assert result is not None
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return {"code": result.returncode, "stderr": result.stderr, "outputs": outputs,
            "summary": summary.read_text()}


@pytest.fixture
def pull_request(repo: tuple[Path, dict[str, str]]) -> tuple[Path, dict[str, str]]:
    """main holds the spec and its reports; branch `change` is checked out."""
    work, env = repo
    assert commit(work, env, "base").returncode == 0
    assert sh(work, "git", "checkout", "-q", "-b", "change", env=env).returncode == 0
    return work, env


@pytest.mark.slow  # the real pre-commit and the action's steps, in a git repository
def test_the_action_fails_on_drift_and_says_why(pull_request: tuple[Path, dict[str, str]]
                                                ) -> None:
    work, env = pull_request
    (work / "specs" / "small.yaml").write_text(WIDE)
    commit(work, env, "wider, reports forgotten")
    ran = run_action(work, env, **{"base-ref": "main"})
    assert ran["code"] == 1, ran["stderr"]
    out = ran["outputs"]
    assert out["status"] == "drift" and out["exit-code"] == "1"
    doc = json.loads(Path(out["json"]).read_text())
    assert doc["schema"] == "cnncost.check/1" and doc["status"] == "drift"
    assert json.loads(Path(out["diff-json"]).read_text())["schema"] == "cnncost.diff/1"
    markdown = Path(out["markdown"]).read_text()
    assert ran["summary"] == markdown and markdown.count(MARKER) == 1
    assert "### cnncost check: drift in 1 of 1 report(s)" in markdown
    assert "### cnncost diff: 0 of 1 report(s) changed" in markdown  # reports untouched

    kept = run_action(work, env, **{"base-ref": "main", "fail-on-drift": "false"})
    assert kept["code"] == 0 and kept["outputs"]["status"] == "drift"


@pytest.mark.slow  # the real pre-commit and the action's steps, in a git repository
def test_the_action_shows_a_change_made_on_purpose(pull_request: tuple[Path, dict[str, str]]
                                                   ) -> None:
    work, env = pull_request
    (work / "specs" / "small.yaml").write_text(WIDE)
    assert sh(work, BIN / "cnncost", "check", "reports", "--update", env=env).returncode == 0
    commit(work, env, "wider, reports updated")
    ran = run_action(work, env, **{"base-ref": "main"})
    assert ran["code"] == 0, ran["stderr"]
    assert ran["outputs"]["status"] == "ok"
    summary = ran["summary"]
    assert "### cnncost check: all 1 report(s) match" in summary
    assert "### cnncost diff: 1 of 1 report(s) changed" in summary
    assert "| **small** | drift | 158 → 195 (1.234x) |" in summary


@pytest.mark.slow  # the real pre-commit and the action's steps, in a git repository
def test_the_action_enforces_budgets(pull_request: tuple[Path, dict[str, str]]) -> None:
    work, env = pull_request
    (work / "ceilings.yaml").write_text("small:\n  params: 150\n")  # 158 > 150
    ran = run_action(work, env, budgets="ceilings.yaml", **{"fail-on-drift": "false"})
    assert ran["code"] == 0 and ran["outputs"]["status"] == "over_budget"
    assert "params 158 over its budget 150 by 8" in ran["summary"]
    assert run_action(work, env, budgets="ceilings.yaml")["code"] == 1


@pytest.mark.slow  # the real pre-commit and the action's steps, in a git repository
@pytest.mark.parametrize("case,why", [
    ("base-ref", "error: base ref nosuchbranch: no such commit, branch or tag"),
    ("reports", "error: nowhere: no such directory"),
    ("budgets", "ceilings.yaml:1: large: no report of a model called 'large'"),
])
def test_the_action_fails_on_bad_input_whatever_fail_on_drift_says(
        pull_request: tuple[Path, dict[str, str]], case: str, why: str) -> None:
    work, env = pull_request
    (work / "ceilings.yaml").write_text("large:\n  params: 1\n")
    given = {"fail-on-drift": "false", "base-ref": "main",
             **{"base-ref": {"base-ref": "nosuchbranch"}, "reports": {"reports": "nowhere"},
                "budgets": {"budgets": "ceilings.yaml"}}[case]}
    ran = run_action(work, env, **given)
    assert ran["code"] == 2 and ran["outputs"]["status"] == "error", ran
    assert why in ran["stderr"]
    assert ran["summary"].startswith(MARKER)


def test_the_projects_workflow_uses_the_action() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "cost-review.yml").read_text())
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    (cost,) = [s for s in steps if s.get("uses") == "./"]
    assert cost["with"]["base-ref"] == "${{ github.base_ref }}"
    comment = next(s for s in steps if "sticky-pull-request-comment" in s.get("uses", ""))
    assert comment["with"]["path"] == "${{ steps.cost.outputs.markdown }}"
    assert set(cost["with"]) <= set(ACTION["inputs"])
