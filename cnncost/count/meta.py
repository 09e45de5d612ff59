"""Hand-written meta kernels: the output metadata of common CNN ops, without PyTorch's.

For the common CNN ops the counter computes the output's metadata here instead of by
PyTorch's meta kernel. Many of those kernels are Python (batch norm, conv, pooling, add,
relu); the first call of any of them imports sympy and torch._dynamo (seconds), and each
call costs 0.1-2 ms. Every shortcut handles the plain cases only and returns None for
anything else, so unusual calls (and every error) still go to PyTorch. Output sizes come
from cnncost.shapes; tests/test_counter.py checks each shortcut against the CPU kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from cnncost import shapes


def _empty_like(x: torch.Tensor) -> torch.Tensor | None:
    """torch.empty_like for the dense layouts (whose meta kernel is a Python reference)."""
    if x.is_contiguous():
        return x.new_empty(x.shape)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.empty(x.shape, dtype=x.dtype, device=x.device,
                           memory_format=torch.channels_last)
    return None


def _batch_norm_meta(x: Any, weight: Any, bias: Any, running_mean: Any, running_var: Any,
                     training: Any, *rest: Any) -> Any:
    """native_batch_norm on meta, as the CPU kernel shapes it (eval: empty saved stats)."""
    c = x.shape[1] if x.dim() > 1 else 0
    ok = all(t is None or (isinstance(t, torch.Tensor) and t.shape == (c,))
             for t in (weight, bias, running_mean, running_var))
    if not ok or x.dim() < 2:
        return None  # let the real meta kernel raise its error
    saved = c if training else 0
    out = _empty_like(x)
    return None if out is None else (out, x.new_empty((saved,)), x.new_empty((saved,)))


def _batch_norm_inference_meta(x: Any, weight: Any, bias: Any, running_mean: Any,
                               running_var: Any, *rest: Any) -> Any:
    """_native_batch_norm_legit_no_training on meta: batch norm with training=False."""
    return _batch_norm_meta(x, weight, bias, running_mean, running_var, False)


def elementwise_meta(inplace: bool, args: Any, kwargs: Any) -> Any:
    """An elementwise op on floating meta tensors of one dtype (a residual add, an SE
    gate, an activation): its output's metadata, without the meta kernel.

    Many of these kernels are Python references (add, mul, silu, hardswish) whose first call
    imports torch._dynamo (seconds); this keeps a plain count from ever needing it. The
    output takes the broadcast shape and the layout of the input of that shape; in place
    it is the input itself. Anything else goes to the real kernel (and its errors).
    """
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return None
    others = [a for a in (*args[1:], *kwargs.values())
              if isinstance(a, torch.Tensor | list | tuple)]
    if not others:
        return x if inplace else _empty_like(x)
    y = others[0]
    if (len(others) > 1 or len(args) < 2 or args[1] is not y
            or not isinstance(y, torch.Tensor) or y.dtype != x.dtype):
        return None
    shape = shapes.broadcast(x.shape, y.shape)
    if shape is None:
        return None
    if inplace:
        return x if shape == x.shape else None
    if shape == x.shape:
        return _empty_like(x)
    if shape == y.shape:
        return _empty_like(y)
    return x.new_empty(shape)


def _matmul_meta(*args: Any, **kwargs: Any) -> Any:
    """mm / addmm / bmm on meta: a new contiguous (B x) M x N tensor (a Python meta kernel
    otherwise). Anything unusual goes to the real kernel, which raises its own errors."""
    if len(args) == 2:
        a, b = args
    elif len(args) == 3 and isinstance(args[0], torch.Tensor):
        a, b = args[1], args[2]  # addmm(bias, a, b): bias broadcast-checked by shape only
        out_shape = (a.shape[0], b.shape[1]) if a.dim() == 2 and b.dim() == 2 else None
        if out_shape is None or not shapes.broadcasts_to(args[0].shape, out_shape):
            return None
    else:
        return None
    if (a.dtype != b.dtype or not a.is_floating_point() or a.dim() != b.dim()
            or a.dim() not in (2, 3) or a.shape[-1] != b.shape[-2]
            or (a.dim() == 3 and a.shape[0] != b.shape[0])):
        return None
    return a.new_empty((*a.shape[:-1], b.shape[-1]))


def _cat_meta(tensors: Any, dim: int = 0) -> Any:
    """cat on meta (a Python reference kernel otherwise) for same-dtype, same-rank inputs."""
    if not isinstance(tensors, list | tuple) or not tensors:
        return None
    first = tensors[0]
    if not all(isinstance(t, torch.Tensor) for t in tensors) or not -first.dim() <= dim < (
            first.dim()):
        return None
    dim %= first.dim()
    shape = list(first.shape)
    for t in tensors[1:]:
        if t.dtype != first.dtype or t.dim() != first.dim() or any(
                a != b for i, (a, b) in enumerate(zip(t.shape, shape, strict=True)) if i != dim):
            return None
        shape[dim] += t.shape[dim]
    fmt = (torch.channels_last if first.dim() == 4 and all(
        t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
        for t in tensors) else torch.contiguous_format)
    return first.new_empty(shape).contiguous(memory_format=fmt)


def _mean_meta(x: Any, dim: Any = None, keepdim: bool = False, **kwargs: Any) -> Any:
    """mean over dims on meta (global average pooling; a Python reference otherwise)."""
    if kwargs.get("dtype") is not None or not x.is_floating_point() or x.dim() == 0:
        return None
    if dim is not None and not (isinstance(dim, list | tuple)
                                and all(type(d) is int for d in dim)):
        return None
    shape = shapes.reduced(tuple(x.shape), dim, keepdim)
    # None: a dim out of range or repeated, and the real kernel raises the error
    return None if shape is None else x.new_empty(shape)


def _per_dim(nd: int, *values: Any) -> list[list[int]] | None:
    """Each aten int-list argument as ``nd`` ints (one int repeats); None if malformed."""
    out = []
    for value in values:
        v = list(value) if isinstance(value, list | tuple) else [value]
        if len(v) == 1:
            v *= nd
        if len(v) != nd or not all(type(i) is int for i in v):
            return None
        out.append(v)
    return out


def _conv_meta(x: Any, w: Any, bias: Any, stride: Any, padding: Any, dilation: Any,
               transposed: Any, output_padding: Any, groups: Any, *rest: Any) -> Any:
    """aten.convolution on meta for contiguous inputs (a Python meta kernel otherwise, whose
    first call imports sympy): the output shape by PyTorch's documented size formulas."""
    nd = x.dim() - 2
    if (nd not in (1, 2, 3) or w.dim() != nd + 2 or x.dtype != w.dtype
            or not x.is_floating_point() or not x.is_contiguous() or not w.is_contiguous()
            or not isinstance(groups, int) or groups < 1):
        return None
    params = _per_dim(nd, stride, padding, dilation, output_padding)
    if params is None:
        return None
    s, p, d, op = params
    k = w.shape[2:]
    if transposed:
        if x.shape[1] != w.shape[0] or w.shape[0] % groups:
            return None
        channels = w.shape[1] * groups
        sizes = [shapes.conv_transpose_out(*dims)
                 for dims in zip(x.shape[2:], k, s, p, d, op, strict=True)]
    else:
        if x.shape[1] != w.shape[1] * groups or w.shape[0] % groups:
            return None
        channels = w.shape[0]
        sizes = [shapes.conv_out(*dims) for dims in zip(x.shape[2:], k, s, p, d, strict=True)]
    if min(sizes) < 1 or min(s) < 1 or min(d) < 1 or min(p) < 0 or (
            bias is not None and tuple(bias.shape) != (channels,)):
        return None
    return x.new_empty((x.shape[0], channels, *sizes))


