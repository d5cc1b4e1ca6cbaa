"""Fuzz every file reader of glassnet: it must return or raise ``FileFormatError``, nothing else.

    python benchmarks/fuzz_readers.py                       # 10,000 cases per reader
    python benchmarks/fuzz_readers.py --cases 500 idx model  # fewer cases, some readers

Readers: idx (``read_idx``), model (``load``, ``load_metadata``, ``load_state``), checkpoint
(``read_checkpoint`` and a restore into a fresh run), npy (``io.load_npy``), run-config (the
``config.json`` that ``glassnet train --resume`` reads).

Each case starts from a valid file made by glassnet itself (a seed) and mutates it with
hypothesis: bit flips, truncation, insertions and overwrites, whole random files, header
edits (the IDX magic number, dimension count and sizes; the safetensors header length) and,
for safetensors files, structure-aware edits of the JSON header and of the JSON documents in
its metadata (a value replaced by another of any JSON type, huge integers, NaN, deep nesting,
a key removed), re-encoded so that the file still parses as far as that edit, half of them
without the checksums (as an earlier version wrote the file), which would refuse them first. Any exception
other than ``FileFormatError`` is a crash; hypothesis then shrinks it to a small example and
this script prints it and exits 1. ``tests/test_fuzz.py`` runs the same readers for a few
hundred cases each.

Adding a reader is one line in ``READERS``: a name, a function reading a path, and a function
writing the valid seed files into a directory.
"""

from __future__ import annotations

import argparse
import gzip
import json
import struct
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

import glassnet as gn
from glassnet.checkpoint import Run, read_checkpoint
from glassnet.cli import RUN_OPTIONS, build_parser, read_run_config
from glassnet.data import as_dataset
from glassnet.datasets import read_idx
from glassnet.errors import FileFormatError
from glassnet.experiment_config import ConfigError, load_config


# --- seeds: valid files, one list per reader ---------------------------------------------------
def idx_bytes(a: np.ndarray) -> bytes:
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    head = bytes([0, 0, codes[a.dtype.str[1:]], a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def idx_seeds(directory: Path) -> list[bytes]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 4, 4), dtype=np.uint8)
    arrays = [images, np.arange(7, dtype=np.uint8), rng.standard_normal((3, 2)).astype("f4"),
              np.arange(6, dtype="i2").reshape(2, 3), np.zeros((0, 3), "f8"),
              np.arange(4, dtype="i4")]  # fmt: skip
    out = [idx_bytes(a) for a in arrays]
    return out + [gzip.compress(b, mtime=0) for b in out[:3]]


def small_model() -> gn.Sequential:
    rng = np.random.default_rng(0)
    return gn.Sequential(
        gn.Conv2d(1, 2, 3, padding=1, rng=rng), gn.BatchNorm2d(2), gn.ReLU(), gn.MaxPool2d(2),
        gn.Flatten(), gn.Dropout(0.2), gn.Linear(8, 3, rng=rng), gn.BatchNorm1d(3),
    )  # fmt: skip


def model_seeds(directory: Path) -> list[bytes]:
    seeds = []
    for model in (small_model(), gn.Sequential(gn.Linear(3, 2), gn.GELU(), gn.Linear(2, 1, bias=False))):
        gn.save(model, directory / "m.safetensors", metadata={"input_shape": [1, 4, 4], "note": "seed"})
        seeds.append((directory / "m.safetensors").read_bytes())
    return seeds


def read_model(path: str) -> None:
    gn.load(path)
    gn.load_metadata(path)
    gn.io.load_state(path)


CHECKPOINT_DATA = (
    np.random.default_rng(1).random((12, 1, 4, 4), dtype=np.float32),
    np.random.default_rng(2).integers(0, 3, 12),
)


def checkpoint_run(directory: Path):
    """A fresh set of the objects a checkpoint of the seed run restores into."""
    model = small_model()
    opt = gn.optim.Adam(model.parameters(), lr=0.01)
    schedule = gn.schedules.LinearWarmup(opt, 2, after=gn.schedules.CosineAnnealingLR(opt, 4))
    callbacks = [gn.EarlyStopping("loss", patience=9, restore_best=True), gn.CSVLogger(directory / "m.csv")]
    return model, opt, schedule, callbacks


class StopAt(gn.Callback):
    """Interrupt a run after ``step`` batches (its last checkpoint stays behind)."""

    def __init__(self, step: int) -> None:
        self.step, self.seen = step, 0

    def on_batch_end(self, batch, logs):
        self.seen += 1
        if self.seen == self.step:
            raise KeyboardInterrupt


