"""Property-based fuzzing of every file reader (quick run): whatever the bytes, a reader returns
or raises glassnet's own error naming the file (``FileFormatError``; ``ConfigError`` for
experiment files). The cases, mutations and readers are those of ``benchmarks/fuzz_readers.py``,
whose long run (10,000 cases per reader) docs/reliability.md reports."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import fuzz_readers  # noqa: E402

CASES = 150


@pytest.mark.parametrize("reader", fuzz_readers.READERS, ids=lambda r: r.name)
def test_reader_survives_mutated_files(tmp_path, reader):
    counts = fuzz_readers.fuzz(reader, CASES, tmp_path)
    assert counts["cases"] >= CASES
    assert counts["rejected"] > 0  # the mutations do break files (the seeds are accepted, below)


@pytest.mark.parametrize("reader", fuzz_readers.READERS, ids=lambda r: r.name)
def test_every_seed_file_is_accepted(tmp_path, reader):
    for i, raw in enumerate(reader.seeds(tmp_path)):
        path = tmp_path / f"seed{i}"
        path.write_bytes(raw)
        reader.read(str(path))


def test_the_fuzzer_reports_a_crash(tmp_path):
    """A reader that fails with anything but FileFormatError fails the run (the check has teeth)."""

    def fragile(path):
        data = Path(path).read_bytes()
        if len(data) < 20:
            raise IndexError("a crash")

    reader = fuzz_readers.Reader("fragile", fragile, fuzz_readers.idx_seeds)
    with pytest.raises(IndexError, match="a crash"):
        fuzz_readers.fuzz(reader, 200, tmp_path)
