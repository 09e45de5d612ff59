"""How figures are written, everywhere: shapes, counts, bytes, times, shares and ratios.

One formatter per kind of figure, so a size reads the same in a table, a note and an error
message. Pure Python and a leaf: it imports nothing from cnncost, so any module (engines'
error messages included) may use it without pulling in a renderer.
"""

from __future__ import annotations

from collections.abc import Sequence

_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))
_BINARY = ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))


def shape(dims: Sequence[int]) -> str:
    """(1, 3, 224, 224) -> '1x3x224x224'."""
    return "x".join(map(str, dims))


def human(n: float, unit: str = "") -> str:
    """A count with an SI prefix and three significant digits: 1234567 -> '1.23M'."""
    for factor, prefix in _SI:
        if abs(n) >= factor:
            return f"{n / factor:.3g}{prefix}{unit}"
    return f"{n:g}{unit}"


def human_bytes(n: float) -> str:
    """Bytes in binary units, three significant digits: 1536 -> '1.5 KiB', 512 -> '512 B'."""
    for factor, prefix in _BINARY:
        if abs(n) >= factor:
            value = n / factor  # 1000-1023 of a unit: whole (three digits would be 1e+03)
            return f"{value:.0f} {prefix}" if abs(value) >= 1000 else f"{value:.3g} {prefix}"
    return f"{int(n)} B"


def slides_int(n: int) -> str:
    """An integer as the lecture slides write it: 2160, but 6,710,886,400 (commas from 10,000)."""
    return f"{n:,}" if abs(n) >= 10_000 else str(n)


def ms(seconds: float | None) -> str:
    """Seconds as milliseconds: 0.0123 -> '12.300'; below 0.01 ms two significant digits."""
    if seconds is None:
        return ""
    value = seconds * 1e3
    return f"{value:.3f}" if value >= 0.01 or value == 0 else f"{value:.2g}"


def percent(x: float | None) -> str:
    """A fraction as a whole percentage: 0.256 -> '26%'; below 1% one significant digit."""
    if x is None:
        return ""
    return f"{100 * x:.0f}%" if x >= 0.01 or x == 0 else f"{100 * x:.1g}%"


def ratio(r: float | None) -> str:
    """A ratio: 0.0123 -> '0.0123x', 4.051 -> '4.05x', 1234.5 -> '1234x'; None -> '-'.
    Under 1 with three significant digits, unless those round to 1 (0.9996 -> '1.00x', as
    1.0004 is shown)."""
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:.0f}x"
    return f"{r:.3g}x" if r < 0.9995 else f"{r:.2f}x"


def params_text(params: int, frozen: int) -> str:
    """``1,234`` when every parameter trains; ``1,234 trainable + 56 frozen`` otherwise."""
    return f"{params:,}" if not frozen else f"{params:,} trainable + {frozen:,} frozen"


def counted_on_text(device: str, reason: str) -> str:
    """Where a count that could not run on meta ran instead, and why."""
    return (f"counted on {device} with real tensors ({reason}); the counts hold for this "
            "input and these weights")
