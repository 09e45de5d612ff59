"""`cnncost export SPEC --onnx FILE` over every bundled spec: the file counts as the spec.

The differential test: each bundled spec is exported (torch.onnx's dynamo exporter, a dynamic
batch) and the file is counted by cnncost.onnx without torch; the spec is counted by the
analytic engine. Every row of the file is scoped under the spec layer it came from
(``layer1.0.conv1.Conv`` under ``layer1.0.conv1``), and per spec layer the file's rows hold
the layer's parameters and MACs; the totals agree at batch 1 and, through the dynamic batch,
at batch 3. Exporting takes tens of seconds per spec on a busy machine: all but one small
spec are in the slow tier.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

from cnncost.api import analyze_target
from cnncost.cli import app
from cnncost.sources import bundled_specs


def export(name: str, path: Path) -> str:
    result = CliRunner().invoke(app, ["export", name, "--onnx", str(path)])
    assert result.exit_code == 0, result.output
    return result.output


# torch's ONNX exporter (dynamo: about 3 CPU-s even for lenet5) runs in the slow tier, as the
# README's export examples do; the fast tier holds the command's refusals below
@pytest.mark.slow
@pytest.mark.parametrize("name", list(bundled_specs()))
def test_exported_spec_counts_as_the_spec(name: str, tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    said = export(name, path)
    assert said.startswith(f"wrote {path} (") and "dynamic batch" in said
    spec, onnx = analyze_target(name), analyze_target(str(path))
    assert not onnx.uncounted
    assert (onnx.totals.params, onnx.totals.macs) == (spec.totals.params, spec.totals.macs)
    rows = {r.name: r for r in onnx.layers}
    claimed: set[str] = set()
    for layer in spec.layers:
        mine = [n for n in rows if n.startswith(layer.name + ".")]
        claimed.update(mine)
        assert sum(rows[n].params + rows[n].buffers for n in mine) == (
            layer.params + layer.buffers - (1 if layer.kind == "bn" else 0)), layer.name
        assert sum(rows[n].macs for n in mine) == layer.macs, layer.name
    assert claimed == set(rows), sorted(set(rows) - claimed)[:5]
    three = analyze_target(str(path), batch=3).totals.macs
    assert three == analyze_target(name, batch=3).totals.macs


def test_export_refuses_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.onnx"
    result = CliRunner().invoke(app, ["export", "no_such_model", "--onnx", str(target)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert not target.exists()
    spec = tmp_path / "x.yaml"
    spec.write_text("name: x\ninput: [3, 8, 8]\nlayers:\n  - conv: {out: 4, kernel: 3}\n")
    result = CliRunner().invoke(app, ["export", str(spec), "--onnx", str(spec)])
    assert result.exit_code == 2 and "refusing to overwrite an input" in result.output
