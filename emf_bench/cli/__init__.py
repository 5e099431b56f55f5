"""The `emf-bench` command line: thin commands over the library (imports stay light here)."""

from emf_bench.cli.app import app, main

__all__ = ["app", "main"]
