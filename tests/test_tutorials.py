"""Every tutorial (docs/tutorials/*.py, jupytext percent format) runs as a notebook, in a fresh
kernel, and its own assertions hold: a tutorial that stops teaching its point fails here.

Execution goes through ``docs/hooks/tutorials.py``, which caches the executed notebook under a
key of the tutorial's text and the whole glassnet package; ``mkdocs build`` renders the same
cached notebooks, so CI runs each tutorial once (a cache hit means this very text ran, against
this very code, and passed).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _hook():
    spec = importlib.util.spec_from_file_location("tutorials_hook", ROOT / "docs" / "hooks" / "tutorials.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hook = _hook()
TUTORIALS = hook.tutorials()

# the topics: one tutorial each
EXPECTED = {
    "ch1_first_network",
    "ch2_backpropagation",
    "ch3_improving_learning",
    "ch4_universality",
    "ch5_deep_networks",
    "ch6_convolutional",
    "losses_side_by_side",
    "softmax_mid_network",
    "gru_lstm_sequences",
    "dropout_study",
}


def test_every_topic_has_a_tutorial():
    assert {p.stem for p in TUTORIALS} == EXPECTED


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_says_what_to_see_and_checks_it(path):
    """Each states what the reader should see and the full-size numbers, and asserts its point."""
    text = path.read_text()
    assert "**What you should see**" in text and "**At full size**" in text, path.name
    asserts = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Assert)]
    assert asserts, f"{path.name} checks nothing"


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs_and_its_assertions_hold(path):
    nb = hook.execute(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), "a cell did not run"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors


def test_a_failing_assertion_fails_the_tutorial(tmp_path, monkeypatch):
    """The machinery itself: a tutorial whose point no longer holds raises, and is not cached."""
    from nbclient.exceptions import CellExecutionError

    bad = tmp_path / "bad.py"
    bad.write_text(
        '# %% [markdown]\n# A claim.\n\n# %%\nx = 1 + 1\nassert x == 3, "the point no longer holds"\n'
    )
    monkeypatch.setattr(hook, "CACHE", tmp_path / "cache")
    with pytest.raises(CellExecutionError, match="the point no longer holds"):
        hook.execute(bad)
    assert not (tmp_path / "cache" / "bad.ipynb").exists()
