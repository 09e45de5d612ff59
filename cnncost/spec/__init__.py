"""The spec language: YAML -> validated, fully resolved :class:`ModelSpec` (no torch here).

A spec names what each layer produces; this package expands blocks, repeats and
expressions, infers every shape with the layer kinds' shape rules, checks every
field, and records for each resulting layer the file and line it came from.
The result is a flat list of :class:`LayerSpec` in execution order with explicit
data flow, which graph/build.py turns 1:1 into a torch.fx graph.

Modules: ``loader`` (line-keeping safe YAML), ``model`` (ModelSpec, LayerSpec, bounds),
``expr`` (the expression interpreter), ``context`` (the state of one compilation and the
context an item compiles in), ``fields`` (fitting values to a layer kind's signature),
``compiler`` (top level, items, layers, blocks), ``composites`` (seq, residual, concat, ...
registered like layer kinds).

The language, in short::

    name: "tiny{depth}"             # optional; also description, source, explain, reference
    vars:                           # defaults; `--set width=0.5` overrides (an expression)
      width: 1.0
      classes: 10
      depth: 18
      stages: {18: [2, 2], 34: [3, 4]}   # a table, indexed by expressions
    input: [3, 32, 32]              # one sample, channels first: (C,) .. (C, D, H, W)
    blocks:
      unit:                         # a reusable block: params (~ = required) and layers
        params: {c: ~, s: 1, mid: "c // 4"}
        layers: [...]
    layers:
      - conv: {out: "int(64 * width)", kernel: 3, stride: 2, padding: 1, bias: false}
      - relu                        # a bare name: a layer without fields
      - unit: {c: 64}               # a block, used like a layer kind
        name: layer1                # optional; default names are kind + counter (conv1, ...)
        repeat: "stages[depth][0]"  # children layer1.0, layer1.1; `i` is the repetition
        first: {s: 2}               # fields or params overridden in the first repetition
        if: "classes > 0"           # skip the item when false
      - repeat: 2                   # a group: items kept together in this namespace
        group:
          - {conv: {out: 64, kernel: 1}, name: "mix{i + 1}"}   # names are templates
          - tap: "t{i}"

Fields hold numbers, lists, literals (``same``) or expressions (cnncost/spec/expr.py) over the
vars, the block's params, ``in`` (the input channels of this item; in a block's param
defaults, of the block) and ``i``. Expressions index lists and tables like Python
(``widths[i]``, ``widths[-1]``, ``stages[depth][0]``; no slices); a var may be a table (a
mapping: keys as written, values expressions). A block sees the vars, its own params and
``in`` only (lexical scope), not the params of the block that uses it.

A layer without fields is its bare name, ``- relu``; beside ``name``, ``if`` or ``repeat``
its fields are empty: ``- {relu: ~, name: act}``. Names (an item's ``name``, ``tap``, a
join's ``tap``, the spec's ``name`` and ``description``) are templates: each
``{expression}`` is replaced by its value (``"enc{i + 1}"``; ``{{`` for a brace).

Composites (composites.COMPOSITES): ``seq: [...]`` (a namespace); ``group: [...]`` (items
in the enclosing namespace, to ``if`` or ``repeat`` them together; a repeated group makes no
namespaces, so its names are built from ``i``); ``residual: [...]`` or ``residual: {layers,
shortcut, when}`` (body + shortcut, identity when no shortcut; the body stays in the
parent namespace unless named; ``when`` false = plain sequence); ``concat:``/``add:``
``{b1: [...], b2: [...]}`` or a list of lists (parallel branches, each a namespace,
``[]`` = identity; add broadcasts sizes of 1); ``split: {x1: [], x2: [...]}`` (equal
channel chunks, then concat); ``scale: [...]`` (x * gate(x), squeeze-excite); ``tap:
name`` and ``join: {tap: name, mode: concat|add, crop: true}`` (long skips; crop takes
the centre of the tap). Names of layers and branches are unique per namespace and may
not be Python keywords or torch module attributes (RESERVED_NAMES).

Variants: ``extends: base.yaml`` (relative to the spec's folder) reads the base spec, then
this file's top-level keys replace the base's, except ``vars`` (new defaults for the base's
variables; a name the base lacks is an error) and ``blocks`` (merged by name); inherited
layers keep the file and line they are written at. specs/resnet18.yaml is resnet50.yaml
with ``vars: {depth: 18}``.

Every error is one line ``FILE:LINE: where.path (in instance.path): what is wrong;
what was expected``; the instance path appears inside blocks and repeats, where the
spec position alone does not say which copy failed. Specs are loaded with a safe YAML
loader without anchors, aliases or tags, and expressions are evaluated by a small
interpreter, so nothing in a spec executes code; sizes, repeats and nesting are bounded.
"""

from __future__ import annotations

from cnncost.spec.compiler import compile_spec, declared_vars, load_spec, parse_spec
from cnncost.spec.loader import load_document, load_yaml, resolve_extends, spec_files
from cnncost.spec.model import (
    MAX_FILE_BYTES,
    MAX_LAYERS,
    MAX_REPEAT,
    MAX_STEPS,
    RESERVED_NAMES,
    LayerSpec,
    Loc,
    ModelSpec,
)

__all__ = ["MAX_FILE_BYTES", "MAX_LAYERS", "MAX_REPEAT", "MAX_STEPS", "RESERVED_NAMES",
           "LayerSpec", "Loc", "ModelSpec", "compile_spec", "declared_vars", "load_document",
           "load_spec",
           "load_yaml", "parse_spec", "resolve_extends", "spec_files"]
