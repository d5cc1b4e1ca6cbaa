"""A griffe extension for the API pages: keep the docstrings' indented formula lines as blocks.

glassnet's docstrings write equations as lines indented under the sentence that introduces
them (``Backward: ...`` followed by ``    dW += delta^T x``). Markdown reads an indented line
right after a paragraph line as part of that paragraph, so the API pages ran the formulas
together into one line. This extension puts a blank line before and after every such indented
run, so Markdown shows it as a code block, line by line, as the docstring reads in the code.
Nothing else in a docstring changes.
"""

from __future__ import annotations

import griffe


def blocks(text: str) -> str:
    """``text`` with every run of lines indented more than the line before it set off by blank
    lines (an indented code block in Markdown)."""
    out: list[str] = []
    inside = False
    for line in text.split("\n"):
        indented = line.startswith("    ") and line.strip() != ""
        if indented and not inside and out and out[-1].strip():
            out.append("")  # the run starts: a blank line ends the paragraph above it
        if not indented and inside and line.strip():
            out.append("")  # the run ends before a paragraph line
        inside = indented or (inside and not line.strip())
        out.append(line)
    return "\n".join(out)


class Formulas(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None and "```" not in obj.docstring.value:
            obj.docstring.value = blocks(obj.docstring.value)
