"""How long hostile specs take to be refused, against the largest spec the limits allow.

    python benchmarks/bench_hostile.py [--repeats 3]

Each spec is written to a temporary file and loaded with ``cnncost.spec.load_spec`` (what
``validate`` does before printing); reported: the median time and the first line of the
SpecError. The reference is a valid spec at the layer limit (10,000 x a seq of 5 relus =
50,000 layers): no hostile spec should cost much more than a valid one of the largest size.
Before the bounds, ``round(4, -10**8)`` and the add of 20,000 empty branches under
``repeat: 10000`` ran for minutes (700 s and 3.1 GB for the latter).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnncost.errors import SpecError  # noqa: E402
from cnncost.spec import load_spec  # noqa: E402


def _specs() -> dict[str, tuple[str, dict[str, str]]]:
    cond = "max(" + ",".join(["in"] * 120) + ") > 0"
    return {
        "valid: 50,000 relus (the layer limit)": (
            "input: [4, 8, 8]\nlayers:\n  - repeat: 10000\n    seq: [relu, relu, relu, relu, "
            "relu]\n", {}),
        "round(4, -10**8) in a field": (
            "input: [3, 8, 8]\nlayers:\n  - conv: {out: 'round(4, -100000000)', kernel: 1}\n",
            {}),
        "round(4, -10**8) in --set": (
            "input: [3, 8, 8]\nvars: {w: 1}\nlayers:\n  - conv: {out: w, kernel: 1}\n",
            {"w": "round(4, -100000000)"}),
        "9e15 ** 20": ("input: [3, 8, 8]\nlayers:\n  - conv: {out: '9e15 ** 20', kernel: 1}\n",
                       {}),
        "add of 20,000 empty branches x repeat 10000": (
            "input: [4, 8, 8]\nlayers:\n  - repeat: 10000\n    add: ["
            + ", ".join(["[]"] * 20_000) + "]\n", {}),
        "add of 1,000 empty branches x repeat 10000": (
            "input: [4, 8, 8]\nlayers:\n  - repeat: 10000\n    add: ["
            + ", ".join(["[]"] * 1_000) + "]\n", {}),
        "2 x 121-term conditions x repeat 10000": (
            f"input: [4, 8, 8]\nlayers:\n  - repeat: 10000\n    group:\n"
            f"      - {{relu: ~, if: '{cond}'}}\n      - {{relu: ~, if: '{cond}'}}\n", {}),
        "block of 50,000 params x repeat 10000": (
            "input: [4, 8, 8]\nblocks:\n  b:\n    params: {"
            + ", ".join(f"p{i}: 1" for i in range(50_000))
            + "}\n    layers: [relu]\nlayers:\n  - repeat: 10000\n    b: ~\n", {}),
        "YAML nested 400,000 deep": (
            "input: [3, 8, 8]\nlayers: " + "[" * 400_000 + "]" * 400_000 + "\n", {}),
        "5000-digit integer": (
            "input: [3, 8, 8]\nlayers:\n  - conv: {out: " + "9" * 5000 + ", kernel: 1}\n", {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for label, (text, overrides) in _specs().items():
            path = Path(tmp) / "spec.yaml"
            path.write_text(text)
            times, outcome = [], ""
            for _ in range(args.repeats):
                start = time.perf_counter()
                try:
                    load_spec(path, overrides)
                    outcome = "accepted"
                except SpecError as exc:
                    outcome = exc.reason[:70]
                times.append(time.perf_counter() - start)
            print(f"{label:46s} {statistics.median(times):7.2f} s  {outcome}")


if __name__ == "__main__":
    main()