def _max_pool_meta(x: Any, kernel_size: Any, stride: Any = (), padding: Any = 0,
                   dilation: Any = 1, ceil_mode: bool = False) -> Any:
    """max_pool*_with_indices on meta for contiguous inputs (a Python meta kernel otherwise):
    output and int64 indices sized by PyTorch's pooling_output_shape."""
    nd = x.dim() - 2
    if nd not in (1, 2, 3) or not x.is_floating_point() or not x.is_contiguous():
        return None
    params = _per_dim(nd, kernel_size, stride or kernel_size, padding, dilation)
    if params is None:
        return None
    sizes = []
    for size, k, s, p, d in zip(x.shape[2:], *params, strict=True):
        if k < 1 or s < 1 or d < 1 or p < 0 or p > k // 2:
            return None
        out = shapes.pool_out(size, k, s, p, d, bool(ceil_mode))
        if out < 1:
            return None
        sizes.append(out)
    shape = (*x.shape[:2], *sizes)
    return x.new_empty(shape), x.new_empty(shape, dtype=torch.int64)


def _avg_pool_meta(x: Any, kernel_size: Any, stride: Any = (), padding: Any = 0,
                   ceil_mode: bool = False, *rest: Any) -> Any:
    """avg_pool*d on meta: sized like max pooling without dilation, no indices."""
    out = _max_pool_meta(x, kernel_size, stride, padding, 1, ceil_mode)
    return None if out is None else out[0]