def checkpoint_seeds(directory: Path) -> list[bytes]:
    seeds = []
    for stop in (5, 9):  # mid-epoch (with the epoch's order) and at an epoch's end
        model, opt, schedule, callbacks = checkpoint_run(directory)
        try:
            gn.fit(model, gn.CrossEntropyLoss(), opt, CHECKPOINT_DATA, epochs=4, batch_size=3,
                   callbacks=[*callbacks, StopAt(stop)], rng=np.random.default_rng(0), scheduler=schedule,
                   verbose=False, checkpoint=directory / "c.safetensors", checkpoint_every=2)  # fmt: skip
        except KeyboardInterrupt:
            pass
        seeds.append((directory / "c.safetensors").read_bytes())
    return seeds


def restore_checkpoint(path: str) -> None:
    """Read a checkpoint and restore it into a fresh run, as ``fit(resume_from=...)`` does."""
    snapshot = read_checkpoint(path)
    model, opt, schedule, callbacks = checkpoint_run(Path(tempfile.gettempdir()))
    history = gn.History()
    for cb in [history, *callbacks]:
        cb.model, cb.optimizer = model, opt
        cb.on_train_begin({})
    train = as_dataset(CHECKPOINT_DATA, "train_data")
    Run(model, opt, np.random.default_rng(0), schedule, history, callbacks, train, 3, True).restore(snapshot)


def npy_seeds(directory: Path) -> list[bytes]:
    seeds = []
    for a in (np.arange(12, dtype=np.float32).reshape(3, 4), np.zeros((2, 1, 3, 3), np.uint8), np.array(3.5)):
        np.save(directory / "a.npy", a, allow_pickle=False)
        seeds.append((directory / "a.npy").read_bytes())
    return seeds


def run_config_seeds(directory: Path) -> list[bytes]:
    """``config.json`` of ``glassnet train`` runs, as ``--resume`` reads them."""
    defaults = vars(build_parser().parse_args(["train"]))
    base = {k: defaults[k] for k in RUN_OPTIONS}
    variants = [base, {**base, "model": "cnn", "epochs": 3, "lr": 0.01, "flip": True, "checkpoint_every": 50}]
    return [json.dumps(v, indent=2).encode() for v in variants]


def experiment_seeds(directory: Path) -> list[bytes]:
    """The experiment files shipped in experiments/ (``glassnet compare`` reads them)."""
    root = Path(__file__).resolve().parent.parent / "experiments"
    return [f.read_bytes() for f in sorted(root.glob("*.toml"))]


@dataclass
class Reader:
    name: str
    read: Callable[[str], object]  # returns, or raises the reader's own error (below)
    seeds: Callable[[Path], list[bytes]]  # valid files to mutate
    errors: tuple[type[Exception], ...] = (FileFormatError,)  # glassnet's errors for a bad file


READERS = [
    Reader("idx", read_idx, idx_seeds),
    Reader("model", read_model, model_seeds),
    Reader("checkpoint", restore_checkpoint, checkpoint_seeds),
    Reader("npy", gn.io.load_npy, npy_seeds),
    Reader("run-config", read_run_config, run_config_seeds),
    Reader("experiment", load_config, experiment_seeds, (ConfigError,)),
]


# --- mutations ----------------------------------------------------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**200), max_value=2**200)
    | st.sampled_from([2**63, 2**64, -(2**63) - 1, 2**1100, -(2**1100)]) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


def _nodes(tree, path=()):
    """Every (path, value) in a JSON tree, the root first."""
    yield path, tree
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for k, v in items:
        yield from _nodes(v, (*path, k))


NEST = "<nesting bomb>"


def dumps(tree) -> str:
    return json.dumps(tree).replace(json.dumps(NEST), "[" * 5000 + "]" * 5000)


def mutate_json(draw, tree):
    nodes = list(_nodes(tree))
    path, _ = nodes[draw(st.integers(0, len(nodes) - 1))]
    action = draw(st.sampled_from(["replace", "replace", "delete", "nest"]))
    if not path:
        return draw(JSON_VALUES) if action != "nest" else NEST
    parent = tree
    for k in path[:-1]:
        parent = parent[k]
    if action == "delete":
        del parent[path[-1]]
    elif action == "nest":  # deep nesting, a bomb for a recursive reader: spliced in by dumps()
        parent[path[-1]] = NEST
    else:
        parent[path[-1]] = draw(JSON_VALUES)
    return tree


