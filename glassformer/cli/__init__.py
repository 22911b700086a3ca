"""The `glassformer` command: subcommands mapped to plain functions, one module per area."""

from glassformer.cli.main import main

__all__ = ["main"]
