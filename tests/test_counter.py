"""cnncost.count (drivers, mode, meta): oracles (FlopCounterMode, sum of numel, CPU vs
meta), rows vs totals, uncounted ops, weights left alone, peak memory by hand, policies,
and properties."""

from __future__ import annotations

import textwrap

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiers import tiered
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnncost.count.drivers import count_module, count_spec
from cnncost.errors import UnsupportedOpError, UsageError
from cnncost.graph.build import build_module
from cnncost.spec import parse_spec
from cnncost.table import SUMMED, CostTable, sum_rows

F32 = 4  # bytes per float32 element


def assert_rows_sum_to_totals(table: CostTable) -> None:
    sums = sum_rows(table.layers)
    t = table.totals
    assert (sums["params"], sums["buffers"], sums["macs"], sums["flops"],
            sums["output_bytes"]) == (t.params, t.buffers, t.macs, t.flops,
                                      t.activation_bytes)


# --------------------------------------------------------------------------- small modules


class Block(nn.Module):
    """A torchvision-style residual block: in-place ReLU, functional ``out += identity``."""

    def __init__(self, c: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.down = (nn.Sequential(nn.Conv2d(c, c, 1, stride, bias=False), nn.BatchNorm2d(c))
                     if stride != 1 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.down is None else self.down(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        self.blocks = nn.Sequential(Block(8), Block(8, stride=2))
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


class Inverted(nn.Module):
    """MobileNetV2-style: the residual add lives in the container's own forward."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(c, 4 * c, 1, bias=False), nn.ReLU6(),
                                  nn.Conv2d(4 * c, 4 * c, 3, 1, 1, groups=4 * c, bias=False),
                                  nn.ReLU6(), nn.Conv2d(4 * c, c, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class Shared(nn.Module):
    """One conv registered under two names and called twice, plus a tied linear weight."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.alias = self.conv
        self.a = nn.Linear(4, 4, bias=False)
        self.b = nn.Linear(4, 4, bias=False)
        self.b.weight = self.a.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.alias(self.conv(x))
        x = x.mean((2, 3))
        return self.b(self.a(x))


class Unused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Conv2d(3, 4, 3)
        self.unused = nn.Linear(10, 10)
        self.unused_bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.used(x)


class Weird(nn.Module):
    """Uses an op with no counting formula (cumsum)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(self.conv(x), dim=1)


class Attention(nn.Module):
    """Matrix products on activations: bmm, baddbmm, scaled softmax, mean over a dim."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.proj(x).flatten(2)  # (N, C, HW)
        att = torch.softmax(torch.bmm(q.transpose(1, 2), q) * 0.5, dim=-1)  # (N, HW, HW)
        out = torch.baddbmm(q, q, att)  # (N, C, HW)
        return torch.cat([out, q], dim=1).mean(dim=-1, keepdim=True)


ORACLE_MODULES = [
    ("conv-stack", lambda: nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(),
                                          nn.Conv2d(8, 16, 3, dilation=2, groups=4)),
     (3, 32, 32)),
    ("transposed", lambda: nn.Sequential(nn.ConvTranspose2d(3, 6, 4, 2, 1), nn.Conv2d(6, 2, 1)),
     (3, 9, 9)),
    ("conv1d-3d", lambda: nn.Sequential(nn.Conv1d(3, 5, 3), nn.Flatten(), nn.Linear(5 * 14, 7)),
     (3, 16)),
    ("conv3d", lambda: nn.Conv3d(2, 4, 3, stride=2), (2, 7, 7, 7)),
    ("tiny-resnet", TinyResNet, (3, 32, 32)),
    ("inverted", lambda: Inverted(4), (4, 10, 10)),
    ("shared", Shared, (4, 6, 6)),
    ("attention", Attention, (4, 3, 5)),
    ("pools-2d", lambda: nn.Sequential(
        nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, dilation=2),
        nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.AvgPool2d(3, 2, 1, ceil_mode=True),
        nn.ChannelShuffle(2), nn.AdaptiveAvgPool2d((3, 2)), nn.AdaptiveMaxPool2d(1)),
     (4, 11, 9)),
    ("pools-1d-3d", lambda: nn.Sequential(
        nn.Conv3d(2, 4, 3, padding=1), nn.MaxPool3d(2, ceil_mode=True), nn.AvgPool3d(2),
        nn.AdaptiveAvgPool3d((2, 1, 1)), nn.Flatten(2), nn.MaxPool1d(2), nn.AvgPool1d(1)),
     (2, 7, 9, 9)),
]


@pytest.mark.slow  # oracle: FlopCounterMode
@pytest.mark.parametrize(("make", "shape"), [c[1:] for c in ORACLE_MODULES],
                         ids=[c[0] for c in ORACLE_MODULES])
def test_macs_times_two_equal_flop_counter_mode(make, shape) -> None:
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(2, *shape)
    with torch.no_grad(), FlopCounterMode(display=False) as fcm:
        model(x)
    table = count_module(model, shape, batch=2)
    assert 2 * table.totals.macs == fcm.get_total_flops()
    # conv+linear policy: FLOPs are exactly the papers' 2 x MACs
    assert count_module(model, shape, batch=2, policy="conv+linear").totals.flops == (
        fcm.get_total_flops())


@pytest.mark.parametrize(("make", "shape"), [c[1:] for c in ORACLE_MODULES],
                         ids=[c[0] for c in ORACLE_MODULES])
def test_params_equal_sum_of_numel_and_rows_sum_to_totals(make, shape) -> None:
    model = make()
    table = count_module(model, shape)
    assert table.totals.params == sum(p.numel() for p in model.parameters())
    assert table.totals.buffers == sum(b.numel() for b in model.buffers())
    assert_rows_sum_to_totals(table)


# an oracle (the count on cpu): the fast tier leaves out the two nets that only repeat the
# others' layers bigger
@pytest.mark.parametrize(("make", "shape"), tiered(
    [c[1:] for c in ORACLE_MODULES], {c[0] for c in ORACLE_MODULES} - {"inverted", "tiny-resnet"},
    ids=[c[0] for c in ORACLE_MODULES]))
def test_meta_counts_equal_cpu_counts(make, shape) -> None:
    model = make()
    meta = count_module(model, shape, batch=2).to_dict()
    cpu = count_module(model, shape, batch=2, device="cpu").to_dict()
    assert meta == cpu  # every row and total, peak memory included


M = torch.device("meta")
SHORTCUT_CASES = [
    # (op, arguments): the counter's shortcut must give what PyTorch's CPU kernel gives
    ("conv", "convolution", (torch.empty(2, 4, 9, 7, device=M), torch.empty(6, 2, 3, 2, device=M),
                             torch.empty(6, device=M), [2, 1], [1, 0], [2, 1], False, [0, 0], 2)),
    ("conv-transposed", "convolution", (torch.empty(1, 4, 5, 5, device=M),
                                        torch.empty(4, 3, 3, 3, device=M), None, [2, 2],
                                        [1, 1], [1, 1], True, [1, 1], 2)),
    ("conv1d", "convolution", (torch.empty(2, 3, 10, device=M), torch.empty(5, 3, 4, device=M),
                               None, [3], [1], [1], False, [0], 1)),
    ("max-pool-ceil", "max_pool2d_with_indices", (torch.empty(1, 2, 8, 7, device=M), [3, 3],
                                                  [2, 2], [1, 1], [1, 1], True)),
    ("max-pool-dilated", "max_pool2d_with_indices", (torch.empty(1, 2, 9, 9, device=M), [3, 2],
                                                     [1, 2], [0, 1], [2, 1], False)),
    ("max-pool3d", "max_pool3d_with_indices", (torch.empty(1, 2, 5, 5, 5, device=M), [2, 2, 2],
                                               [2, 2, 2], [0, 0, 0], [1, 1, 1], True)),
    ("avg-pool-ceil", "avg_pool2d", (torch.empty(2, 3, 7, 7, device=M), [3, 3], [2, 2], [1, 1],
                                     True)),
    ("avg-pool1d", "avg_pool1d", (torch.empty(2, 3, 9, device=M), [2], [2], [0], True)),
    ("adaptive-avg", "_adaptive_avg_pool2d", (torch.empty(2, 3, 7, 5, device=M), [3, 2])),
    ("batch-norm-eval", "native_batch_norm", (torch.empty(2, 3, 4, 4, device=M),
                                              *[torch.empty(3, device=M)] * 4, False, 0.1,
                                              1e-5)),
    ("addmm", "addmm", (torch.empty(5, device=M), torch.empty(3, 4, device=M),
                        torch.empty(4, 5, device=M))),
    ("bmm", "bmm", (torch.empty(2, 3, 4, device=M), torch.empty(2, 4, 5, device=M))),
    ("cat", "cat", ([torch.empty(2, 3, 4, device=M), torch.empty(2, 5, 4, device=M)], 1)),
    ("mean", "mean", (torch.empty(2, 3, 4, 5, device=M), [-1, -2], True)),
    ("channel-shuffle", "native_channel_shuffle", (torch.empty(2, 6, 3, 3, device=M), 3)),
    ("relu", "relu", (torch.empty(2, 3, 4, device=M),)),
    ("add-broadcast", "add", (torch.empty(2, 3, 1, 1, device=M),
                              torch.empty(2, 3, 4, 4, device=M))),
    ("mul-channels-last", "mul", (torch.empty(2, 3, 4, 4, device=M).to(
        memory_format=torch.channels_last), torch.empty(2, 3, 1, 1, device=M))),
]


@pytest.mark.parametrize(("name", "args"), [c[1:] for c in SHORTCUT_CASES],
                         ids=[c[0] for c in SHORTCUT_CASES])
def test_meta_shortcuts_agree_with_pytorch(name: str, args: tuple) -> None:
    from cnncost.count.meta import FAST_META, elementwise_meta

    func = getattr(torch.ops.aten, name).default if name not in ("add", "mul", "mean") else (
        getattr(torch.ops.aten, name).Tensor if name != "mean" else torch.ops.aten.mean.dim)
    def on_cpu(a: object) -> object:
        if isinstance(a, torch.Tensor):
            return torch.zeros_like(a, device="cpu")
        if isinstance(a, list):
            return [on_cpu(v) for v in a]
        return a

    # the reference is the CPU kernel: it decides real memory (e.g. batch norm's saved
    # statistics are empty at inference on CPU, but sized C by the meta kernel)
    expected = func(*[on_cpu(a) for a in args])
    got = FAST_META[func](*args) if func in FAST_META else elementwise_meta(False, args, {})
    assert got is not None
    flat = [got] if isinstance(got, torch.Tensor) else list(got)
    want = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    assert [(t.shape, t.dtype, t.stride()) for t in flat] == [
        (t.shape, t.dtype, t.stride()) for t in want]


def test_meta_shortcuts_leave_bad_calls_to_pytorch() -> None:
    from cnncost.count.meta import FAST_META

    conv = torch.ops.aten.convolution.default
    x, w = torch.empty(1, 3, 8, 8, device=M), torch.empty(4, 2, 3, 3, device=M)
    assert FAST_META[conv](x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1) is None
    from cnncost.errors import ModelRunError

    with pytest.raises(ModelRunError, match="RuntimeError") as info:
        count_module(nn.Sequential(nn.Conv2d(2, 4, 3)), (3, 8, 8))  # 3 channels, not 2
    assert isinstance(info.value.__cause__, RuntimeError)  # PyTorch's own check fired


SPEC_TEXT = """
name: mix
input: [3, 16, 16]
layers:
  - conv: {out: 8, kernel: 3, stride: 2, padding: 1, bias: false}
  - bn
  - relu
  - residual:
      - conv: {out: 8, kernel: 3, padding: 1}
      - relu6
  - concat:
      a: [{conv: {out: 4, kernel: 1}}]
      b: [{max_pool: {kernel: 3, stride: 1, padding: 1}}]
  - avg_pool: {kernel: 2}
  - global_avg_pool
  - flatten
  - linear: {out: 5}
"""


def test_spec_meta_counts_equal_cpu_counts() -> None:
    spec = parse_spec(SPEC_TEXT, "mix.yaml")
    meta = count_spec(spec, batch=3).to_dict()
    cpu = count_spec(spec, batch=3, device="cpu").to_dict()
    assert meta == cpu
    assert meta["totals"]["macs"] > 0


def test_bad_device_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="device='cuda'"):
        count_module(nn.ReLU(), (3,), device="cuda")
    with pytest.raises(UsageError, match="convert it to float16"):
        count_module(nn.Linear(3, 2), (3,), dtype="float16", device="cpu")


