"""ONNX files: read, checked and counted by the analytic engine's formula table, without torch.

- ``model``: the file read and checked (size, structure, external data, a work budget),
  its symbolic sizes set from ``--batch``/``--input`` and its shapes inferred by onnx's
  shape inference;
- ``ops``: each ONNX operator as the ATen calls the formula table prices (the registry
  ``ONNX_OPS``);
- ``names``: row names from the name scopes exporters write, so ``--depth`` groups them;
- ``engine``: the cost table of a file;
- ``export``: a compiled spec (or any nn.Module) written as ONNX through PyTorch.

The ``onnx`` package is imported only when a file is read (``pip install 'cnncost[onnx]'``).
"""
