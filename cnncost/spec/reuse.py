"""One spec compiled at many variable values: its layers once, their shapes at each point.

:class:`Recompiler` keeps a spec's text loaded and its last few full compilations
(:class:`~cnncost.spec.reshape.Compilation`, the compiler's reshaping phase). A point is
evaluated at the top level only (``compile_top``: ``vars`` and ``input``) and taken from
the first compilation that can be reshaped to it; any other point is compiled in full and
kept. The result equals ``compile_spec`` at that point field for field (tests/test_reuse.py
holds them equal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cnncost.spec.compiler import compile_top
from cnncost.spec.loader import load_yaml, resolve_extends
from cnncost.spec.model import ModelSpec
from cnncost.spec.reshape import Compilation

MAX_BASES = 8  # compilations kept per spec (a width x resolution sweep: one per width)


class Recompiler:
    """Compiles one spec's text at many variable values (see the module docstring)."""

    def __init__(self, text: str, file: str, input_shape: Sequence[int] | None = None) -> None:
        self.text, self.file = text, file
        self.input = None if input_shape is None else tuple(input_shape)
        self.doc: Any = None
        self.bases: list[Compilation] = []
        self.reused = 0  # points whose layers came from an earlier compilation

    def compile(self, overrides: Mapping[str, Any]) -> ModelSpec:
        """The spec at ``overrides``: equal to parse_spec(text, file, overrides, input)."""
        if self.doc is None:  # a document that does not load raises here, at every point
            self.doc = resolve_extends(load_yaml(self.text, self.file), self.file)
        spec = self._reuse(overrides)
        if spec is not None:
            self.reused += 1
            return spec
        spec, base = Compilation.of(self.doc, self.file, overrides, self.input)
        if base is not None:
            self.bases.insert(0, base)
            del self.bases[MAX_BASES:]
        return spec

    def _reuse(self, overrides: Mapping[str, Any]) -> ModelSpec | None:
        if not self.bases:
            return None
        try:
            top = compile_top(self.doc, self.file, dict(overrides), self.input)
        except Exception:
            return None  # compile_spec says why
        for k, base in enumerate(self.bases):
            spec = base.at(top)
            if spec is not None:
                self.bases.insert(0, self.bases.pop(k))
                return spec
        return None