def test_compiled_graph_module_counts_like_its_spec() -> None:
    spec = parse_spec(SPEC_TEXT, "mix.yaml")
    gm = build_module(spec)
    weight = gm.get_submodule("conv1").weight
    ptr = weight.data_ptr()
    via_module = count_module(gm, spec.input_shape, batch=2)
    via_spec = count_spec(spec, batch=2)
    # count_spec runs the spec's layers without compiling them; the compiled graph agrees
    assert [r.to_dict() for r in via_module.layers] == [r.to_dict() for r in via_spec.layers]
    assert via_module.totals == via_spec.totals
    assert gm.get_submodule("conv1").weight is weight and weight.data_ptr() == ptr


# --------------------------------------------------------------------------- nn.Module rows


def test_sequential_rows_by_child_name() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 2))
    table = count_module(model, (3, 8, 8))
    assert [r.name for r in table.layers] == ["0", "1", "2", "3"]
    # conv: 4 x 6 x 6 outputs, each 3 x 3 x 3 MACs; linear: 144 x 2
    assert table.row("0").macs == 4 * 6 * 6 * 27
    assert table.row("3").macs == 144 * 2
    assert table.row("0").output_shape == (1, 4, 6, 6)
    assert table.row("3").params == 144 * 2 + 2
    assert_rows_sum_to_totals(table)


