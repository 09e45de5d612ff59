"""The small spec several test modules count: a conv, a pool and a linear layer on 3x8x8.

By hand (no bias on the conv): conv 3 -> 4, 3x3, pad 1: params 3*3*3*4 = 108, MACs
8*8*4*27 = 6,912, output 4x8x8 floats = 1,024 B; global_avg_pool -> 4 floats (16 B), flatten
16 B; linear 4 -> 10: params 4*10 + 10 = 50, MACs 40, output 40 B.
"""

from __future__ import annotations

LAYERS = """\
input: [3, 8, 8]
vars: {width: 4}
layers:
  - conv: {out: width, kernel: 3, padding: 1, bias: false}
  - global_avg_pool
  - flatten
  - linear: {out: 10}
"""


def small(*header: str) -> str:
    """The spec with ``header`` lines (``name: small``, ...) before ``input``."""
    return "".join(f"{line}\n" for line in header) + LAYERS
