"""The spec language: YAML -> validated, fully resolved :class:`ModelSpec` (no torch here)."""

from cnncost.spec.compiler import (
    MAX_FILE_BYTES,
    MAX_LAYERS,
    MAX_REPEAT,
    MAX_STEPS,
    RESERVED_NAMES,
    LayerSpec,
    Loc,
    ModelSpec,
    load_spec,
    load_yaml,
    parse_spec,
)

__all__ = ["MAX_FILE_BYTES", "MAX_LAYERS", "MAX_REPEAT", "MAX_STEPS", "RESERVED_NAMES",
           "LayerSpec", "Loc", "ModelSpec", "load_spec", "load_yaml", "parse_spec"]