def test_functional_residual_add_gets_the_container_row() -> None:
    table = count_module(Inverted(4), (4, 10, 10))
    own = table.row("(model)")
    assert own.kind == "Inverted (own ops)"
    # x + conv(x): one add per element of the (1, 4, 10, 10) output, a new tensor
    assert (own.macs, own.flops, own.output_bytes) == (0, 4 * 10 * 10, 4 * 10 * 10 * F32)
    assert [r.name for r in table.layers] == ["conv.0", "conv.1", "conv.2", "conv.3",
                                              "conv.4", "(model)"]
    assert_rows_sum_to_totals(table)


def test_inplace_add_in_a_container_adds_no_output_bytes() -> None:
    table = count_module(Block(4), (4, 6, 6))
    own = table.row("(model)")
    # ``out += identity`` runs in place: one FLOP per element, no new tensor
    assert (own.flops, own.output_bytes) == (4 * 6 * 6, 0)
    # the in-place ReLU module is called twice: one row, two calls, two outputs
    relu = table.row("relu")
    assert (relu.calls, relu.flops, relu.output_bytes) == (2, 2 * 4 * 6 * 6,
                                                           2 * 4 * 6 * 6 * F32)
    assert_rows_sum_to_totals(table)


def test_shared_submodule_is_one_row_under_its_first_name() -> None:
    model = Shared()
    table = count_module(model, (4, 6, 6))
    names = [r.name for r in table.layers]
    assert "alias" not in names and names.count("conv") == 1
    conv = table.row("conv")
    assert conv.calls == 2
    # two calls of a 3x3 4->4 conv at 6x6
    assert conv.macs == 2 * 4 * 6 * 6 * 4 * 9
    assert conv.params == 4 * 4 * 9 + 4
    # the tied weight is counted once, on the first module that owns it
    assert (table.row("a").params, table.row("b").params) == (16, 0)
    assert table.totals.params == sum(p.numel() for p in model.parameters()) == 148 + 16
    assert_rows_sum_to_totals(table)


