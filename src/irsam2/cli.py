"""The ``irsam2`` command: one sub-command per module of ``irsam2.commands``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from irsam2.utils import UserError

# name -> module under irsam2.commands; each defines HELP, add_arguments(parser) and run(args) -> int
COMMANDS = {
    "demo": "demo",
    "train": "train",
    "eval": "eval",
    "predict": "predict",
    "bench": "bench",
    "export": "export",
    "baselines": "baselines",
    "sweep": "sweep",
}


def build_parser() -> argparse.ArgumentParser:
    from irsam2 import __version__

    parser = argparse.ArgumentParser(
        prog="irsam2",
        description="IR-SAM2 infrared small target detection: train, evaluate, predict, benchmark, export.",
        epilog="Run `irsam2 COMMAND --help` for each command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"irsam2 {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"irsam2.commands.{module_name}")
        except ModuleNotFoundError as e:  # only the command module itself may be missing (tests: all exist)
            if e.name != f"irsam2.commands.{module_name}":
                raise
            continue
        p = sub.add_parser(
            name,
            help=module.HELP.splitlines()[0],
            description=module.HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        if args.verbose:
            raise
        print(f"irsam2 {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"irsam2 {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
