"""The tutorials: executed once, cached, rendered into the site.

``docs/tutorials/*.py`` are notebooks in jupytext's percent format. ``execute(path)`` runs one in
a fresh Jupyter kernel (nbclient) in a temporary directory and returns the executed notebook; a
cell that raises (a tutorial's ``assert`` included) raises ``nbclient.exceptions.CellExecutionError``
with the cell and its traceback. The executed notebook is cached in ``build/tutorials/`` under a
key made of the tutorial's text, every file of the glassnet package and this file, so a
tutorial runs once per change: ``tests/test_tutorials.py`` executes them (filling the cache), and
``mkdocs build`` (this file is also its hook) renders the cached notebooks into Markdown pages
with their printed output and figures, running only a tutorial that is not cached yet.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "docs" / "tutorials"
CACHE = ROOT / "build" / "tutorials"
TIMEOUT_S = 600  # per cell


def tutorials() -> list[Path]:
    return sorted(p for p in TUTORIALS.glob("*.py") if not p.name.startswith("_"))


def cache_key(path: Path) -> str:
    h = hashlib.sha256()
    h.update(path.name.encode())
    h.update(path.read_bytes())
    for f in [Path(__file__), *sorted((ROOT / "glassnet").rglob("*.py"))]:
        h.update(str(f.relative_to(ROOT)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def execute(path: str | os.PathLike, use_cache: bool = True):
    """The executed notebook of tutorial ``path`` (from the cache when its key matches)."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    path = Path(path).resolve()
    key = cache_key(path)
    cached, stamp = CACHE / f"{path.stem}.ipynb", CACHE / f"{path.stem}.key"
    if use_cache and cached.exists() and stamp.exists() and stamp.read_text() == key:
        return nbformat.read(cached, as_version=4)
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "MPLBACKEND")}
    # the kernel imports this checkout's glassnet, whatever is installed
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), saved["PYTHONPATH"]]))
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend draws the figures
    try:
        with tempfile.TemporaryDirectory(prefix=f"tutorial-{path.stem}-") as cwd:
            NotebookClient(
                nb, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": cwd}}
            ).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, cached)
    stamp.write_text(key)
    return nb


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _text(s: str) -> str:
    s = ANSI.sub("", s)
    lines = [line.rsplit("\r", 1)[-1] for line in s.split("\n")]  # a progress bar: its last state
    return "\n".join(lines).rstrip("\n")


def to_markdown(nb, stem: str) -> tuple[str, dict[str, bytes]]:
    """Markdown for one executed notebook, and its figures as {file name: PNG bytes}."""
    out: list[str] = [
        f"<!-- generated from docs/tutorials/{stem}.py by docs/hooks/tutorials.py: edit that file -->",
        "",
    ]
    figures: dict[str, bytes] = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            out += [cell.source, ""]
            continue
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        out += ["```python", cell.source.rstrip(), "```", ""]
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "stream":
                text = _text(output.get("text", ""))
                if text.strip():
                    out += ["```text", text, "```", ""]
            elif kind in ("display_data", "execute_result"):
                data = output.get("data", {})
                if "image/png" in data:
                    name = f"{stem}_cell{i}_{len(figures)}.png"
                    figures[name] = base64.b64decode(data["image/png"])
                    out += [f"![figure {len(figures)} of {stem}]({stem}_files/{name})", ""]
                elif "text/plain" in data:
                    out += ["```text", _text(data["text/plain"]), "```", ""]
    source = f"docs/tutorials/{stem}.py"
    out += [
        "---",
        "",
        f"This page is [`{source}`]({stem}.py) as the documentation build ran it. Run it yourself with "
        f"`python {source}`, or open it in Jupyter (`jupytext --to notebook {source}`).",
    ]
    return "\n".join(out) + "\n", figures


# --- the MkDocs hook -------------------------------------------------------------------------


def on_files(files, config):
    from mkdocs.structure.files import File

    for path in tutorials():
        page = f"tutorials/{path.stem}.md"
        if files.get_file_from_path(page) is not None:
            continue
        nb = execute(path)
        text, figures = to_markdown(nb, path.stem)
        files.append(File.generated(config, page, content=text))
        for name, png in figures.items():
            files.append(File.generated(config, f"tutorials/{path.stem}_files/{name}", content=png))
    return files
