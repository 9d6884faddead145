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


def add_data_repair_arguments(parser: argparse.ArgumentParser) -> None:
    """``--strict`` and ``--mask-threshold``: how ground-truth masks are read (eval, baselines)."""
    parser.add_argument(
        "--strict", action="store_true", help="refuse data repairs (mask size, grey mask values)"
    )
    parser.add_argument(
        "--mask-threshold",
        type=float,
        help="ground truth: target where mask value > this (default: > 127 for 0-255 masks, > 0 for 0/1)",
    )


def protocols_from_args(args: argparse.Namespace) -> tuple[str, ...]:
    """The metrics protocols named by ``--protocol``; an unknown name is a UserError."""
    from irsam2.metrics.seg import expand_protocols

    try:
        return expand_protocols(args.protocol)
    except ValueError as e:
        raise UserError(f"--protocol: {e}; or 'all'") from None
