"""Models from outside the project that the counter once missed or refused, each a class of
its own with stand-ins written here: a ``torch.compile``'d function inside a forward, the
fused CPU kernels of a recount on real tensors (attention, nn.MultiheadAttention's fast
path, LSTM), matrix products without a formula, data movement listed as uncounted.

Every expectation is worked out by hand from the shapes (the formula in each comment), and
where PyTorch's FlopCounterMode counts the same products, it agrees (2 FLOPs per MAC).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from tiers import tiered
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnncost
import cnncost.count.drivers
from cnncost.count.drivers import plain_kernels
from cnncost.count.mode import Acc, CostCounterMode
from cnncost.table import CostTable


def _uncounted(report: CostTable) -> dict[str, int]:
    return {op: n for row in report.layers for op, n in row.uncounted.items()}


# --------------------------------------------------------------------------- torch.compile


def _gram(x: torch.Tensor, k: int) -> torch.Tensor:
    """A helper users compile (as torchvision compiles its Python roi_align)."""
    ramp = torch.arange(k, device=x.device, dtype=x.dtype)
    return x @ x.transpose(-1, -2) + ramp.sum()


def _scale(x: torch.Tensor) -> torch.Tensor:
    return x * 2


_COMPILED: dict[str, Any] = {}


def compiled() -> dict[str, Any]:
    """_gram compiled with dynamic shapes, _scale as one whole graph (made at first use:
    torch.compile loads the compiler, seconds)."""
    if not _COMPILED:
        _COMPILED["gram"] = torch.compile(_gram, dynamic=True)
        _COMPILED["scale"] = torch.compile(_scale, fullgraph=True)
    return _COMPILED


class CallsCompiled(nn.Module):
    """A linear layer, then compiled functions on its output; ``data``: reads a value first
    (``.item()``), so the count runs again on CPU tensors."""

    def __init__(self, data: bool) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 6)
        self.data = data
        self.fns = compiled()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.data:
            x = x[:, : int((x > -1e9).sum().item()) // x.shape[-1]]
        out: torch.Tensor = self.fns["scale"](self.fns["gram"](self.lin(x), 3))
        return out


@pytest.mark.slow  # torch.compile loads the compiler (seconds)
@pytest.mark.parametrize("data", [False, True], ids=["meta", "cpu-recount"])
@pytest.mark.parametrize("mode", ["inference", "train"])
def test_a_compiled_function_inside_forward_is_counted(data: bool, mode: str) -> None:
    report = cnncost.analyze(CallsCompiled(data), input=(5, 4), mode=mode)
    assert report.counted_on == ("cpu" if data else "meta")
    # linear: 5 rows x 6 outputs x 4 inputs = 120; gram (5 x 6) @ (6 x 5): 5 x 5 x 6 = 150
    assert report.totals.macs == 5 * 6 * 4 + 5 * 5 * 6
    assert _uncounted(report) == {}


@pytest.mark.slow
def test_the_compiler_stance_is_put_back_after_a_count() -> None:
    from torch._dynamo import eval_frame

    cnncost.analyze(CallsCompiled(False), input=(5, 4))
    assert eval_frame._stance.stance == "default"  # the next call compiles as before


COMPILED_MID_COUNT = """
import sys
import torch
from torch import nn
import cnncost

def gram(x):
    return x @ x.transpose(-1, -2)

class CompilesLate(nn.Module):
    # compiles its helper at its first forward, as torchvision's lazy_compile does
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 6)
        self.fn = None

    def forward(self, x):
        if self.fn is None:
            self.fn = torch.compile(gram, dynamic=True)
        return self.fn(self.lin(x))

assert "torch._dynamo" not in sys.modules  # the compiler arrives during the count
report = cnncost.analyze(CompilesLate(), input=(5, 4))
print(report.totals.macs, sum(sum(r.uncounted.values()) for r in report.layers))
"""


@pytest.mark.slow
def test_a_function_compiled_during_the_count_is_counted() -> None:
    # No force_eager stance can be set before the compiler is loaded: the counter's own
    # handler stays out of dynamo's sight by its skip mark.
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", COMPILED_MID_COUNT], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    # linear 5 x 6 x 4 = 120; gram (5 x 6) @ (6 x 5) = 150; nothing uncounted
    assert done.stdout.split() == [str(120 + 150), "0"]


# --------------------------------------------------------------------------- fused CPU kernels


class Gate(nn.Module):
    """Runs ``inner``; with ``data`` it first reads a value (``.item()``: no meta count, so
    the count runs again on real CPU tensors, where PyTorch would pick its fused kernels)."""

    def __init__(self, inner: nn.Module, data: bool) -> None:
        super().__init__()
        self.inner = inner
        self.data = data

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.data:  # keeps every row: the same shapes as without the gate
            x = x[:, : int((x > -1e9).sum().item()) // x.shape[-1]]
        out: torch.Tensor = self.inner(x)
        return out


class Attention(nn.Module):
    """Query projection, then scaled-dot-product attention over 2 heads of width 4."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.q(x).view(x.shape[0], -1, 2, 4).transpose(1, 2)  # (N, heads, L, 4)
        return nn.functional.scaled_dot_product_attention(q, q, q)


