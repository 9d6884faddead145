"""Sub-commands of the ``irsam2`` CLI; helpers shared by several of them (kept free of heavy imports)."""

from __future__ import annotations

import argparse

from irsam2.utils import UserError

# Kept literal so that building the parser does not import scipy; irsam2.metrics.seg holds the definitions.
PROTOCOL_HELP = (
    "Pd/Fa protocol: basicirstd (default; the field's greedy rule, comparable with published tables), "
    "optimal (one-to-one optimal assignment; 'standard' is its old name), legacy (the older codebases' "
    "area-equality Fa), or all (a row for each)"
)


def add_protocol_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", default="basicirstd", metavar="NAME", help=PROTOCOL_HELP)


def protocols_from_args(args: argparse.Namespace) -> tuple[str, ...]:
    """The metrics protocols named by ``--protocol``; an unknown name is a UserError."""
    from irsam2.metrics.seg import expand_protocols

    try:
        return expand_protocols(args.protocol)
    except ValueError as e:
        raise UserError(f"--protocol: {e}; or 'all'") from None