def _channel_shuffle_meta(x: Any, groups: Any) -> Any:
    """channel_shuffle on meta: a permutation of the channels, shaped like its input."""
    if x.dim() < 3 or type(groups) is not int or groups < 1 or x.shape[1] % groups:
        return None
    return _empty_like(x)


def _adaptive_pool_meta(x: Any, output_size: Any) -> Any:
    """_adaptive_avg_pool2d/3d on meta for contiguous inputs (a Python meta kernel)."""
    nd = x.dim() - 2
    sizes = list(output_size) if isinstance(output_size, list | tuple) else [output_size]
    if (nd not in (2, 3) or len(sizes) != nd or not all(type(v) is int and v > 0 for v in sizes)
            or not x.is_floating_point() or not x.is_contiguous() or 0 in x.shape):
        return None
    return x.new_empty((*x.shape[:2], *sizes))


FAST_META: dict[Any, Callable[..., Any]] = {
    torch.ops.aten.avg_pool1d.default: _avg_pool_meta,
    torch.ops.aten.avg_pool2d.default: _avg_pool_meta,
    torch.ops.aten.avg_pool3d.default: _avg_pool_meta,
    torch.ops.aten.native_channel_shuffle.default: _channel_shuffle_meta,
    torch.ops.aten.channel_shuffle.default: _channel_shuffle_meta,
    torch.ops.aten._adaptive_avg_pool2d.default: _adaptive_pool_meta,
    torch.ops.aten._adaptive_avg_pool3d.default: _adaptive_pool_meta,
    torch.ops.aten.max_pool1d_with_indices.default: _max_pool_meta,
    torch.ops.aten.max_pool2d_with_indices.default: _max_pool_meta,
    torch.ops.aten.max_pool3d_with_indices.default: _max_pool_meta,
    torch.ops.aten.convolution.default: _conv_meta,
    torch.ops.aten.mean.dim: _mean_meta,
    torch.ops.aten.cat.default: _cat_meta,
    torch.ops.aten.native_batch_norm.default: _batch_norm_meta,
    torch.ops.aten._native_batch_norm_legit.default: _batch_norm_meta,
    torch.ops.aten._native_batch_norm_legit_no_training.default: _batch_norm_inference_meta,
    torch.ops.aten.mm.default: _matmul_meta,
    torch.ops.aten.addmm.default: _matmul_meta,
    torch.ops.aten.bmm.default: _matmul_meta,
}

