"""The lectures' design guidelines as rules: one registered function each (see registry.py).

Every rule proposes a rewritten spec document; the engine compiles and counts it. Rules that
save cost (``Goal.COST``) are kept only when the counted saving of the rewritten layers
reaches the rule's ``min_layer_saving`` and the model's saving reaches ``--min-saving``;
rules that fix a design problem (``Goal.QUALITY``) are kept whenever their threshold is
crossed, with what the fix costs. A node used several times (in a block or a repeat) is
rewritten only when the rule applies to every use, because rewriting it changes them all.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from cnncost.advise.registry import (
    ERDEM,
    KHAN,
    KI,
    NG,
    Context,
    Goal,
    Proposal,
    advice_rule,
    c_in,
    c_out,
    dims,
    kernel_area,
    same_all,
    scaled,
    shape_text,
    square_kernel,
    standard,
    uniform_padding,
    widths,
)
from cnncost.advise.rewrite import (
    NORMS,
    Node,
    companions,
    get,
    layer,
    portable,
    replaced,
    seq_item,
    unique_name,
)
from cnncost.advise.trunk import articulation, collapse_point
from cnncost.errors import CnnCostError
from cnncost.spec import LayerSpec

_PASS_THROUGH = (*NORMS, "relu", "relu6", "silu", "hardswish", "gelu", "leaky_relu", "tanh",
                 "sigmoid", "hardsigmoid", "dropout", "identity")


def _fields(node: Node, drop: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in node.args.items() if k not in drop}


def _first(node: Node) -> LayerSpec:
    return node.uses[0]


def _kernel_text(u: LayerSpec) -> str:
    k = u.params.get("kernel")
    return "x".join(map(str, k)) if isinstance(k, list) else "x".join([str(k)] * dims(u))


def _conv_text(u: LayerSpec) -> str:
    extra = f", stride {u.params['stride']}" if u.params.get("stride", 1) != 1 else ""
    return (f"{_kernel_text(u)} conv {c_in(u)} -> {c_out(u)} on "
            f"{shape_text(u.out_shape[1:])}{extra}")


def _rewritten(ctx: Context, node: Node, item: Any, *, found: str, rewrite: str, note: str,
               expected: str = "") -> Proposal:
    """The proposal replacing every use of the conv ``node`` by ``item`` in the document."""
    return Proposal(layers=tuple(v.path for v in node.uses), source=node.source, found=found,
                    rewrite=rewrite, note=note, doc=replaced(ctx.doc, node.keys, [item]),
                    shared=node.shared(), expected=expected)


def _found(node: Node) -> str:
    """The conv (or the range of its uses) in words."""
    first, last = node.uses[0], node.uses[-1]
    if len(node.uses) == 1:
        return _conv_text(first)
    io = [f"{c_in(u)} -> {c_out(u)} on {shape_text(u.out_shape[1:])}" for u in (first, last)]
    return f"{len(node.uses)} uses of a {_kernel_text(first)} conv: {io[0]} ... {io[1]}"


# --------------------------------------------------------------------------- small filters


@advice_rule(
    "small-filter-chain",
    guideline="Prefer small filter chains (two 3x3 = one 5x5 receptive field, 18C^2 < 25C^2)",
    lecture=f'{ERDEM}, "Design Guidelines: Guideline 2: Prefer small filter chains" and '
            '"VGG: Deeper Networks, Regular Design"',
    min_layer_saving=0.1,
    example="input: [64, 32, 32]\nlayers: [{conv: {out: 64, kernel: 5, padding: 2}}, relu]",
    near_miss="input: [64, 32, 32]\nlayers: [{conv: {out: 64, kernel: 3, padding: 1}}, relu]",
)
def small_filter_chain(ctx: Context) -> Iterator[Proposal]:
    """A K x K conv (K odd, at least 5) becomes (K - 1) / 2 stacked 3x3 convs with the same
    receptive field and output size: params 9n C_in C_out-ish instead of K^2 C_in C_out. The
    stride goes on the last conv, the padding is spread over the chain, the norm/activation
    that follows the conv is repeated between the 3x3s (the lecture: "3x3 filters + ReLU").

    Threshold: K >= 5, one group, no dilation, and the rewritten layers' params or MACs fall
    by at least 10% (counted).
    """
    for node in ctx.convs():
        k = square_kernel(node.uses)
        strides = {same_all(u.params.get("stride", 1)) for u in node.uses}
        pad = uniform_padding(node.uses)
        if (k is None or k < 5 or k % 2 == 0 or len(strides) != 1 or None in strides
                or pad is None or not all(standard(u) for u in node.uses)):
            continue
        stride, n = strides.pop(), (k - 1) // 2
        raw_out = node.args.get("out")
        first_out, mid_text = widths(node.uses, raw_out)
        last_out = portable(raw_out, "out", node.uses) if first_out == "in" else "in"
        if last_out is None:
            continue
        base = _fields(node, ("out", "kernel", "stride", "padding", "dilation", "groups"))
        pads: list[Any] = [pad] * n if isinstance(pad, str) else [
            1 if j < pad else 0 for j in range(n)]
        if isinstance(pad, int) and pad > n:
            pads[-1] += pad - n
        between = companions(ctx.doc, node)
        chain: list[Any] = []
        for j in range(n):
            out = first_out if j == 0 else ("in" if j < n - 1 else last_out)
            fields = {"out": out, "kernel": 3, "padding": pads[j], **base}
            if j == n - 1 and stride != 1:
                fields["stride"] = stride
            if j:
                chain += between
            chain.append(layer("conv", fields, f"conv3x3_{j + 1}"))
        item = seq_item(node, chain)
        if item is None:
            continue
        same = all(c_in(v) == c_out(v) for v in node.uses)
        acts = ", ".join(str(c if isinstance(c, str) else next(iter(c))) for c in between)
        yield _rewritten(
            ctx, node, item,
            found=f"{_found(node)}: {k}x{k} = {k * k} weights per input-output channel pair",
            rewrite=f"{n} stacked 3x3 convs (width {mid_text} until the last), "
                    f"{'stride ' + str(stride) + ' on the last, ' if stride != 1 else ''}"
                    f"the same {k}x{k} receptive field and output size",
            note=f"a different function: the chain composes {n} 3x3 filters"
                 f"{' with ' + acts + ' between them' if acts else ''}, which is more "
                 f"nonlinear but cannot express every {k}x{k} filter; retrain",
            expected=f"params {k * k}C^2 -> {9 * n}C^2" if same else "")


# --------------------------------------------------------------------------- separable


@advice_rule(
    "depthwise-separable",
    guideline="Depthwise separable convolution: cost ratio 1/n_c' + 1/f^2",
    lecture=f'{NG}, "Depthwise Separable Convolution" and "Cost Summary"; {ERDEM}, '
            '"MobileNets: Tiny Networks (For Mobile Devices)"',
    min_layer_saving=0.5,
    example="input: [64, 32, 32]\nlayers: [{conv: {out: 64, kernel: 3, padding: 1}}, bn, relu]",
    near_miss="input: [2, 32, 32]\nlayers: [{conv: {out: 2, kernel: 3, padding: 1}}]",
)
def depthwise_separable(ctx: Context) -> Iterator[Proposal]:
    """A standard K x K conv C_in -> C_out becomes a depthwise K x K conv (groups = C_in) and
    a pointwise 1x1 conv to C_out, with the conv's following norm/activation between them
    (MobileNet's block). MACs ratio 1/C_out + 1/K^2 (the lecture's 1/n_c' + 1/f^2).

    Threshold: one group, a kernel larger than 1x1, more than one input channel, and the
    rewritten layers' MACs fall by at least half (counted).
    """
    for node in ctx.convs():
        if not all(standard(u) and kernel_area(u) > 1 and c_in(u) > 1 for u in node.uses):
            continue
        depthwise = {**_fields(node, ("out", "groups")), "out": "in", "groups": "in"}
        pointwise = {**_fields(node, ("out", "kernel", "stride", "padding", "dilation",
                                      "groups")), "out": node.args.get("out"), "kernel": 1}
        between = companions(ctx.doc, node)
        item = seq_item(node, [layer("conv", depthwise, "depthwise"), *between,
                               layer("conv", pointwise, "pointwise")])
        if item is None:
            continue
        u = _first(node)
        k = square_kernel(node.uses)
        outs = {c_out(v) for v in node.uses}
        expected = ""
        if k is not None and len(outs) == 1:
            n_c = outs.pop()
            f2 = k ** dims(u)
            expected = (f"MACs ratio 1/n_c' + 1/f^2 = 1/{n_c} + 1/{f2} = "
                        f"{1 / n_c + 1 / f2:.4g}")
        yield _rewritten(
            ctx, node, item,
            found=_found(node),
            rewrite=f"depthwise conv (groups = C_in) then a pointwise 1x1 conv to C_out"
                    f"{' (' + ', '.join(_kind_names(between)) + ' between)' if between else ''}",
            note="a different function with fewer parameters, not an equivalent rewrite: each "
                 "input channel is filtered alone, then a 1x1 conv mixes the channels; retrain",
            expected=expected)


def _kind_names(items: list[Any]) -> list[str]:
    return [str(i if isinstance(i, str) else next(iter(i))) for i in items]


@advice_rule(
    "spatially-separable",
    guideline="Low-rank decompositions: a K x K conv as K x 1 then 1 x K (ratio 2/K)",
    lecture=f'{KI}, "Separable convolution: spatially separable"; {ERDEM}, "Design '
            'Guidelines: Guideline 5: Low-rank decompositions"',
    min_layer_saving=0.25,
    example="input: [32, 32, 32]\nlayers: [{conv: {out: 32, kernel: 3, padding: same}}]",
    near_miss="input: [32, 32, 32]\nlayers: [{conv: {out: 32, kernel: [3, 1], padding: same}}]",
)
def spatially_separable(ctx: Context) -> Iterator[Proposal]:
    """A square K x K 2-D conv becomes a K x 1 conv then a 1 x K conv (each with its half of
    the stride and padding): multiplications 2/K of the K x K conv when C_in = C_out.

    Threshold: a 2-D conv, K >= 3, one group, no dilation, and the rewritten layers' MACs
    fall by at least a quarter (counted).
    """
    for node in ctx.convs():
        k = square_kernel(node.uses)
        strides = {same_all(u.params.get("stride", 1)) for u in node.uses}
        pad = uniform_padding(node.uses)
        if (k is None or k < 3 or len(strides) != 1 or None in strides or pad is None
                or not all(standard(u) and dims(u) == 2 for u in node.uses)):
            continue
        stride = strides.pop()
        raw_out = node.args.get("out")
        first_out, mid_text = widths(node.uses, raw_out)
        last_out = portable(raw_out, "out", node.uses) if first_out == "in" else "in"
        if last_out is None:
            continue
        base = _fields(node, ("out", "kernel", "stride", "padding", "dilation", "groups"))
        one = {"out": first_out, "kernel": [k, 1], **base}
        two = {"out": last_out, "kernel": [1, k], **base}
        if isinstance(pad, str):
            one["padding"] = two["padding"] = pad
        else:
            one["padding"], two["padding"] = [pad, 0], [0, pad]
        if stride != 1:
            one["stride"], two["stride"] = [stride, 1], [1, stride]
        item = seq_item(node, [layer("conv", one, "vertical"), layer("conv", two,
                                                                      "horizontal")])
        if item is None:
            continue
        same = all(c_in(v) == c_out(v) for v in node.uses)
        yield _rewritten(
            ctx, node, item,
            found=_found(node),
            rewrite=f"a {k}x1 conv (width {mid_text}) then a 1x{k} conv",
            note="exact only for kernels of rank 1 (\"not all kernels can be divided into two, "
                 "smaller kernels\"): a different, rank-limited function; retrain",
            expected=f"MACs ratio 2/K = 2/{k}" if same else "")


# --------------------------------------------------------------------------- channels


@advice_rule(
    "bottleneck-1x1",
    guideline="A 1x1 bottleneck before an expensive conv on many input channels",
    lecture=f'{NG}, "The problem of computational cost" and "Using 1x1 convolution"; {ERDEM}, '
            '"GoogLeNet: Inception module"',
    min_layer_saving=0.5,
    example="input: [192, 28, 28]\nlayers: [{conv: {out: 32, kernel: 5, padding: same}}]",
    near_miss="input: [60, 28, 28]\nlayers: [{conv: {out: 32, kernel: 5, padding: same}}]",
)
def bottleneck_1x1(ctx: Context) -> Iterator[Proposal]:
    """A 1x1 conv to C_out / 2 channels before a K x K conv on C_in >= 2 C_out channels (the
    lecture's 28x28x192 -> 16 -> 5x5 to 32: "about a factor of 10"). MACs ratio
    b / (K^2 C_out) + b / C_in for b = C_out / 2 at stride 1.

    Threshold: C_in >= 2 C_out, a kernel larger than 1x1, one group, no 1x1 conv feeding it
    already, and the rewritten layers' MACs fall by at least half (counted).
    """
    for node in ctx.convs():
        if not all(standard(u) and kernel_area(u) > 1 and c_in(u) >= 2 * c_out(u) >= 4
                   for u in node.uses):
            continue
        if any(_fed_by_1x1(ctx, u) for u in node.uses):
            continue
        raw_out = node.args.get("out")
        last_out = portable(raw_out, "out", node.uses)
        if last_out is None:
            continue
        bias = {"bias": node.args["bias"]} if "bias" in node.args else {}
        reduce = {"out": scaled(raw_out, "//", 2), "kernel": 1, **bias}
        item = seq_item(node, [layer("conv", reduce, "reduce"), *companions(ctx.doc, node),
                               layer("conv", {**node.args, "out": last_out}, "conv")])
        if item is None:
            continue
        u = _first(node)
        b, ka = c_out(u) // 2, kernel_area(u)
        expected = ""
        if len({(c_in(v), c_out(v)) for v in node.uses}) == 1 and u.params.get("stride", 1) == 1:
            expected = (f"MACs ratio b/(K^2 C_out) + b/C_in = {b}/({ka}x{c_out(u)}) + "
                        f"{b}/{c_in(u)} = 1/{1 / (b / (ka * c_out(u)) + b / c_in(u)):.3g}")
        yield _rewritten(
            ctx, node, item,
            found=f"{_found(node)}: at least twice as many input channels as outputs",
            rewrite=f"a 1x1 conv to C_out / 2 channels ({b} in {u.path}), then the "
                    f"{_kernel_text(u)} conv",
            note="a different, rank-limited function: the expensive conv sees a 1x1 "
                 "projection of the input (\"shrinks the representation size before increasing "
                 "it again\"); retrain",
            expected=expected)


def _fed_by_1x1(ctx: Context, u: LayerSpec) -> bool:
    src = ctx.producer(u, _PASS_THROUGH)
    return src is not None and src.kind == "conv" and kernel_area(src) == 1


@advice_rule(
    "grouped-conv",
    guideline="Less computation with filter groups (complexity / G)",
    lecture=f'{ERDEM}, "Design Guidelines: Guideline 4: Less computations with filter groups" '
            'and "Grouped Convolution vs Standard Convolution"',
    min_layer_saving=0.5,
    example="input: [64, 32, 32]\nlayers: [{conv: {out: 64, kernel: 3, padding: 1}}]",
    near_miss="input: [32, 32, 32]\nlayers: [{conv: {out: 64, kernel: 3, padding: 1}}]",
)
def grouped_conv(ctx: Context) -> Iterator[Proposal]:
    """A standard K x K conv on many channels gets G = 4 groups: each group maps C_in / 4
    channels to C_out / 4, so params and MACs are 1/G. Uses with too few channels keep one
    group (the rewrite says ``groups: 4 if ... else 1``).

    Threshold: a kernel larger than 1x1, one group, at least 16 input channels per group
    (C_in >= 64) with C_in and C_out divisible by 4 in at least one use, and the rewritten
    layers' MACs fall by at least half (counted).
    """
    g = 4
    for node in ctx.convs():
        if not all(standard(u) and kernel_area(u) > 1 for u in node.uses):
            continue
        fits = [u for u in node.uses if c_in(u) >= 16 * g and c_in(u) % g == 0
                and c_out(u) % g == 0]
        if not fits or not isinstance(node.item, dict):
            continue
        raw_out = node.args.get("out")
        groups: Any = g if len(fits) == len(node.uses) else (
            f"{g} if in >= {16 * g} and in % {g} == 0 and ({raw_out}) % {g} == 0 else 1")
        item = {**node.item, "conv": {**node.args, "groups": groups}}
        u = fits[0]
        yield _rewritten(
            ctx, node, item,
            found=f"{_found(node)}, one group"
                  + (f" ({len(fits)} of {len(node.uses)} uses have the channels for "
                     f"{g} groups)" if len(fits) < len(node.uses) else ""),
            rewrite=f"groups: {g} ({c_in(u) // g} -> {c_out(u) // g} channels per group)",
            note=f"a different function: each group sees only C_in / {g} of the input channels "
                 "(\"make sure to mix the information\": a 1x1 conv or a channel shuffle after "
                 "it, as ResNeXt and ShuffleNet do); retrain",
            expected=f"complexity (C x K) / G: 1/{g}")


@advice_rule(
    "channel-growth",
    guideline="Keep the number of channels at bay (complexity grows with C x K)",
    lecture=f'{ERDEM}, "Design Guidelines: Guideline 3: Keep the number of channels at bay" '
            'and "VGG: Deeper Networks, Regular Design" ("After pool, double #channels")',
    example="input: [3, 64, 64]\nlayers:\n  - {conv: {out: 32, kernel: 3, padding: 1}}\n"
            "  - {conv: {out: 256, kernel: 3, padding: 1}}\n  - {conv: {out: 64, kernel: 3}}",
    near_miss="input: [3, 64, 64]\nlayers:\n  - {conv: {out: 32, kernel: 3, padding: 1}}\n"
              "  - {conv: {out: 128, kernel: 3, padding: 1}}\n  - {conv: {out: 64, kernel: 3}}",
)
def channel_growth(ctx: Context) -> Iterator[Proposal]:
    """Channels growing faster than the resolution shrinks: the data volume H x W x C of a
    trunk unit's output is more than 4 times its input's (VGG doubles C when a pool halves H
    and W: the volume halves). The conv that widens it is narrowed until the volume grows
    at most 4x.

    Threshold: the volume grows more than 4x across one trunk unit (a block, or one layer
    outside blocks), not counting the first unit (it reads the image's few channels); the
    conv must be used once.
    """
    for unit in ctx.units[1:]:
        growth = unit.out_volume / unit.in_volume
        wider = [c for c in unit.convs() if c_out(c) > c_in(c)]
        if growth <= 4 or not wider:
            continue
        conv = wider[-1]
        node = ctx.node_of.get(conv.path)
        if node is None or len(node.uses) != 1 or not isinstance(node.item, dict):
            continue
        factor = math.ceil(growth / 4)
        raw_out = node.args.get("out")
        item = {**node.item, "conv": {**node.args, "out": scaled(raw_out, "//", factor)}}
        yield Proposal(
            layers=(conv.path,), source=node.source,
            found=f"{unit.name}: {shape_text(unit.in_shape)} -> {shape_text(unit.out_shape)}, "
                  f"the data volume grows {growth:.3g}x",
            rewrite=f"{conv.path} to {max(1, c_out(conv) // factor)} channels "
                    f"(out / {factor})",
            note="a narrower network: fewer features at this stage, a different function; "
                 "retrain",
            doc=replaced(ctx.doc, node.keys, [item]))


# --------------------------------------------------------------------------- data volume


@advice_rule(
    "tight-bottleneck",
    guideline="Avoid tight bottlenecks: decrease the data volume H x W x C slowly",
    lecture=f'{ERDEM}, "Design Guidelines: Guideline 1: Avoid tight bottlenecks"',
    goal=Goal.QUALITY,
    example="input: [3, 64, 64]\nlayers:\n  - {conv: {out: 64, kernel: 3, padding: 1}}\n"
            "  - {conv: {out: 16, kernel: 3, stride: 2, padding: 1}}\n"
            "  - {conv: {out: 8, kernel: 3}}",
    near_miss="input: [3, 64, 64]\nlayers:\n  - {conv: {out: 64, kernel: 3, padding: 1}}\n"
              "  - {conv: {out: 32, kernel: 3, stride: 2, padding: 1}}\n"
              "  - {conv: {out: 8, kernel: 3}}",
)
def tight_bottleneck(ctx: Context) -> Iterator[Proposal]:
    """The data volume H x W x C falls by more than 8x across one trunk unit (VGG's and
    ResNet's downsampling steps lose 4x or 2x, DenseNet's transitions 8x): the unit's last
    conv is widened until the volume falls at most 4x. Costs more; it keeps information.

    Threshold: the volume falls more than 8x across one trunk unit before the head (not the
    unit that produces the network's output); the conv must be used once.
    """
    for unit in ctx.units:
        drop = unit.in_volume / unit.out_volume
        if drop <= 8 or not unit.convs() or unit.layers[-1].path == ctx.spec.output:
            continue
        conv = unit.convs()[-1]
        node = ctx.node_of.get(conv.path)
        if node is None or len(node.uses) != 1 or not isinstance(node.item, dict):
            continue
        factor = math.ceil(drop / 4)
        item = {**node.item, "conv": {**node.args, "out": scaled(node.args.get("out"), "*",
                                                                 factor)}}
        yield Proposal(
            layers=(conv.path,), source=node.source,
            found=f"{unit.name}: {shape_text(unit.in_shape)} -> {shape_text(unit.out_shape)}, "
                  f"the data volume falls {drop:.3g}x in one step",
            rewrite=f"{conv.path} to {c_out(conv) * factor} channels (out x {factor})",
            note="a wider, costlier network that keeps more information through the step; "
                 "retrain",
            doc=replaced(ctx.doc, node.keys, [item]))


@advice_rule(
    "receptive-field",
    guideline="The receptive field must be large enough (objects larger than it go unseen)",
    lecture=f'{ERDEM}, "Receptive Field: Must be large enough" and "Design Guidelines: '
            'Guideline 6: Dilated Convolutions"',
    goal=Goal.QUALITY,
    example="input: [3, 64, 64]\nlayers:\n  - {conv: {out: 16, kernel: 3, padding: 1}}\n"
            "  - {conv: {out: 16, kernel: 3, padding: 1}}\n  - global_avg_pool\n  - flatten\n"
            "  - {linear: {out: 10}}",
    near_miss="input: [3, 8, 8]\nlayers:\n  - {conv: {out: 16, kernel: 3, padding: 1}}\n"
              "  - {conv: {out: 16, kernel: 3, stride: 2, padding: 1}}\n"
              "  - {conv: {out: 16, kernel: 3, padding: 1}}\n  - global_avg_pool\n"
              "  - flatten\n  - {linear: {out: 10}}",
)
def receptive_field(ctx: Context) -> Iterator[Proposal]:
    """In a network that pools globally, the features being pooled see less of the image
    than the input holds: a 2x2/2 max pool (another downsampling stage) is added after the
    latest trunk layer where it makes their receptive field cover the input.

    Threshold: the receptive field at the global pooling's input is smaller than the input's
    largest spatial size.
    """
    at = collapse_point(ctx.spec)
    if at is None:
        return
    feed = ctx.layer.get(ctx.spec.layers[at].inputs[0])
    size = max(ctx.spec.input_shape[1:])
    if feed is None or feed.receptive_field >= size:
        return
    best: tuple[int, LayerSpec, Node, Any, str] | None = None
    trunk = set(articulation(ctx.spec))
    for lay in reversed([ctx.spec.layers[i] for i in range(at) if i in trunk]):
        node = ctx.node_of.get(lay.path)
        if node is None or node.in_block or min(lay.out_shape[1:]) < 2:
            continue
        prefix = lay.path.rsplit(".", 1)[0] + "." if "." in lay.path else ""
        pool_name = unique_name(ctx.spec, prefix, "pool_rf")
        pool = layer("max_pool", {"kernel": 2, "stride": 2}, pool_name)
        doc = replaced(ctx.doc, node.keys, [get(ctx.doc, node.keys), pool])
        try:
            new = ctx.compile(doc)
        except CnnCostError:
            continue
        rf = {x.path: x.receptive_field for x in new.layers}.get(feed.path, 0)
        if best is None or rf > best[0]:
            best = (rf, lay, node, doc, prefix + pool_name)
        if rf >= size:
            break  # the latest place that is enough: the least resolution lost
    if best is None or best[0] <= feed.receptive_field:
        return
    rf, lay, node, doc, pool_path = best
    short = "" if rf >= size else f", still smaller than {size}: add more stages or dilation"
    yield Proposal(
        layers=(lay.path,), source=node.source,
        found=f"receptive field {feed.receptive_field} at {feed.path} (pooled by "
              f"{ctx.spec.layers[at].path}) < input {size}",
        rewrite=f"a 2x2/2 max pool after {lay.path}: receptive field "
                f"{feed.receptive_field} -> {rf}{short}",
        note="everything after the pool runs at half the resolution (cheaper, coarser): a "
             "different function; a dilated conv grows the receptive field without losing "
             "resolution; retrain",
        doc=doc, anchors=(lay.path, pool_path))  # the layer and its new pool


# --------------------------------------------------------------------------- the head


@advice_rule(
    "fc-global-pool",
    guideline="Fully connected layers holding most of the parameters: pool globally first",
    lecture=f'{ERDEM}, "GoogLeNet" ("Only 5 million params! (Removes FC layers '
            f'completely)"); {KHAN}, "The problem with fully connected layers"',
    min_layer_saving=0.0,
    example="input: [64, 8, 8]\nlayers: [flatten, {linear: {out: 256}}, relu, "
            "{linear: {out: 10}}]",
    near_miss="input: [64, 8, 8]\nlayers: [global_avg_pool, flatten, {linear: {out: 256}}, "
              "relu, {linear: {out: 10}}]",
)
def fc_global_pool(ctx: Context) -> Iterator[Proposal]:
    """The linear layers hold most of the parameters and the first one reads a flattened
    C x H x W map: global average pooling before it (as GoogLeNet) feeds it C values
    instead of C x H x W, dividing its weights by H x W. An average pool right before the
    flatten is replaced; otherwise a global pool is added.

    Threshold: linear layers hold more than half of all parameters, and the first linear
    layer reads a flattened map larger than 1x1.
    """
    linears = [r for r in ctx.table.layers if r.kind == "linear"]
    total = ctx.table.totals.params
    fc = sum(r.params for r in linears)
    if not linears or total == 0 or fc * 2 <= total:
        return
    first = ctx.layer.get(linears[0].name)
    flat = ctx.producer(first, ("dropout", "identity")) if first else None
    if first is None or flat is None or flat.kind != "flatten":
        return
    shape = flat.in_shapes[0]
    if len(shape) < 2 or math.prod(shape[1:]) == 1:
        return
    src = ctx.layer.get(flat.inputs[0])
    node = ctx.node_of.get(src.path) if src is not None else None
    gap: dict[str, Any]
    if src is not None and node is not None and len(node.uses) == 1 and src.kind in (
            "adaptive_avg_pool", "avg_pool") and isinstance(node.item, dict):
        gap = {"global_avg_pool": None, "name": node.name()}
        doc, what = replaced(ctx.doc, node.keys, [gap]), f"{src.path} becomes global"
    else:
        fnode = ctx.node_of.get(flat.path)
        if fnode is None or len(fnode.uses) != 1:
            return
        prefix = flat.path.rsplit(".", 1)[0] + "." if "." in flat.path else ""
        gap = layer("global_avg_pool", {}, unique_name(ctx.spec, prefix, "gap"))
        gap["global_avg_pool"] = None
        doc = replaced(ctx.doc, fnode.keys, [gap, get(ctx.doc, fnode.keys)])
        what = f"a global average pool before {flat.path}"
    c, hw = shape[0], math.prod(shape[1:])
    yield Proposal(
        layers=(first.path,), source=ctx.node_of[first.path].source,
        found=f"linear layers hold {fc / total:.0%} of the parameters ({fc:,} of {total:,}); "
              f"{first.path} reads a flattened {shape_text(shape)} map ({c * hw:,} values)",
        rewrite=f"{what}: {first.path} reads {c:,} channel averages",
        note="the classifier sees channel averages instead of positions, a different "
             "function (GoogLeNet's head); the hidden linear layers stay (dropping them "
             "saves more); retrain",
        doc=doc)