def test_unused_submodule_keeps_its_parameters() -> None:
    model = Unused()
    table = count_module(model, (3, 8, 8))
    assert table.row("unused").kind == "Linear (not called)"
    assert (table.row("unused").params, table.row("unused").macs) == (110, 0)
    assert (table.row("unused_bn").params, table.row("unused_bn").buffers) == (8, 9)
    assert table.totals.params == sum(p.numel() for p in model.parameters())
    assert_rows_sum_to_totals(table)


def test_uncounted_ops_are_listed_and_strict_raises() -> None:
    table = count_module(Weird(), (3, 4, 4))
    assert table.uncounted == {"aten::cumsum": 1}
    assert table.row("(model)").uncounted == {"aten::cumsum": 1}
    assert table.row("conv").macs == 4 * 16 * 3
    with pytest.raises(UnsupportedOpError, match=r"aten::cumsum \(1x\)"):
        count_module(Weird(), (3, 4, 4), strict=True)


def test_real_weights_are_not_copied_or_touched() -> None:
    torch.manual_seed(0)
    model = TinyResNet()
    model.train()
    model.blocks[0].eval()  # a mixed train/eval state must come back as it was
    before = {k: (v.data_ptr(), v.device, v.clone(), v.requires_grad)
              for k, v in model.state_dict(keep_vars=True).items()}
    modes = [m.training for m in model.modules()]
    params = list(model.parameters())
    count_module(model, (3, 32, 32), batch=4)
    after = model.state_dict(keep_vars=True)
    assert set(after) == set(before)
    for k, (ptr, device, value, grad) in before.items():
        assert after[k].data_ptr() == ptr, k
        assert after[k].device == device == torch.device("cpu"), k
        assert torch.equal(after[k], value), k
        assert after[k].requires_grad == grad, k
    assert all(a is b for a, b in zip(model.parameters(), params, strict=True))
    assert [m.training for m in model.modules()] == modes
    assert not any(h for m in model.modules() for h in (m._forward_hooks,
                                                          m._forward_pre_hooks))


