"""``python -m camerapump.serve SOURCE [SOURCE ...]``: the same as ``camerapump serve``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ._cli import EXAMPLES, SUMMARY, add_arguments, run


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and serve; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m camerapump.serve",
        description=SUMMARY[0].upper() + SUMMARY[1:] + ".",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="camerapump: %(levelname)s %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
