"""The documentation's code runs as written, and the README stays a front page.

The how-to pages' Python blocks are executed as they stand (in a temporary directory), so a
renamed function or a changed signature fails here rather than on a reader's screen. The site's
own build and rendering are tested in ``tests/test_site.py``, the tutorials in
``tests/test_tutorials.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    "docs/howto/checkpoints.md",
    "docs/howto/own-layer.md",
    "docs/howto/data.md",
    "docs/howto/graphs.md",
    "docs/howto/diagnose.md",
]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


@pytest.mark.parametrize("page", PAGES)
def test_the_pages_python_runs_as_written(page, tmp_path, monkeypatch):
    blocks = python_blocks(ROOT / page)
    assert blocks, f"{page} has no Python block"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, code in enumerate(blocks):  # one namespace: a page's blocks build on each other
        exec(compile(code, f"{page} block {i}", "exec"), namespace)  # noqa: S102 (our own pages)


def test_the_container_example_checks_its_gradient_and_a_wrong_backward_fails(tmp_path, monkeypatch):
    """The container how-to claims its check catches a missing path in BP2's sum: prove it."""
    code = python_blocks(ROOT / "docs/howto/own-layer.md")[-1]
    assert "return dx_a + dx_g" in code
    monkeypatch.chdir(tmp_path)
    wrong = code.replace("return dx_a + dx_g", "return dx_a").split("gn.save(")[0]
    with pytest.raises(AssertionError):
        exec(compile(wrong, "own-layer.md (wrong backward)", "exec"), {})  # noqa: S102


def test_the_readme_is_a_front_page_linking_into_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for heading in ("## Install", "## Quick start", "## The command line at a glance", "## Documentation"):
        assert heading in readme, heading
    for target in re.findall(r"\]\((docs/[^)#]*)", readme):  # every link into the docs resolves
        assert (ROOT / target).exists(), target


def test_the_api_pages_keep_indented_formula_lines_as_blocks():
    """docs/hooks/griffe_formulas.py: an indented run under a sentence becomes a Markdown code
    block (blank lines around it), so the API pages show formulas line by line."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "griffe_formulas", ROOT / "docs" / "hooks" / "griffe_formulas.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = "Backward:\n    dW = delta^T x\n    db = sum delta\nThen prose.\n\nAlready apart:\n\n    y = x\n"
    assert module.blocks(text) == (
        "Backward:\n\n    dW = delta^T x\n    db = sum delta\n\nThen prose.\n\nAlready apart:\n\n    y = x\n"
    )
    assert module.blocks("no formulas\nat all") == "no formulas\nat all"
