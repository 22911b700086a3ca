"""`glassformer tasks`: the built-in tasks with their family and default preset."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("tasks", help="list the built-in tasks", description="List the built-in tasks.")
    parser.set_defaults(func=list_tasks)


def list_tasks(args: argparse.Namespace) -> int:
    from glassformer.data.tasks import DEFAULT_TASK, TASKS

    rows = [("task", "kind", "family", "default preset", "description")]
    for name, task in TASKS.items():
        label = f"{name} (default)" if name == DEFAULT_TASK else name
        rows.append((label, task.kind, task.family, task.default_preset, task.description))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
    return 0
