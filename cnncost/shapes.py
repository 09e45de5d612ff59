"""The only output-size and broadcast arithmetic (pure Python, no torch).

Layer kinds (cnncost.layers), the spec compiler's graph ops, the counter's meta kernels and
the formulas' shape rules all size their outputs here, so an engine that never runs torch
gets the very numbers PyTorch would. Sizes follow PyTorch's documented formulas
(``torch.nn.Conv2d``, ``ConvTranspose2d``, ``MaxPool2d``) and NumPy's broadcasting rule.
"""

from __future__ import annotations

from collections.abc import Sequence

Shape = tuple[int, ...]


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0,
             dilation: int = 1) -> int:
    """Conv output size: floor((size + 2 x padding - dilation x (kernel - 1) - 1) / stride) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_transpose_out(size: int, kernel: int, stride: int = 1, padding: int = 0,
                       dilation: int = 1, output_padding: int = 0) -> int:
    """Transposed conv output size:
    (size - 1) x stride - 2 x padding + dilation x (kernel - 1) + output_padding + 1."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def pool_out(size: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1,
             ceil_mode: bool = False) -> int:
    """Pooling output size: the conv size, rounded up with ``ceil_mode``, where the last
    window must still start inside the (left-padded) input (PyTorch's rule)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def broadcast(*shapes: Sequence[int]) -> Shape | None:
    """The shape broadcasting gives ``shapes`` (aligned on the right, size 1 stretches),
    or None when two sizes disagree."""
    if len(shapes) == 2 and len(shapes[0]) == len(shapes[1]):  # (x * gate: the commonest)
        out = []
        for a, b in zip(*shapes, strict=True):
            if a == b or b == 1:
                out.append(a)
            elif a == 1:
                out.append(b)
            else:
                return None
        return tuple(out)
    rank = max([len(s) for s in shapes], default=0)
    out = [1] * rank
    for shape in shapes:
        for i, size in enumerate(shape, rank - len(shape)):
            if out[i] == 1:
                out[i] = size
            elif size not in (1, out[i]):
                return None
    return tuple(out)


def broadcasts_to(shape: Sequence[int], target: Sequence[int]) -> bool:
    """Whether ``shape`` broadcasts to ``target`` unchanged (e.g. a gate onto its input)."""
    return broadcast(shape, target) == tuple(target)


def spatial_ones(shape: Sequence[int]) -> Shape:
    """``shape`` (N, C, *spatial) with every spatial size 1: a global pool's output, the same
    as ``reduced(shape, [-1, ..., -len(spatial)], keepdim=True)``."""
    return (*shape[:2], *[1] * (len(shape) - 2))


def reduced(shape: Sequence[int], dims: int | Sequence[int] | None = None,
            keepdim: bool = False) -> Shape | None:
    """The shape left by reducing ``dims`` (all when None or empty; negative dims count from
    the end); None when a dim is out of range or repeated."""
    rank = len(shape)
    picked = [dims] if isinstance(dims, int) else list(dims or range(rank))
    if rank == 0:
        return () if all(d in (0, -1) for d in picked) else None
    if not all(-rank <= d < rank for d in picked):
        return None
    axes = {d % rank for d in picked}
    if len(axes) != len(picked):
        return None
    return tuple(1 if i in axes else n for i, n in enumerate(shape) if keepdim or i not in axes)
