"""Compiled specs are ordinary torch models: real forward passes, spec paths as module names."""

from __future__ import annotations

import keyword
from textwrap import dedent

import pytest
import torch
from torch import fx, nn

from cnncost.graph.build import build, build_module, layer_specs
from cnncost.spec import RESERVED_NAMES, ModelSpec, parse_spec


def compile_text(text: str, **kw: object) -> tuple[ModelSpec, fx.GraphModule]:
    model = parse_spec(dedent(text), "t.yaml", **kw)  # type: ignore[arg-type]
    return model, build_module(model)


def run(gm: fx.GraphModule, model: ModelSpec, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(0)
    with torch.no_grad():
        return gm(torch.randn(batch, *model.input_shape))


EVERY_FORM = """
    name: every-form
    vars: {width: 1.0, classes: 5}
    input: [3, 20, 20]
    blocks:
      unit:
        params: {c: ~, s: 1}
        layers:
          - residual:
              layers:
                - conv: {out: c, kernel: 3, stride: s, padding: 1, bias: false}
                - bn
                - relu
                - conv: {out: c, kernel: 3, padding: 1, bias: false}
                - bn
              shortcut:
                - conv: {out: c, kernel: 1, stride: s, bias: false}
              when: "s != 1 or in != c"
          - relu
      se:
        params: {c: in}
        layers:
          - scale:
              - global_avg_pool
              - conv: {out: "c // 4", kernel: 1}
              - relu
              - conv: {out: c, kernel: 1}
              - hardsigmoid
    layers:
      - conv: {out: "int(8 * width)", kernel: 3, padding: 1}
        name: stem
      - tap: full
      - unit: {c: 8}
        name: layer1
        repeat: 2
      - unit: {c: 16}
        name: layer2
        repeat: 2
        first: {s: 2}
      - se
      - split:
          x1: []
          x2: [{conv: {out: 8, kernel: 1}}, relu]
      - channel_shuffle: {groups: 2}
      - concat:
          a: [{conv: {out: 4, kernel: 1}}]
          b: [{max_pool: {kernel: 3, stride: 1, padding: 1}}]
      - add:
          - []
          - [{conv: {out: 20, kernel: 3, padding: 1}}]
      - upsample: {scale: 2}
      - join: {tap: full}
      - conv: {out: 8, kernel: 3}
      - tap: small                                # 8x18x18
      - max_pool: {kernel: 2}
      - conv_transpose: {out: 8, kernel: 2, stride: 2}
      - join: {tap: small, mode: add}
      - join: {tap: full, mode: concat, crop: true}  # 20x20 cropped to 18x18
      - global_avg_pool
      - flatten
      - dropout: {p: 0.1}
      - linear: {out: classes}
"""


def test_every_form_compiles_and_runs() -> None:
    model, gm = compile_text(EVERY_FORM)
    y = run(gm, model, batch=3)
    assert tuple(y.shape) == (3, *model.output_shape) == (3, 5)
    assert torch.isfinite(y).all()


def test_every_node_output_has_the_inferred_shape() -> None:
    model, gm = compile_text(EVERY_FORM)
    seen: dict[str, tuple[int, ...]] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node) -> object:
            out = super().run_node(n)
            if "cnncost" in n.meta:
                seen[n.meta["cnncost"].path] = tuple(out.shape[1:])
            return out

    with torch.no_grad():
        Recorder(gm).run(torch.randn(2, *model.input_shape))
    assert seen == {layer.path: layer.out_shape for layer in model.layers}


def test_submodule_names_are_spec_paths() -> None:
    model, gm = compile_text(EVERY_FORM)
    modules = dict(gm.named_modules())
    for layer in model.layers:
        if layer.is_op:
            assert layer.path not in modules or not list(modules[layer.path].parameters())
        else:
            assert layer.path in modules, layer.path
    assert isinstance(modules["stem"], nn.Conv2d)
    assert isinstance(modules["layer2.0.conv1"], nn.Conv2d)
    assert modules["layer2.0.conv1"].stride == (2, 2)
    assert modules["layer2.1.conv1"].stride == (1, 1)
    assert isinstance(modules["layer2.0.shortcut.conv1"], nn.Conv2d)
    assert "layer1.0.shortcut.conv1" not in modules  # `when` was false: 8 -> 8, stride 1
    assert isinstance(modules["se1.scale1.hardsigmoid1"], nn.Hardsigmoid)
    assert isinstance(modules["x2.conv1"], nn.Conv2d)
    assert isinstance(modules["conv_transpose1"], nn.ConvTranspose2d)
    assert set(layer_specs(gm)) == {n.name for n in gm.graph.nodes if n.op != "placeholder"
                                    and n.op != "output"}


