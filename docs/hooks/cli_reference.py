"""MkDocs hook: writes the CLI reference page (reference/cli.md) from glassnet.cli's parser at
build time, so the page is always the parser's own help text and never a hand-kept copy."""

from __future__ import annotations

import argparse
import os

from mkdocs.structure.files import File

PAGE = "reference/cli.md"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps the sub-commands on this private action only
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def render() -> str:
    """The page: the top-level usage, then each command's ``--help`` as argparse prints it."""
    from glassnet.cli import build_parser

    os.environ.setdefault("COLUMNS", "100")  # argparse wraps at the terminal width: fix it
    parser = build_parser()
    commands = _subparsers(parser)
    out = [
        "# Command-line reference",
        "",
        "Generated from `glassnet/cli.py`'s parser when the site is built (`docs/hooks/cli_reference.py`):",
        "this is exactly what `glassnet COMMAND --help` prints. The [command-line guide](../cli.md)",
        "explains the presets and what each option checks.",
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
        "",
    ]
    for name, sub in commands.items():
        out += [f"## glassnet {name}", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(out)


def on_files(files, config):
    files.append(File.generated(config, PAGE, content=render()))
    return files
