"""Direct lowerings: the commonest layer kinds' programs written out, without the recorder.

A layer the analytic engine counts for the first time is lowered (cnncost.count.lowering)
to its ATen calls, and each call goes through the formula table; for a spec counted once in
a process that is most of the count. The kinds here (conv, batch norm, the activations,
identity, dropout, flatten, linear, global average pooling, add, mul, concat) make the same
program, call for call, as their generic lowering followed by the formulas: the same
weights, MACs, FLOPs, factors and memory events (tests/test_direct.py holds each to the
generic path on drawn shapes). A direct lowering returns None for a form it does not write
out (padding="same" with an odd total, adds that broadcast, a linear layer on more than two
dims, 1-D pooling), and the generic path lowers it.

Each takes the bytes per element, the input shapes (with the batch) and the layer's fields
(defaults filled in), and returns :data:`Parts`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from cnncost.count.formulas import PER_ELEMENT
from cnncost.count.lowering import _ACTIVATIONS, INT64
from cnncost.shapes import broadcast, conv_out, spatial_ones
from cnncost.table import Factors

Shape = tuple[int, ...]
# (output shape, output bytes, params, buffers, param bytes, buffer bytes, values, MACs,
#  other FLOPs, factors, uncounted ops, memory events (None: one new tensor, the result; a
#  function: made from the new bytes when read), new bytes (see analytic._new_bytes; None:
#  found from the events), result value): the arguments of analytic.Program after the kind
#  and the input shapes, in one flat tuple.
Parts = tuple[Shape, int, int, int, int, int, int, int, int, tuple[Factors, ...],
              dict[str, int], tuple[Any, ...] | Callable[[int], tuple[Any, ...]] | None,
              int | None, int]
_VIEW = (((), ((1, 0),), ()),)  # the events of one call whose result views the input
_tuple = tuple.__new__  # _tuple(Factors, (...)): Factors(...) without its __new__'s call
Direct = Callable[[int, tuple[Shape, ...], Mapping[str, Any]], Parts | None]
DIRECT: dict[str, Direct] = {}


def _ints(value: Any, nd: int) -> list[int] | None:
    if type(value) is int:
        return [value] * nd
    if type(value) is list and len(value) == nd and all(type(v) is int for v in value):
        return value
    return None


def _conv(elem: int, xs: tuple[Shape, ...], f: Mapping[str, Any]) -> Parts | None:
    """nn.ConvNd: one aten.convolution (see lowering._conv). Its commonest form here: 2-D,
    each of kernel, stride, padding, dilation one int; the others in _conv_nd."""
    x = xs[0]
    k, s, p, d, groups = f["kernel"], f["stride"], f["padding"], f["dilation"], f["groups"]
    if len(x) != 4 or not (type(k) is type(s) is type(p) is type(d) is type(groups) is int):
        return _conv_nd(elem, x, f)
    c_out, bias = f["out"], f["bias"]
    n, per_in = x[0], x[1] // groups
    h, w = conv_out(x[2], k, s, p, d), conv_out(x[3], k, s, p, d)
    volume = n * c_out * h * w
    params = c_out * per_in * k * k + (c_out if bias else 0)
    factors = _tuple(Factors, ((h, w, c_out), (k, k, per_in), n if n != 1 else None,
                               (k, k, per_in, c_out)))
    nbytes = volume * elem
    return ((n, c_out, h, w), nbytes, params, 0, params * elem, 0, 2, volume * k * k * per_in,
            volume if bias else 0, (factors,), {}, None, nbytes, 1)


def _conv_nd(elem: int, x: Shape, f: Mapping[str, Any]) -> Parts | None:
    """_conv's other forms: any dims, lists of ints, padding "valid" or "same"."""
    nd = len(x) - 2
    groups, padding = f["groups"], f["padding"]
    k, s, d = _ints(f["kernel"], nd), _ints(f["stride"], nd), _ints(f["dilation"], nd)
    if k is None or s is None or d is None or type(groups) is not int:
        return None
    if padding == "same":
        if any(dd * (kk - 1) % 2 for kk, dd in zip(k, d, strict=True)):
            return None  # padded on the right first: the generic lowering
        p: list[int] | None = [dd * (kk - 1) // 2 for kk, dd in zip(k, d, strict=True)]
    else:
        p = [0] * nd if padding == "valid" else _ints(padding, nd)
    if p is None:
        return None
    c_out, per_in = f["out"], x[1] // groups
    out = (x[0], c_out, *[conv_out(x[2 + i], k[i], s[i], p[i], d[i]) for i in range(nd)])
    params = c_out * per_in * math.prod(k) + (c_out if f["bias"] else 0)
    per_out = (*k, per_in)
    factors = Factors((*out[2:], c_out), per_out, x[0] if x[0] != 1 else None,
                      (*per_out, c_out))
    volume = math.prod(out)
    return (out, volume * elem, params, 0, params * elem, 0, 2, factors.macs,
            volume if f["bias"] else 0, (factors,), {}, None, volume * elem, 1)


def _bn(elem: int, xs: tuple[Shape, ...], f: Mapping[str, Any]) -> Parts | None:
    """nn.BatchNormNd at inference: empty, then native_batch_norm (see lowering._bn)."""
    x = xs[0]
    c = x[1]
    params = 2 * c if f["affine"] else 0
    n = math.prod(x)
    return (x, n * elem, params, 2 * c + 1, params * elem, 2 * c * elem + INT64, 5, 0, 2 * n,
            (), {}, _bn_events, n * elem, 2)


def _bn_events(nbytes: int) -> tuple[Any, ...]:
    """_bn's memory events, written out when read (the walk replays a batch norm as one new
    tensor of ``nbytes``, the result: its statistics are empty)."""
    return ((((1, 0),), (), (1,)), (((2, nbytes), (3, 0), (4, 0)), (), (3, 4)))


def _activation(op: str) -> Direct:
    per = PER_ELEMENT[op]

    def direct(elem: int, xs: tuple[Shape, ...], f: Mapping[str, Any]) -> Parts:
        x = xs[0]
        n = math.prod(x)
        return (x, n * elem, 0, 0, 0, 0, 2, 0, per * n, (), {}, None, n * elem, 1)

    direct.__doc__ = f"aten.{op}: one new tensor."
    return direct


def _itself(elem: int, xs: tuple[Shape, ...], f: Mapping[str, Any]) -> Parts:
    """nn.Identity, nn.Dropout at inference: the input itself."""
    return (xs[0], math.prod(xs[0]) * elem, 0, 0, 0, 0, 2, 0, 0, (), {}, _VIEW, -1, 1)


def _add(elem: int, xs: tuple[Shape, ...], f: Mapping[str, Any]) -> Parts | None:
    """aten.add.Tensor, left to right; each sum but the last freed by the next add."""
    x, k = xs[0], len(xs)
    if k < 2 or xs.count(x) != k:
        return None  # broadcasting: the generic lowering
    nbytes = math.prod(x) * elem
    events = tuple([(((k + i, nbytes),), (), (k + i - 1,) if i else ()) for i in range(k - 1)])
    return (x, nbytes, 0, 0, 0, 0, 2 * k - 1, 0, (k - 1) * math.prod(x), (), {}, events,
            nbytes if k == 2 else -1, 2 * k - 2)


def _concat(elem: int, xs: tuple[Shape, ...], f: Mapping[str, Any]) -> Parts | None:
    """torch.cat on channels: one new tensor."""
    x, k = xs[0], len(xs)
    out = (x[0], sum([y[1] for y in xs]), *x[2:])
    nbytes = math.prod(out) * elem
    return (out, nbytes, 0, 0, 0, 0, k + 1, 0, 0, (), {}, None, nbytes, k)


def _mul(elem: int, xs: tuple[Shape, ...], f: Mapping[str, Any]) -> Parts | None:
    """x * gate (squeeze-excite): aten.mul.Tensor, broadcast."""
    out = broadcast(*xs)
    if out is None:
        return None
    n = math.prod(out)
    return (out, n * elem, 0, 0, 0, 0, 3, 0, n, (), {}, None, n * elem, 2)


def _global_pool(elem: int, xs: tuple[Shape, ...], f: Mapping[str, Any]) -> Parts | None:
    """An adaptive average pool to 1 (global_avg_pool): aten.mean over the spatial dims,
    kept (a 1-D one, or another output size: the generic lowering)."""
    x = xs[0]
    nd = len(x) - 2
    o = f.get("output", 1)
    if nd < 2 or not (o == 1 or (type(o) is list and o == [1] * nd)):
        return None
    out = spatial_ones(x)
    nbytes = math.prod(out) * elem
    return (out, nbytes, 0, 0, 0, 0, 2, 0, math.prod(x), (), {}, None, nbytes, 1)


def _flatten(elem: int, xs: tuple[Shape, ...], f: Mapping[str, Any]) -> Parts:
    """nn.Flatten: a view of the input (a flat input is returned as it is)."""
    x = xs[0]
    if len(x) == 2:
        return _itself(elem, xs, f)
    return ((x[0], math.prod(x[1:])), math.prod(x) * elem, 0, 0, 0, 0, 2, 0, 0, (), {}, _VIEW,
            -1, 1)


def _linear(elem: int, xs: tuple[Shape, ...], f: Mapping[str, Any]) -> Parts | None:
    """nn.Linear on (N, features): t (a view of the weight), then addmm (mm without bias);
    more dims: the generic lowering."""
    x = xs[0]
    if len(x) != 2:
        return None
    rows, fin = x
    c_out, bias = f["out"], f["bias"]
    params = c_out * fin + (c_out if bias else 0)
    nbytes = rows * c_out * elem
    factors = Factors((rows, c_out), (fin,), None, (fin, c_out))
    events = (((), (), ()), (((2, nbytes),), (), (1,)))
    return ((rows, c_out), nbytes, params, 0, params * elem, 0, 3, rows * c_out * fin,
            rows * c_out if bias else 0, (factors,), {}, events, nbytes, 2)


DIRECT.update({"conv": _conv, "bn": _bn, "identity": _itself, "dropout": _itself,
               "add": _add, "concat": _concat, "mul": _mul, "global_avg_pool": _global_pool,
               "adaptive_avg_pool": _global_pool, "flatten": _flatten, "linear": _linear})
for _kind, (_op, _) in _ACTIVATIONS.items():
    DIRECT[_kind] = _activation(_op)