# --------------------------------------------------------------------------- peak memory


def test_peak_memory_of_a_sequential_chain_by_hand() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
    t = count_module(model, (3, 8, 8)).totals
    a = b = 8 * 8 * 8 * F32  # conv1 and relu outputs
    c = 4 * 8 * 8 * F32
    # live: a; a + b (relu runs while a is alive); b (a released); b + c
    assert t.peak_activation_bytes == max(a, a + b, b + c) == 4096
    params = (8 * 3 * 9 + 8) + (4 * 8 + 4)
    assert t.param_bytes == params * F32
    assert t.input_bytes == 3 * 8 * 8 * F32
    assert t.peak_memory_bytes == params * F32 + 3 * 8 * 8 * F32 + 4096
    assert t.activation_bytes == a + b + c


class SplitCat(nn.Module):
    """Splits the channels (as an LSTM splits its gates) and joins them again."""

    def __init__(self, split: str) -> None:
        super().__init__()
        self.split = split

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(getattr(x, self.split)(1, 1), 1)


def test_unsafe_split_moves_no_data() -> None:
    # unsafe_split returns views, though its schema does not say so: only cat's output
    # is new memory, as with split
    x = 3 * 4 * 4 * F32
    for split in ("split", "unsafe_split"):
        t = count_module(SplitCat(split), (3, 4, 4)).totals
        assert t.peak_activation_bytes == x, split


def test_peak_memory_of_a_residual_spec_by_hand() -> None:
    spec = parse_spec(textwrap.dedent("""
        name: chain
        input: [3, 8, 8]
        layers:
          - conv: {out: 8, kernel: 3, padding: 1}
          - relu
          - residual:
              - conv: {out: 8, kernel: 3, padding: 1}
              - relu
          - conv: {out: 4, kernel: 1}
    """), "chain.yaml")
    t = count_spec(spec, batch=2).totals
    x = 2 * 8 * 8 * 8 * F32  # every 8-channel map at batch 2
    # conv1: x; relu1: 2x -> x; conv2: 2x; relu2: 3x -> 2x (conv2 out dies);
    # add: 3x (shortcut, body, sum alive) -> x; conv3: x + x/2
    assert t.peak_activation_bytes == 3 * x
    assert t.activation_bytes == 5 * x + x // 2
    assert t.peak_memory_bytes == t.param_bytes + t.buffer_bytes + t.input_bytes + 3 * x


def test_buffers_and_bytes_of_batch_norm() -> None:
    t = count_module(nn.BatchNorm2d(6), (6, 2, 2)).totals
    # weight + bias trainable; running mean + var (6 each) + num_batches_tracked (int64)
    assert (t.params, t.buffers) == (12, 13)
    assert (t.param_bytes, t.buffer_bytes) == (12 * F32, 12 * F32 + 8)


def test_dtype_sets_bytes_per_element() -> None:
    model = nn.Conv2d(3, 4, 3, padding=1)
    t32 = count_module(model, (3, 8, 8)).totals
    t16 = count_module(model, (3, 8, 8), dtype="float16").totals
    assert t16.activation_bytes * 2 == t32.activation_bytes == 4 * 64 * F32
    assert t16.param_bytes * 2 == t32.param_bytes
    assert t16.macs == t32.macs


# --------------------------------------------------------------------------- policy


def test_policy_conv_linear_vs_all() -> None:
    model = nn.Sequential(nn.Conv2d(2, 3, 3, bias=True), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 5))
    macs = 3 * 4 * 4 * 2 * 9 + 48 * 5
    conv_linear = count_module(model, (2, 6, 6), policy="conv+linear")
    every = count_module(model, (2, 6, 6), policy="all")
    assert conv_linear.totals.macs == every.totals.macs == macs
    assert conv_linear.totals.flops == 2 * macs
    # all: + conv bias (48 outputs) + ReLU (48 comparisons) + linear bias (5)
    assert every.totals.flops == 2 * macs + 48 + 48 + 5
    assert conv_linear.policy == "conv+linear" and every.policy == "all"
    assert any("conv+linear" in c for c in conv_linear.conventions)


