"""Entry point: builds the parser from each command module and turns user errors into exit 2."""

from __future__ import annotations

import argparse
import errno
import sys

from glassformer.errors import UserError

# Every module of this package but `main` and `_private` ones has `register(subparsers)`, adding its subcommands
# with `func` set; ORDER puts the common ones first in --help, the rest follow by name.
ORDER = ("train", "evaluate", "describe", "tasks")
# Failures of the user's disk or permissions rather than of glassformer: one line, exit 2.
USER_OS_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR,
                  errno.EISDIR, errno.ENAMETOOLONG, errno.EEXIST)


def command_modules() -> list[str]:
    import pkgutil

    import glassformer.cli as package

    names = [m.name for m in pkgutil.iter_modules(package.__path__) if m.name != "main" and not m.name.startswith("_")]
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake in the arguments is one line (and exit 2), like every other user error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = OneLineParser(
        prog="glassformer",
        description="Train, run and see through the Transformer of 'Attention Is All You Need'.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in command_modules():
        importlib.import_module(f"glassformer.cli.{name}").register(subparsers)
    from glassformer.cli._numbers import COUNT

    for command in subparsers.choices.values():
        command.add_argument("--threads", type=COUNT, metavar="N",
                             help="CPU threads PyTorch may use (default: PyTorch's choice); 1 keeps small models fast "
                                  "on a busy machine, where threads waiting on each other slow them down many times")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0), or a mistake in the arguments (2, said in one line)
        return stop.code if isinstance(stop.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        result = args.func(args)
    except UserError as error:
        print(f"glassformer {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"glassformer {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as error:
        if error.errno not in USER_OS_ERRORS:
            raise
        where = f": {error.filename}" if error.filename else ""
        print(f"glassformer {args.command}: error: {error.strerror or error}{where}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
