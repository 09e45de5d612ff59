"""Rendering: terminal tables, CSV, Markdown, JSON, compare, bench, explain."""