def mutate_safetensors(draw, raw: bytes) -> bytes:
    """Edit the JSON header, or one JSON document in its metadata, and re-encode the file."""
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = header.get("__metadata__", {})
    inner = [k for k, v in meta.items() if v.startswith(("{", "["))]
    if inner and draw(st.booleans()):
        key = draw(st.sampled_from(inner))
        meta[key] = dumps(mutate_json(draw, json.loads(meta[key])))
    else:
        header = mutate_json(draw, header)
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if isinstance(meta, dict) and draw(st.booleans()):
        # as an earlier glassnet wrote it: the edit then reaches the checks behind the checksums
        meta.pop(gn.io.CHECKSUMS, None)
    text = dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + raw[8 + n :]


def mutate_bytes(draw, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite", "header"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif action == "truncate":
            del data[pos:]
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif action == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[pos : pos + len(chunk)] = chunk
        else:  # the first bytes: IDX magic, type code, ndim, sizes; a safetensors header length
            value = draw(st.sampled_from([0, 1, 2, 3, 255, 2**31, 2**32 - 1, 2**40, 2**63, 2**64 - 1]))
            width = draw(st.sampled_from([1, 4, 8]))
            at = draw(st.sampled_from([0, 2, 3, 4, 8]))
            data[at : at + width] = (value % 2 ** (8 * width)).to_bytes(
                width, draw(st.sampled_from(["big", "little"]))
            )
    return bytes(data)


def mutated(seeds: list[bytes]):
    """A strategy: a seed file mutated, or random bytes."""

    @st.composite
    def build(draw):
        kind = draw(st.sampled_from(["bytes", "bytes", "json", "json", "gzip", "random"]))
        if kind == "random":
            return draw(st.binary(max_size=300))
        raw = draw(st.sampled_from(seeds))
        if kind == "json" and raw[8:9] == b"{":
            return mutate_safetensors(draw, raw)
        if kind == "json" and raw[:1] == b"{":  # a JSON file
            return dumps(mutate_json(draw, json.loads(raw))).encode()
        if kind == "gzip":  # a compressed copy of a mutated file, or a mutated compressed file
            return (
                mutate_bytes(draw, gzip.compress(raw, mtime=0))
                if draw(st.booleans())
                else gzip.compress(mutate_bytes(draw, raw), mtime=0)
            )
        return mutate_bytes(draw, raw)

    return build()


# --- the run ------------------------------------------------------------------------------------
def fuzz(reader: Reader, cases: int, directory: Path, seed: int = 0) -> dict[str, int]:
    """Run ``cases`` mutated files through ``reader``; counts of accepted and rejected files.
    A crash (any exception but the reader's own errors) propagates, shrunk by hypothesis."""
    seeds = reader.seeds(directory)
    path = directory / f"case-{reader.name}"
    counts = {"cases": 0, "accepted": 0, "rejected": 0}

    @settings(max_examples=cases, deadline=None, database=None, derandomize=False, print_blob=False,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @hypothesis_seed(seed)  # reproducible runs
    @given(mutated(seeds))
    def case(raw: bytes) -> None:
        path.write_bytes(raw)
        counts["cases"] += 1
        try:
            reader.read(str(path))
        except reader.errors as e:
            assert str(path) in str(e), f"the message does not name the file: {e}"
            counts["rejected"] += 1
        else:
            counts["accepted"] += 1

    case()
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("readers", nargs="*", help=f"default: all of {', '.join(r.name for r in READERS)}")
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    chosen = [r for r in READERS if not args.readers or r.name in args.readers]
    print(f"{'reader':12s} {'cases':>7s} {'accepted':>9s} {'rejected':>9s} {'crashes':>8s} {'seconds':>8s}")
    crashed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for reader in chosen:
            start = time.perf_counter()
            try:
                c = fuzz(reader, args.cases, Path(tmp), args.seed)
                crashes = 0
            except Exception:  # the crash, shrunk by hypothesis to a small example
                c, crashes = {"cases": "-", "accepted": "-", "rejected": "-"}, 1
                print(f"{reader.name}: CRASH", file=sys.stderr)
                traceback.print_exc()
            crashed += crashes
            seconds = time.perf_counter() - start
            print(f"{reader.name:12s} {c['cases']:>7} {c['accepted']:>9} {c['rejected']:>9} {crashes:>8} "
                  f"{seconds:8.1f}", flush=True)  # fmt: skip
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
