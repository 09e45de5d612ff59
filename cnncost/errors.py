"""The one error hierarchy of cnncost; only cli.py turns these into exit codes."""

from __future__ import annotations


class CnnCostError(Exception):
    """Base of every error cnncost raises on purpose (bad input, drift, unsupported ops)."""

    exit_code = 2

    def _render_traceback_(self) -> list[str]:
        """What IPython and Jupyter print for it (they ask an exception for this before
        printing a traceback): its one line, as the command line prints it."""
        return [f"error: {self}"]


class SpecError(CnnCostError):
    """A spec is malformed or describes an impossible network.

    The message reads ``FILE:LINE: layers[3].conv: what is wrong; what was expected``.
    """

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 where: str | None = None) -> None:
        self.file = file
        self.line = line
        self.where = where
        self.reason = message
        super().__init__(self._format())

    def _format(self) -> str:
        prefix = ""
        if self.file:
            prefix = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        if self.where:
            prefix += f"{self.where}: "
        return prefix + self.reason


class LayerError(ValueError):
    """Raised by a layer's shape rule; spec.py re-raises it as a located SpecError."""


class UnsupportedOpError(CnnCostError):
    """An op has no counting formula and ``--strict`` was asked for."""


class RegressionError(CnnCostError):
    """A committed cost table no longer matches what the code computes."""

    exit_code = 1


class ModelRunError(CnnCostError):
    """A module (not a spec: specs are validated first) failed on the input it was given."""


class UsageError(CnnCostError):
    """A command was called with arguments that cannot work together."""


class OnnxError(CnnCostError):
    """An ONNX file that cannot be read or counted: not ONNX, truncated, malformed, missing
    external data, or sizes it needs and was not given. The message names file and node."""
