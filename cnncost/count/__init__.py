"""The counting engine: formulas per ATen op, the dispatch mode, drivers, memory, conventions."""
