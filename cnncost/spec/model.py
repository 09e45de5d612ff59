"""What a compiled spec is: :class:`ModelSpec`, its :class:`LayerSpec` nodes, and the bounds
every spec is held to (sizes, repeats, nesting, reserved names)."""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnncost.errors import SpecError
from cnncost.layers import Built, Shape

MAX_FILE_BYTES = 1 << 20
# Mappings and lists nested in the YAML text (64 nested composites need about 130).
MAX_YAML_DEPTH = 200
# Specs extending one another (a variant of a variant of ...).
MAX_EXTENDS = 8
MAX_LAYERS = 50_000
# Items visited while expanding (catches nested repeats of empty bodies).
MAX_STEPS = 100_000
MAX_REPEAT = 10_000
# Branches of one add/concat/split (DenseNet's widest concat has fewer than 50 inputs).
MAX_BRANCHES = 1_000
MAX_BLOCK_DEPTH = 32
# Composites nested inside each other (seq in seq in ...), blocks included.
MAX_NESTING = 64
# Every whole-number field (channels, kernel, stride, padding, ...) and every size.
MAX_DIM = 1 << 24
# Elements of one sample's tensor; with the largest batch (2**20) and an 8-byte dtype a
# batch stays far below the 2**63 bytes torch can address (beyond it: a storage overflow).
MAX_SAMPLE_ELEMENTS = 1 << 36
# Elements of one layer's largest weight tensor (a conv's out x in/groups x k x k).
MAX_WEIGHT_ELEMENTS = 1 << 36
# Arithmetic of one compilation (expr.Budget): a unit per expression term, list element and
# 64 characters of a name template, 8 per field evaluated (context.EVAL_UNITS). A 50,000-layer
# network of ResNet-152's make needs about a million; ResNet-152 itself 11,000.
MAX_WORK = 2_000_000
# A layer or branch name, and the dotted path of a layer (names nested in blocks).
MAX_NAME_CHARS = 64
MAX_PATH_CHARS = 512

# Graph ops the compositions lower to; graph/build.py maps each to a torch function.
OP_KINDS = ("add", "concat", "mul", "slice")
RESERVED_ITEM_KEYS = ("name", "repeat", "if", "first")
TOP_LEVEL_KEYS = ("name", "description", "source", "extends", "input", "vars", "blocks", "layers",
                  "explain", "reference")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Layer and branch names become attributes of torch modules and names in generated code, so
# they may not be Python keywords, ``self``, or attributes of nn.Module / fx.GraphModule
# (tests/test_builder.py checks this list against the installed torch).
RESERVED_NAMES = frozenset(keyword.kwlist) | frozenset((
    "self", "T_destination", "add_module", "add_submodule", "apply", "bfloat16", "buffers",
    "call_super_init", "children", "code", "compile", "cpu", "cuda", "delete_all_unused_submodules",
    "delete_submodule", "double", "dump_patches", "eval", "extra_repr", "float", "forward",
    "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "graph", "half", "ipu",
    "load_state_dict", "meta", "modules", "mtia", "named_buffers", "named_children",
    "named_modules", "named_parameters", "parameters", "print_readable", "recompile",
    "register_backward_hook", "register_buffer", "register_forward_hook",
    "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_",
    "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty",
    "to_folder", "train", "training", "type", "xpu", "zero_grad",
))


@dataclass(frozen=True)
class Loc:
    """Where a layer came from: file, line and the path of keys inside the spec."""

    file: str
    line: int
    where: str

    def error(self, reason: str) -> SpecError:
        return SpecError(reason, self.file, self.line, self.where)


@dataclass(frozen=True)
class LayerSpec:
    """One node of the compiled network: a layer (module) or a graph op (add/concat/...)."""

    path: str
    kind: str
    params: Mapping[str, Any]
    inputs: tuple[str, ...]
    in_shapes: tuple[Shape, ...]
    out_shape: Shape
    loc: Loc
    receptive_field: int  # the largest extent over the spatial dims of the input
    built: Built | None = field(default=None, repr=False, compare=False)
    # The extent per spatial dim where they differ (two 1x7 convs: (1, 13)); None: square.
    receptive_field_axes: tuple[int, ...] | None = None

    @property
    def is_op(self) -> bool:
        return self.built is None


@dataclass(frozen=True)
class ModelSpec:
    """A fully resolved spec: input shape, variables and the layers in execution order."""

    name: str
    description: str
    source: str
    file: str
    input_shape: Shape
    vars: Mapping[str, Any]
    layers: tuple[LayerSpec, ...]
    output: str
    explain: Any = None
    # Published figures the spec must reproduce, e.g. {params: 25557032, source: "..."}.
    reference: Mapping[str, Any] = field(default_factory=dict)

    @property
    def output_shape(self) -> Shape:
        for layer in reversed(self.layers):
            if layer.path == self.output:
                return layer.out_shape
        return self.input_shape
