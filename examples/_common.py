"""What the example scripts share: where their figures go."""

from __future__ import annotations

import argparse
import os
import tempfile


def output_dir(argv: list[str] | None = None, description: str | None = None) -> str:
    """The directory the figure goes to: ``--out DIR``, else a new temporary directory (never a
    tracked file: ``--out docs/figures`` regenerates the documentation's copy on purpose)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", help="directory for the figure (default: a new temporary directory)")
    out = parser.parse_args(argv).out or tempfile.mkdtemp(prefix="glassnet-example-")
    os.makedirs(out, exist_ok=True)
    return out
