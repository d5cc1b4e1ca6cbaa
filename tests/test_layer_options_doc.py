"""docs/layer-options.md runs as written, and every ``print(...)  # shown`` prints what it shows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "layer-options.md"


def test_the_layer_options_page_runs_and_prints_what_it_says():
    text = PAGE.read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", text, re.S))
    shown = re.findall(r"^[ \t]*print\(.*\)[ \t]+# (.*)$", code, re.M)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(PAGE), "exec"), {})
    printed = out.getvalue().splitlines()
    assert len(printed) == len(shown) >= 10
    for line, comment in zip(printed, shown):
        if comment.startswith("..."):
            assert line.endswith(comment[3:].strip()), (line, comment)
        else:
            assert comment.startswith(line), (line, comment)