class SelfAttention(nn.Module):
    """nn.MultiheadAttention (embed 8, 2 heads) on its input, at inference: the fast path."""

    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.mha(x, x, x)[0]
        return out


class Recurrent(nn.Module):
    """A two-layer LSTM, input 8, hidden 6."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 6, num_layers=2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.lstm(x)[0]
        return out


L = 5  # sequence length; one sample of L x 8
FUSED: list[tuple[str, Callable[[], nn.Module], int, str]] = [
    # q projection: L x 8 x 8 = 320; QK^T: 2 heads x (L x L) x 4 = 200; AV: 2 x (L x 4) x L
    ("sdpa", Attention, L * 8 * 8 + 2 * L * L * 4 + 2 * L * 4 * L,
     "aten::_scaled_dot_product_flash_attention_for_cpu"),
    # in-projection: L x 24 x 8 = 960; QK^T and AV: 200 each; out-projection L x 8 x 8 = 320
    ("mha", SelfAttention, L * 24 * 8 + 2 * (2 * L * L * 4) + L * 8 * 8,
     "aten::_native_multi_head_attention"),
    # per step and layer: gates 4H x I + 4H x H; layer 1 (I = 8, H = 6), layer 2 (I = 6)
    ("lstm", Recurrent, L * (24 * 8 + 24 * 6) + L * (24 * 6 + 24 * 6), "aten::mkldnn_rnn_layer"),
]


# an oracle (the count on cpu): the fast tier keeps lstm (attention on cpu takes 0.8 s)
@pytest.mark.parametrize(("name", "make", "macs", "fused"),
                         tiered(FUSED, {"lstm"}, ids=[f[0] for f in FUSED]))
def test_a_recount_on_cpu_counts_what_the_meta_count_counts(
        name: str, make: Callable[[], nn.Module], macs: int, fused: str) -> None:
    torch.manual_seed(0)
    inner = make().eval()
    on_meta = cnncost.analyze(Gate(inner, data=False), input=(L, 8))
    on_cpu = cnncost.analyze(Gate(inner, data=True), input=(L, 8))
    assert (on_meta.counted_on, on_cpu.counted_on) == ("meta", "cpu")
    assert on_meta.totals.macs == on_cpu.totals.macs == macs
    assert _uncounted(on_meta) == _uncounted(on_cpu) == {}
    # the gate's own ops: L x 8 comparisons and their sum
    assert on_cpu.totals.flops - on_meta.totals.flops == 2 * L * 8
    # the fused kernel is what PyTorch runs on CPU outside a count
    x = torch.randn(1, L, 8)
    with torch.no_grad(), _OpNames() as seen:
        inner(x)
    assert fused in seen.names
    # and FlopCounterMode on the same real forward, on the plain kernels, agrees
    with torch.no_grad(), plain_kernels(), FlopCounterMode(display=False) as flops:
        inner(x)
    assert flops.get_total_flops() == 2 * macs


def test_the_plain_kernels_flags_are_put_back() -> None:
    before = (torch.backends.mha.get_fastpath_enabled(), torch.backends.mkldnn.enabled,
              torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.math_sdp_enabled())
    with pytest.raises(RuntimeError, match="inside"), plain_kernels():
        assert not torch.backends.mha.get_fastpath_enabled()
        assert not torch.backends.mkldnn.enabled
        raise RuntimeError("inside")
    assert (torch.backends.mha.get_fastpath_enabled(), torch.backends.mkldnn.enabled,
            torch.backends.cuda.flash_sdp_enabled(),
            torch.backends.cuda.math_sdp_enabled()) == before


class _OpNames(torch.utils._python_dispatch.TorchDispatchMode):
    """The ATen ops a forward runs, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        self.names.add(func._overloadpacket._qualified_op_name)
        return func(*args, **(kwargs or {}))


# --------------------------------------------------------------------------- matrix products


