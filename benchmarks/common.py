"""What the benchmarks that read the full datasets share: the `--data-dir DATA` option.

Standard library only, so that every benchmark can import it (svm.py needs no torch).
"""

from __future__ import annotations

import argparse
import os
import sys

NO_DATA = (
    "pass --data-dir DATA (a folder with mnist/ and fashion-mnist/ IDX files) "
    "or set TUNE_MNIST_DATA"
)


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    """`--data-dir DATA`, by default $TUNE_MNIST_DATA; parse_args checks one was given."""
    parser.add_argument(
        "--data-dir",
        metavar="DATA",
        default=os.environ.get("TUNE_MNIST_DATA"),
        help="a folder with mnist/ and fashion-mnist/ IDX files (default: $TUNE_MNIST_DATA)",
    )


def parse_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The parsed arguments; a one-line error exit when no data folder was given."""
    args = parser.parse_args()
    if not args.data_dir:
        sys.exit(NO_DATA)
    return args
