"""Latency prediction: calibrate this machine once, then predict a model's milliseconds from
its cost table without running it.

- ``kernels``: the op classes (one place to add one): which layer kinds each covers, and the
  calibration kernels it samples (a drawn layer in a network's context) and the random
  networks, written as short specs (no torch);
- ``features``: a counted layer (``CostRow``) -> its op class and feature vector (no torch);
- ``fit``: the per-class fit (a least-squares baseline, and trees on its residual) and its
  held-out error; the fitted model is plain numbers (JSON), evaluated in pure Python;
- ``cache``: the calibration file, one per machine, device, threads, dtype and torch
  version, validated field by field on load (a corrupt or foreign file is refused by name);
- ``calibrate``: times the kernels and networks layer by layer as ``bench --per-layer``
  does (torch), adaptively;
- ``predict``: a cost table + a calibration -> per-layer and whole-model milliseconds.

Only ``calibrate`` imports torch: a spec counted by the analytic engine is predicted without it.
"""