# --------------------------------------------------------------------------- properties


@st.composite
def chain_specs(draw: st.DrawFn) -> tuple[str, int, int, list[tuple[int, int, int, int, int]]]:
    """A valid conv/pool/relu chain as YAML text, with each conv's (C_in, C_out, k, H_out,
    W_out) worked out independently of cnncost."""
    c = draw(st.integers(1, 4))
    h = draw(st.integers(8, 24))
    w = draw(st.integers(8, 24))
    lines = ["name: prop", f"input: [{c}, {h}, {w}]", "layers:"]
    convs = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["conv", "conv", "max_pool", "avg_pool", "relu"]))
        if kind == "relu":
            lines.append("  - relu")
            continue
        k = draw(st.sampled_from([1, 2, 3, 5]))
        s = draw(st.integers(1, 2))
        p = draw(st.integers(0, k // 2))
        if k > min(h, w) + 2 * p:
            continue
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if kind == "conv":
            out = draw(st.integers(1, 8))
            lines.append(f"  - conv: {{out: {out}, kernel: {k}, stride: {s}, padding: {p}}}")
            convs.append((c, out, k, ho, wo))
            c = out
        else:
            lines.append(f"  - {kind}: {{kernel: {k}, stride: {s}, padding: {p}}}")
        h, w = ho, wo
    if len(lines) == 3:
        lines.append("  - relu")
    return "\n".join(lines) + "\n", h, w, convs


PROPS = settings(max_examples=25, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(chain_specs(), st.integers(1, 5))
def test_property_rows_sum_and_conv_rows_match_closed_form(case, batch) -> None:
    text, _, _, convs = case
    table = count_spec(parse_spec(text, "prop.yaml"), batch=batch)
    assert_rows_sum_to_totals(table)
    conv_rows = [r for r in table.layers if r.kind == "conv"]
    assert [r.macs for r in conv_rows] == [batch * co * ho * wo * ci * k * k
                                           for ci, co, k, ho, wo in convs]
    assert [r.params for r in conv_rows] == [co * ci * k * k + co for ci, co, k, _, _ in convs]
    assert table.totals.macs == sum(r.macs for r in conv_rows)


@PROPS
@given(chain_specs(), st.integers(2, 6))
def test_property_costs_scale_linearly_with_batch(case, batch) -> None:
    spec = parse_spec(case[0], "prop.yaml")
    one, many = count_spec(spec, batch=1).totals, count_spec(spec, batch=batch).totals
    assert many.macs == batch * one.macs
    assert many.flops == batch * one.flops
    assert many.activation_bytes == batch * one.activation_bytes
    assert many.peak_activation_bytes == batch * one.peak_activation_bytes


@PROPS
@given(chain_specs(), st.integers(2, 6), st.integers(0, 16))
def test_property_params_independent_of_batch_and_resolution(case, batch, grow) -> None:
    text = case[0]
    base = count_spec(parse_spec(text, "prop.yaml")).totals
    c = int(text.split("input: [")[1].split(",")[0])
    h, w = (int(v) for v in text.split("input: [")[1].split("]")[0].split(",")[1:])
    bigger = count_spec(parse_spec(text, "prop.yaml", input_shape=(c, h + grow, w + grow)),
                        batch=batch).totals
    assert (bigger.params, bigger.buffers, bigger.param_bytes) == (
        base.params, base.buffers, base.param_bytes)


def test_summed_fields_are_the_ones_checked() -> None:
    # guards assert_rows_sum_to_totals against a new summed field going unchecked
    assert set(SUMMED) == {"params", "buffers", "macs", "flops", "output_bytes"}


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_module_failing_on_its_input_names_the_failing_layer(device: str) -> None:
    from cnncost.errors import ModelRunError

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    # 1 input channel where the conv wants 3: the conv (module "0") fails.
    with pytest.raises(ModelRunError, match=r"^net: .*1x1x8x8 in 0 \(Conv2d\)"):
        count_module(model, (1, 8, 8), name="net", device=device)
    # 9x9 gives 7x7x8 = 392 features where the linear layer wants 288: module "2" fails.
    with pytest.raises(ModelRunError, match=r"in 2 \(Linear\)"):
        count_module(model, (3, 9, 9), name="net", device=device)