class Products(nn.Module):
    """Every product without a formula before, on a (1, 4) input row v."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 4))
        self.bil = nn.Bilinear(4, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[0]
        batch = torch.stack([self.w, self.w])  # (2, 4, 4)
        rows = x.expand(3, 4).unsqueeze(0)  # (1, 3, 4)
        cols = x.expand(30, 4).unsqueeze(0)  # (1, 30, 4): cdist switches to a product
        parts = [torch.mv(self.w, v), torch.addmv(v, self.w, v), torch.dot(v, v).view(1),
                 torch.addbmm(self.w, batch, batch).flatten(), torch.addr(self.w, v, v).flatten(),
                 self.bil(x, x).flatten(), torch.cdist(rows, rows[:, :2]).flatten(),
                 torch.cdist(cols, cols).flatten()]
        return torch.cat(parts)


# mv 4 x 4 = 16; addmv 16; dot 4; addbmm 2 x 4 x 4 x 4 = 128; addr 4 x 4 x 1 = 16;
# bilinear (N=1, out=3, in1=in2=4): 1 x 3 x 4 x 4 + 1 x 3 x 4 = 60;
# cdist 3 x 2 pairs x 4 coordinates = 24;
# cdist on 30 rows by a product: 30 x 30 x (4 + 2) + (30 + 30) x 4 = 5,640
PRODUCT_MACS = 16 + 16 + 4 + 128 + 16 + 60 + 24 + (30 * 30 * 6 + 60 * 4)


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_matrix_products_have_formulas(device: str) -> None:
    torch.manual_seed(0)
    report = cnncost.analyze(Products(), input=(4,), device=device)
    assert report.totals.macs == PRODUCT_MACS
    assert _uncounted(report) == {}


# Each product next to the same product written as mm/bmm, which FlopCounterMode counts.
EQUIVALENT: list[tuple[str, Callable[[torch.Tensor, torch.Tensor], Any],
                       Callable[[torch.Tensor, torch.Tensor], Any]]] = [
    ("mv", lambda a, v: torch.mv(a, v), lambda a, v: a @ v[:, None]),
    ("addmv", lambda a, v: torch.addmv(a[:, 0], a, v),
     lambda a, v: torch.addmm(a[:, :1], a, v[:, None])),
    ("dot", lambda a, v: torch.dot(v, v), lambda a, v: v[None] @ v[:, None]),
    ("addr", lambda a, v: torch.addr(a[:, :5], a[:, 0], v),
     lambda a, v: torch.addmm(a[:, :5], a[:, :1], v[None])),
    ("addbmm", lambda a, v: torch.addbmm(a[:, :3], a.expand(2, 4, 5), a.T[:, :3].expand(2, 5, 3)),
     lambda a, v: torch.bmm(a.expand(2, 4, 5), a.T[:, :3].expand(2, 5, 3))),
]


@pytest.mark.parametrize(("name", "product", "as_mm"), EQUIVALENT, ids=[e[0] for e in EQUIVALENT])
def test_products_agree_with_flopcountermode_on_their_mm_form(
        name: str, product: Callable[..., Any], as_mm: Callable[..., Any]) -> None:
    a, v = torch.randn(4, 5), torch.randn(5)
    mode, acc = CostCounterMode(), Acc(name, name)
    with torch.no_grad(), mode:
        mode.acc = acc
        product(a, v)
    with torch.no_grad(), FlopCounterMode(display=False) as flops:
        as_mm(a, v)
    assert 2 * acc.macs == flops.get_total_flops()
    assert not acc.uncounted


# --------------------------------------------------------------------------- data movement


def _views_and_factories(x: torch.Tensor) -> list[torch.Tensor]:
    y = x.clone()
    y.transpose_(0, 1)
    y.squeeze_()
    y.unsqueeze_(0)
    y.t_() if y.dim() == 2 else y.squeeze_(0)
    c = torch.complex(x, x)
    return [y, torch.view_as_real(c), torch.view_as_complex(torch.view_as_real(c)),
            x.diagonal(), x.unfold(0, 2, 1), x.as_strided((2,), (1,)), x.movedim(0, 1),
            torch.arange(5), torch.linspace(0.0, 1.0, 5), torch.eye(3),
            torch.scalar_tensor(2.0), nn.functional.unfold(x[None, None], 2), x.roll(1),
            x.flip(0), x.tril(), x.triu(), x[torch.tensor([2, 0], device=x.device)]]


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_data_movement_costs_nothing(device: str) -> None:
    x = torch.rand(4, 4, device=device)
    mode, acc = CostCounterMode(), Acc("moves", "moves")
    with torch.no_grad(), mode:
        mode.acc = acc
        _views_and_factories(x)
    assert (acc.macs, acc.elem_flops, dict(acc.uncounted)) == (0, 0, {})


def test_an_op_that_computes_without_a_formula_is_still_listed() -> None:
    # cumsum writes a new tensor from arithmetic: neither a view nor a factory
    mode, acc = CostCounterMode(), Acc("cumsum", "cumsum")
    with torch.no_grad(), mode:
        mode.acc = acc
        torch.empty(3, 4, device="meta").cumsum(1)
    assert dict(acc.uncounted) == {"aten::cumsum": 1}


# --------------------------------------------------------------------------- mixed dtypes


class HalfThenDouble(nn.Module):
    """A module that fixes its own dtypes: a float16 1x1 conv 3 -> 4, a float64 one 4 -> 2."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1).half()
        self.b = nn.Conv2d(4, 2, 1).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.b(self.a(x.half()).double())
        return out


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_module_with_its_own_dtypes_is_counted_at_them(dtype: str, device: str) -> None:
    report = cnncost.count.drivers.count_module(HalfThenDouble(), (3, 4, 4), dtype=dtype,
                                                device=device)
    # a: 4 x 4 x 4 outputs x 3 = 192 MACs; b: 2 x 4 x 4 x 4 = 128
    assert report.totals.macs == 192 + 128
    # a's 12 + 4 weights at 2 bytes, b's 8 + 2 at 8 bytes
    assert report.totals.param_bytes == 16 * 2 + 10 * 8
    rows = {r.name: r for r in report.layers}
    # each output at its own dtype: a's 64 values at 2 bytes, b's 32 at 8
    assert (rows["a"].output_bytes, rows["b"].output_bytes) == (64 * 2, 32 * 8)
    assert report.dtype == dtype  # the input's
    assert any("float16, float64" in c for c in report.conventions)