def test_code_reads_like_the_spec() -> None:
    _, gm = compile_text(EVERY_FORM)
    code = gm.code
    assert "def forward(self, x):" in code
    assert "stem = self.stem(x)" in code
    assert 'getattr(self.layer2, "0").conv1(' in code
    assert "torch.cat([" in code and "dim = 1" in code
    assert "torch.narrow(" in code  # split and crop
    assert " * se1_scale1_hardsigmoid1" in code  # the squeeze-excite multiply
    assert "return linear1" in code
    assert type(gm).__name__ == "EveryForm"


def test_ops_compute_what_the_spec_says() -> None:
    """Residual, split, crop and scale checked numerically against plain torch."""
    _, gm = compile_text("""
        input: [4, 6, 6]
        layers:
          - residual: [{conv: {out: 4, kernel: 1, bias: false}}]
          - tap: t
          - split: {a: [], b: [sigmoid]}
          - scale: [global_avg_pool]
          - conv: {out: 4, kernel: 3, bias: false}
          - join: {tap: t, crop: true}
    """)
    mods = dict(gm.named_modules())
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        r = mods["conv1"](x) + x
        s = torch.cat([r[:, :2], torch.sigmoid(r[:, 2:])], dim=1)
        g = s * s.mean(dim=(2, 3), keepdim=True)
        c = mods["conv2"](g)  # 4x4x4
        expected = torch.cat([r[:, :, 1:5, 1:5], c], dim=1)  # crop 6 -> 4 from (6 - 4) // 2
        assert torch.allclose(gm(x), expected, atol=1e-6)


def test_grouped_dilated_and_1d_3d_convs_build() -> None:
    for text in [
        "input: [8, 16]\nlayers: [{conv: {out: 4, kernel: 3, dilation: 2, groups: 4}}, "
        "{bn: ~}, {max_pool: {kernel: 2}}, {upsample: {scale: 2, mode: linear}}]",
        "input: [2, 6, 8, 8]\nlayers: [{conv: {out: 4, kernel: 3, padding: 1}}, {bn: ~}, "
        "{avg_pool: {kernel: 2}}, {upsample: {scale: 2, mode: trilinear}}]",
        "input: [4, 7, 7]\nlayers: [{conv: {out: 4, kernel: 4, padding: same}}, "
        "{group_norm: {groups: 2}}, {layer_norm: {dims: 2}}, {gelu: ~}, "
        "{softmax: {dim: 0}}]",
    ]:
        model, gm = compile_text(text)
        assert tuple(run(gm, model).shape[1:]) == model.output_shape


def test_model_is_trainable() -> None:
    _, gm = compile_text("""
        input: [3, 8, 8]
        layers:
          - conv: {out: 4, kernel: 3, padding: 1}
          - bn
          - relu
          - residual: [{conv: {out: 4, kernel: 3, padding: 1}}]
          - global_avg_pool
          - flatten
          - linear: {out: 2}
    """)
    gm.train()
    params = list(gm.parameters())
    # conv 4*3*9 + 4, bn 4 + 4, conv 4*4*9 + 4, linear 4*2 + 2
    assert sum(p.numel() for p in params) == 112 + 8 + 148 + 10
    loss = gm(torch.randn(4, 3, 8, 8)).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in params)


def test_meta_device_allocates_nothing() -> None:
    model = parse_spec("input: [3, 224, 224]\nlayers: [{conv: {out: 2048, kernel: 7}}]",
                       "t.yaml")
    gm = build_module(model, device="meta")
    assert all(p.device.type == "meta" for p in gm.parameters())
    y = gm(torch.empty(1, 3, 224, 224, device="meta"))
    assert tuple(y.shape) == (1, 2048, 218, 218)


def test_build_from_file_with_vars(write_spec) -> None:
    path = write_spec(dedent("""\
        vars: {width: 1.0, res: 32}
        input: [3, res, res]
        layers:
          - conv: {out: "int(16 * width)", kernel: 3, stride: 2, padding: 1}
    """))
    gm = build(path, width=0.5, res=16)
    y = gm(torch.randn(1, 3, 16, 16))
    assert tuple(y.shape) == (1, 8, 8, 8)  # int(16 * 0.5); (16 + 2 - 3) // 2 + 1


def test_reserved_names_cover_torch_attributes() -> None:
    """Layer names become module attributes: every clash with torch must be refused."""
    public = {a for a in dir(fx.GraphModule) if not a.startswith("_")}
    public |= {a for a in vars(nn.Module()) if not a.startswith("_")}  # e.g. `training`
    missing = public - RESERVED_NAMES
    assert not missing, f"add to spec.RESERVED_NAMES: {sorted(missing)}"
    assert set(keyword.kwlist) <= RESERVED_NAMES


@pytest.mark.parametrize("name", ["x", "input", "torch", "getattr", "operator", "cat",
                                  "layer", "fx", "conv1"])
def test_unusual_but_allowed_names_build(name: str) -> None:
    model, gm = compile_text(f"""
        input: [3, 4, 4]
        layers:
          - relu: ~
            name: {name}
          - concat: {{a: [], b: []}}
          - relu
    """)
    assert tuple(run(gm, model).shape) == (2, 6, 4, 4)
