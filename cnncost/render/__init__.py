"""All output: one renderer per result (``cost``, ``compare``, ``sweep``, ``advice``, ``bench``,
``bench_train``, ``predict``), each answering every format with its ``render_text`` and a rich
renderable for the terminal, on a kit that imports no renderer (``formats``, ``terminal``,
``console``, ``html``, ``svg``, ``charts``). Computes nothing: it reads finished results."""