# --------------------------------------------------------------------------- receptive field


def _fields(text: str, engine: str = "analytic") -> list[tuple[str, int | None, Any]]:
    from cnncost.spec import parse_spec

    report = cnncost.analyze(parse_spec(text, "t.yaml"), engine=engine)
    return [(r.name, r.receptive_field, r.receptive_field_axes) for r in report.layers]


@pytest.mark.parametrize("engine", ["analytic", "torch"])
def test_the_receptive_field_is_measured_per_axis(engine: str) -> None:
    text = """
input: [1, 32, 32]
layers:
  - conv: {out: 2, kernel: [1, 7]}
  - conv: {out: 2, kernel: [1, 7]}
  - conv_transpose: {out: 2, kernel: 3, dilation: 3}
  - conv: {out: 2, kernel: [7, 1]}
  - conv: {out: 2, kernel: [7, 1]}
"""
    # Per axis (H, W), each layer adds (extent - 1) x jump, the extent of a dilated kernel
    # being dilation x (k - 1) + 1 (transposed too: 3 x 2 + 1 = 7), every jump 1 here.
    # 1x7: (1, 7); 1x7: (1, 13); transposed 7x7: (7, 19); 7x1: (13, 19); 7x1: (19, 19).
    assert _fields(text, engine) == [
        ("conv1", 7, (1, 7)), ("conv2", 13, (1, 13)), ("conv_transpose1", 19, (7, 19)),
        ("conv3", 19, (13, 19)), ("conv4", 19, None)]  # square: the one number says it


def test_strides_are_per_axis_too() -> None:
    # conv 3x3 with stride (2, 1): (3, 3), jumps (2, 1); then 3x3: (3 + 2 x 2, 3 + 2 x 1)
    text = "input: [1, 16, 16]\nlayers:\n  - conv: {out: 1, kernel: 3, stride: [2, 1]}\n" \
           "  - conv: {out: 1, kernel: 3}\n  - max_pool: {kernel: [2, 1]}\n"
    # then a 2x1 pool (H's jump still 2): H 7 + (2 - 1) x 2 = 9, W unchanged
    assert _fields(text) == [("conv1", 3, None), ("conv2", 7, (7, 5)),
                             ("max_pool1", 9, (9, 5))]


def test_a_dilated_transposed_conv_sees_its_dilated_extent() -> None:
    # kernel 3, dilation 3: input taps 3 apart, 7 input pixels per output pixel (was 3)
    text = "input: [1, 8, 8]\nlayers:\n  - conv_transpose: {out: 1, kernel: 3, dilation: 3}\n"
    assert _fields(text) == [("conv_transpose1", 7, None)]


def test_the_report_names_a_field_per_axis_only_where_it_is_not_square() -> None:
    from cnncost.spec import parse_spec

    report = cnncost.analyze(parse_spec(
        "input: [1, 9, 9]\nlayers:\n  - conv: {out: 1, kernel: [3, 1]}\n"
        "  - conv: {out: 1, kernel: [1, 3]}\n", "t.yaml"))
    doc = report.to_dict()
    first, second = doc["layers"]
    assert (first["receptive_field"], first["receptive_field_axes"]) == (3, [3, 1])
    assert second["receptive_field"] == 3 and "receptive_field_axes" not in second
    assert list(first)[list(first).index("receptive_field") + 1] == "receptive_field_axes"
    assert CostTable.from_json(report.to_json()) == report
