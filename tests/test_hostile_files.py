"""Hostile and broken files: every reader answers with glassnet's ``FileFormatError``, naming
the file and the problem, and never runs anything a file carries.

Readers: ``gn.load``, ``gn.load_metadata``, ``gn.io.load_state`` (models), ``read_checkpoint``
(checkpoints), ``read_idx`` and the MNIST loaders (IDX), ``gn.io.load_npy`` (``.npy``).
"""

from __future__ import annotations

import ast
import gzip
import json
import os
import pickle
import shutil
import socket
import stat
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

import glassnet as gn
from glassnet.checkpoint import read_checkpoint
from glassnet.datasets import load_mnist, read_idx
from glassnet.errors import FileFormatError

MODEL_READERS = [gn.load, gn.load_metadata, gn.io.load_state, read_checkpoint]
ALL_READERS = [*MODEL_READERS, read_idx, gn.io.load_npy]


class Payload:
    """Unpickling this runs ``os.system``: what a hostile pickle file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def assert_refused(reader, path: Path, problem: str) -> FileFormatError:
    with pytest.raises(FileFormatError) as info:
        reader(path)
    assert info.value.path == str(path) and str(info.value).startswith(f"{path}: ")
    assert problem in info.value.problem, info.value.problem
    return info.value


def idx(a: np.ndarray, code: int = 0x08) -> bytes:
    return (
        bytes([0, 0, code, a.ndim])
        + np.array(a.shape, ">u4").tobytes()
        + a.astype(a.dtype.newbyteorder(">")).tobytes()
    )


def safetensors_file(path: Path, header: bytes, data: bytes = b"") -> Path:
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)
    return path


# --- pickles -------------------------------------------------------------------------------------
@pytest.mark.parametrize("reader", ALL_READERS, ids=lambda r: r.__name__)
def test_a_pickle_payload_is_never_run(tmp_path, reader):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(FileFormatError) as info:
        reader(path)
    assert info.value.path == str(path)
    assert not marker.exists()


def test_an_object_npy_holding_a_pickle_is_refused_unread(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npy"
    np.save(path, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    assert_refused(gn.io.load_npy, path, "holds Python objects (object), which only pickle could read")
    assert not marker.exists()


def test_glassnet_never_imports_pickle_and_loads_npy_only_without_it():
    """Every module: no pickle (or marshal, shelve, dill); every np.load passes allow_pickle=False."""
    for source in sorted(Path(gn.__file__).parent.rglob("*.py")):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + (
                    [node.module] if isinstance(node, ast.ImportFrom) else []
                )
                assert not {"pickle", "cPickle", "marshal", "shelve", "dill", "joblib"} & {
                    (n or "").split(".")[0] for n in names
                }, source
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
            ):
                if isinstance(node.func.value, ast.Name) and node.func.value.id in ("np", "numpy"):
                    flags = {k.arg: k.value for k in node.keywords}
                    assert "allow_pickle" in flags and flags["allow_pickle"].value is False, source


# --- safetensors: huge or malformed headers ----------------------------------------------------
@pytest.mark.parametrize("reader", MODEL_READERS, ids=lambda r: r.__name__)
def test_a_header_length_beyond_the_file(tmp_path, reader):
    path = tmp_path / "huge.safetensors"
    path.write_bytes((2**63).to_bytes(8, "little") + b"{}")
    assert_refused(reader, path, f"header length {2**63} is larger than the file (10 bytes)")


def test_a_header_longer_than_the_limit(tmp_path):
    path = tmp_path / "big.safetensors"
    n = gn.io.MAX_HEADER + 1
    with open(path, "wb") as f:  # a sparse file: the length is real, the disk use is not
        f.write(n.to_bytes(8, "little") + b"{")
        f.truncate(8 + n)
    for reader in MODEL_READERS:
        assert_refused(reader, path, f"safetensors header of {n} bytes, more than the 100000000 allowed")


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (b"{not json", "not a valid safetensors file"),
        (b"[" * 100_000 + b"]" * 100_000, "header is not a JSON object"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "not a valid safetensors file"),
        (b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 800]}}', "not a valid safetensors file"),
        (b'{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}', "not a valid safetensors file"),
        (b'{"w": {"dtype": "EVIL", "shape": [2], "data_offsets": [0, 8]}}', "not a valid safetensors file"),
        (b'{"__metadata__": {"glassnet_format": 1}}', "not a valid safetensors file"),
    ],
    ids=["not json", "array bomb", "object bomb", "offsets out of range", "wrong size", "dtype", "metadata"],
)
@pytest.mark.parametrize("reader", MODEL_READERS, ids=lambda r: r.__name__)
def test_a_malformed_safetensors_header(tmp_path, reader, header, problem):
    path = safetensors_file(tmp_path / "bad.safetensors", header, b"\0" * 8)
    assert_refused(reader, path, problem)


def test_a_model_naming_an_unknown_layer_or_with_wrong_shapes(tmp_path):
    arch = {"type": "Sequential", "config": {}, "children": [{"type": "subprocess.Popen", "config": {}}]}
    path = tmp_path / "unknown.safetensors"
    safetensors.numpy.save_file(
        {}, str(path), metadata={"glassnet_format": "1", "glassnet_architecture": json.dumps(arch)}
    )
    assert_refused(gn.load, path, "unknown layer type 'subprocess.Popen'")

    gn.save(gn.Sequential(gn.Linear(4, 3)), tmp_path / "m.safetensors")
    tensors = gn.io.load_state(tmp_path / "m.safetensors")
    tensors["0.W"] = np.zeros((3, 4), np.float32)
    raw = (tmp_path / "m.safetensors").read_bytes()
    meta = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])["__metadata__"]
    del meta[gn.io.CHECKSUMS]  # as an earlier glassnet wrote it, or the checksums would refuse it
    safetensors.numpy.save_file(tensors, str(tmp_path / "shape.safetensors"), metadata=meta)
    assert_refused(
        gn.load,
        tmp_path / "shape.safetensors",
        "needs tensor '0.W' of shape (4, 3), the file holds shape (3, 4)",
    )


# --- size bombs: a config asking for more than the file holds ------------------------------------
# Every exported layer class, with configs that reach every branch of its state_shapes (bias or
# not, affine or not, stacked and bidirectional). A new layer must add its row here.
STATE_CONFIGS = {
    "Linear": [dict(in_features=3, out_features=4), dict(in_features=5, out_features=1, bias=False)],
    "Conv2d": [
        dict(in_channels=2, out_channels=3, kernel_size=3),
        dict(in_channels=1, out_channels=2, kernel_size=[2, 3], stride=2, bias=False),
        dict(in_channels=4, out_channels=6, kernel_size=3, groups=2, padding="same", padding_mode="reflect"),
    ],
    "Conv1d": [
        dict(in_channels=2, out_channels=3, kernel_size=3),
        dict(in_channels=1, out_channels=4, kernel_size=2, dilation=2, bias=False),
        dict(in_channels=6, out_channels=3, kernel_size=2, groups=3, padding_mode="circular"),
    ],
    "BatchNorm1d": [dict(num_features=3), dict(num_features=5, affine=False, momentum=None)],
    "BatchNorm2d": [
        dict(num_features=2),
        dict(num_features=4, affine=False),
        dict(num_features=3, track_running_stats=False),
    ],
    "RNN": [
        dict(input_size=3, hidden_size=4),
        dict(input_size=2, hidden_size=3, num_layers=3, bidirectional=True, nonlinearity="relu"),
        dict(input_size=1, hidden_size=2, num_layers=2, bias=False),
        dict(input_size=2, hidden_size=2, num_layers=2, dropout=0.3),
    ],
    "GRU": [
        dict(input_size=3, hidden_size=4),
        dict(input_size=2, hidden_size=3, num_layers=2, bidirectional=True, bias=False),
    ],
    "LSTM": [
        dict(input_size=3, hidden_size=4, bias=False),
        dict(input_size=2, hidden_size=5, num_layers=3, bidirectional=True),
    ],
    "Dropout": [{}, dict(p=0.3)],
    "GaussianDropout": [dict(rate=0.2)],
    "Flatten": [{}],
    "Reshape": [dict(shape=[2, 3])],
    "LastStep": [{}],
    "MaxPool1d": [dict(kernel_size=2), dict(kernel_size=3, dilation=2, ceil_mode=True)],
    "MaxPool2d": [dict(kernel_size=2, stride=1)],
    "AvgPool1d": [dict(kernel_size=3, padding=1)],
    "AvgPool2d": [
        dict(kernel_size=2),
        dict(kernel_size=3, padding=1, ceil_mode=True, count_include_pad=False),
    ],
    "GlobalAvgPool2d": [{}],
    "GlobalMaxPool2d": [{}],
    "ELU": [dict(alpha=0.5)],
    "GELU": [dict(approximate="tanh")],
    "LeakyReLU": [dict(negative_slope=0.2)],
    "ReLU": [{}],
    "Sigmoid": [{}],
    "Softmax": [dict(axis=1)],
    "Softplus": [dict(beta=2.0, threshold=5.0)],
    "Tanh": [{}],
    "Identity": [{}],
    "Add": [{}],
    "Multiply": [{}],
    "Concat": [dict(axis=-1)],
    "Residual": [dict(block=gn.Linear(2, 2)), dict(block=gn.Linear(2, 3), shortcut=gn.Linear(2, 3))],
    "Graph": [
        dict(
            inputs="x",
            nodes=[("h", gn.Linear(2, 3), "x"), ("a", gn.ReLU(), "h"), ("s", gn.Add(), ["a", "h"])],
            outputs="s",
        ),
    ],
    "LayerNorm": [
        dict(normalized_shape=4),
        dict(normalized_shape=[2, 3], bias=False),
        dict(normalized_shape=3, elementwise_affine=False),
    ],
    "Embedding": [
        dict(num_embeddings=5, embedding_dim=3),
        dict(num_embeddings=4, embedding_dim=2, padding_idx=-1),
    ],
    "PositionalEmbedding": [dict(num_positions=6, embedding_dim=3)],
    "ClassToken": [dict(embedding_dim=3)],
    "MultiheadAttention": [
        dict(embed_dim=4, num_heads=2),
        dict(embed_dim=6, num_heads=3, bias=False, dropout=0.1),
    ],
    "TransformerEncoderLayer": [
        dict(d_model=4, nhead=2, dim_feedforward=8),
        dict(
            d_model=6, nhead=3, dim_feedforward=5, activation="gelu", norm_first=True, bias=False, causal=True
        ),
    ],
    "Permute": [dict(dims=[0, 2, 1])],
    "Token": [dict(index=-1)],
    "TokenMean": [{}],
}


def layer_classes() -> dict[str, type]:
    return {
        name: getattr(gn.layers, name)
        for name in gn.layers.__all__
        if isinstance(getattr(gn.layers, name), type) and issubclass(getattr(gn.layers, name), gn.Module)
    }


def own_state_shapes(layer: gn.Module) -> dict[str, tuple[int, ...]]:
    """What ``state_shapes`` must give: a layer's own state, and that of the children it builds
    itself (an encoder layer's attention and feed-forward); a container given its children
    (``Residual``, ``Graph``) has them checked one by one as they are loaded."""
    from glassnet.io import _given_children

    if layer.children and not _given_children(type(layer)):
        return {k: np.shape(v) for k, v in layer.state_dict().items()}
    return {p.name: p.shape for p in layer.params} | {k: np.shape(b) for k, b in layer.buffers().items()}


def test_every_layer_computes_its_state_shapes_from_its_config(tmp_path):
    """What ``gn.load`` checks before it builds a layer is exactly what the layer then holds."""
    classes = layer_classes()
    assert set(classes) == set(STATE_CONFIGS), "add every new layer class to STATE_CONFIGS"
    for name, cls in classes.items():
        for config in STATE_CONFIGS[name]:
            layer = cls(**config)
            shapes = own_state_shapes(layer)
            assert cls.state_shapes(**config) == shapes, (name, config)
            assert cls.state_shapes(**layer.config()) == shapes, (name, config)
            if shapes:
                assert cls.state_shapes.__func__ is not gn.Module.state_shapes.__func__, name
            gn.save(gn.Sequential(layer), tmp_path / "m.safetensors")
            assert own_state_shapes(gn.load(tmp_path / "m.safetensors").layers[0]) == shapes


def sizing_keys(cls: type, config: dict) -> list[str]:
    """The config's integer values that the state's shapes depend on (found by changing each)."""
    keys = []
    for key, value in config.items():
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                changed = cls.state_shapes(**{**config, key: value + 1}) != cls.state_shapes(**config)
            except ValueError:  # a value the config cannot take (groups must divide the channels)
                changed = True  # refused like a huge one must be: it joins the bombs
            if changed:
                keys.append(key)
    return keys


def bomb_cases() -> list[tuple[str, dict, dict]]:
    """(name, the small config whose tensors the file stores, the config the file declares)."""
    cases = []
    for name, configs in STATE_CONFIGS.items():
        cls = getattr(gn.layers, name)
        for config in configs:
            for key in sizing_keys(cls, config):
                for huge in (10**5, 10**9, 10**4000):
                    cases.append((name, config, {**config, key: huge}))
    stacked = dict(input_size=1, hidden_size=1)  # the reports, and the limit itself
    cases += [
        ("RNN", stacked, {**stacked, "num_layers": 1_000_000}),
        ("RNN", stacked, {**stacked, "num_layers": 10**9, "bidirectional": True}),
        ("GRU", stacked, {"input_size": 500, "hidden_size": 500, "num_layers": 200}),
        ("LSTM", stacked, dict(input_size=4096, hidden_size=4096, num_layers=1000, bidirectional=True)),
        ("Conv2d", dict(in_channels=1, out_channels=1, kernel_size=1),
         dict(in_channels=1, out_channels=1, kernel_size=[10**5, 10**5])),
    ]  # fmt: skip
    return cases


def test_a_model_config_cannot_make_load_allocate_more_than_the_file_holds(tmp_path):
    """A few hundred bytes naming a huge layer (``RNN(1, 1, num_layers=1000000)`` took 41 s and
    3 GB; ``GRU(500, 500, num_layers=200)`` 2.4 GB) are refused at once, before its constructor
    allocates anything: for every layer with state, each sizing argument made huge in turn."""
    import time
    import tracemalloc

    cases = bomb_cases()
    assert {name for name, _, _ in cases} == {"Linear", "Conv2d", "Conv1d", "BatchNorm1d", "BatchNorm2d",
                                              "RNN", "GRU", "LSTM", "LayerNorm", "Embedding",
                                              "PositionalEmbedding", "ClassToken",
                                              "MultiheadAttention", "TransformerEncoderLayer"}  # fmt: skip
    path = tmp_path / "bomb.safetensors"
    for name, small, declared in cases:
        tensors = {
            f"0.{k}": np.ascontiguousarray(v)
            for k, v in getattr(gn.layers, name)(**small).state_dict().items()
        }
        arch = {
            "type": "Sequential",
            "config": {},
            "children": [{"type": name, "config": declared, "children": []}],
        }
        safetensors.numpy.save_file(
            tensors, str(path), metadata={"glassnet_format": "1", "glassnet_architecture": json.dumps(arch)}
        )
        assert path.stat().st_size < 20_000  # a few kilobytes
        tracemalloc.start()
        start = time.perf_counter()
        try:
            with pytest.raises(FileFormatError) as info:
                gn.load(path)
            seconds, peak = time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert info.value.path == str(path)
        assert f"{name} config" in info.value.problem or f"cannot build layer {name}" in info.value.problem
        assert len(str(info.value)) < 2000, "a message must stay readable"
        # refused in milliseconds with kilobytes; the bounds leave room for a slow, busy machine
        assert seconds < 1.0 and peak < 20_000_000, (name, declared, seconds, peak)


def test_a_checkpoint_of_the_wrong_kind(tmp_path):
    gn.save(gn.Sequential(gn.ReLU()), tmp_path / "model.safetensors")
    assert_refused(read_checkpoint, tmp_path / "model.safetensors", "not a glassnet checkpoint")
    path = tmp_path / "c.safetensors"
    for bad, problem in [
        ("{", "glassnet_checkpoint metadata is not valid JSON"),
        ("[]", "must be an object with exactly the keys"),
        (
            json.dumps({"position": 1, "rng": {}, "callbacks": [], "config": {}, "scheduler": None}),
            "wrong type",
        ),
    ]:
        safetensors.numpy.save_file(
            {}, str(path), metadata={"glassnet_format": "1", "glassnet_checkpoint": bad}
        )
        assert_refused(read_checkpoint, path, problem)
    safetensors.numpy.save_file({}, str(path), metadata={"glassnet_format": "2", "glassnet_checkpoint": "{}"})
    assert_refused(read_checkpoint, path, "unsupported glassnet_format '2'")


# --- not regular files: a FIFO, a directory, a device, a socket ---------------------------------
def refused_at_once(reader, path: Path, timeout: float = 10.0) -> BaseException:
    """What ``reader(path)`` raises, run in a thread: a reader that blocks on a FIFO fails the
    test after ``timeout`` seconds instead of hanging it (a writer is then opened to free it)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            reader(path)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 -- handed to the test thread
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        if stat.S_ISFIFO(os.stat(path).st_mode):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # EOF for the blocked reader
        pytest.fail(f"{reader.__name__}({path}) still blocked after {timeout} s")
    assert outcome[0] is not None, f"{reader.__name__} read {path}"
    return outcome[0]


@pytest.fixture
def special_files():
    """A FIFO, a directory, a character device and a socket (a short path: sockets' limit)."""
    directory = Path(tempfile.mkdtemp(prefix="gn"))
    os.mkfifo(directory / "fifo")
    (directory / "dir").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(directory / "sock"))
    files = {"FIFO": (directory / "fifo", "is a named pipe (FIFO)"),
             "directory": (directory / "dir", "is a directory"),
             "/dev/zero": (Path("/dev/zero"), "is a character device"),
             "socket": (directory / "sock", "is a socket")}  # fmt: skip
    yield files
    sock.close()
    shutil.rmtree(directory)


@pytest.mark.parametrize("reader", ALL_READERS, ids=lambda r: r.__name__)
def test_a_fifo_device_directory_or_socket_is_refused_at_once(special_files, reader):
    """A FIFO given as a model, checkpoint, IDX or .npy path hung the reader forever."""
    for kind, (path, problem) in special_files.items():
        error = refused_at_once(reader, path)
        if reader is read_checkpoint and kind == "directory":  # a run directory: its checkpoint
            assert isinstance(error, FileNotFoundError) and "checkpoint.safetensors" in str(error)
            continue
        assert isinstance(error, FileFormatError), (kind, error)
        assert error.path == str(path) and error.problem.startswith(problem), error


def test_a_fifo_as_the_checkpoint_of_a_run_directory_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "checkpoint.safetensors")
    error = refused_at_once(read_checkpoint, tmp_path)
    assert isinstance(error, FileFormatError) and error.path == str(tmp_path / "checkpoint.safetensors")


def test_open_regular_reads_a_regular_file_and_names_the_missing_one(tmp_path):
    (tmp_path / "a.txt").write_text("héllo", encoding="utf-8")
    with gn.io.open_regular(tmp_path / "a.txt") as f:
        assert f.read() == "héllo".encode()
    with gn.io.open_regular(tmp_path / "a.txt", "r", encoding="utf-8") as f:
        assert f.read() == "héllo"
    with pytest.raises(FileNotFoundError, match="nothing.txt"):
        gn.io.open_regular(tmp_path / "nothing.txt")
    with pytest.raises(ValueError, match="mode must be 'rb' or 'r'"):
        gn.io.open_regular(tmp_path / "a.txt", "wb")


# --- IDX -------------------------------------------------------------------------------------------
IMAGES = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (idx(IMAGES)[:-5], "should be 24 bytes, found 19 (truncated)"),
        (idx(IMAGES) + b"x" * 7, "should be 24 bytes, found 31 (7 trailing bytes)"),
        (b"\x00\x00\x08\x02" + np.array([2**32 - 1, 2**32 - 1], ">u4").tobytes() + b"\0" * 10,
         "should be 18446744065119617025 bytes"),
        (b"PK\x03\x04" + idx(IMAGES)[4:], "bad IDX magic number 504b0304"),
        (b"\x00\x00\x07\x03" + idx(IMAGES)[4:], "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\xff" + idx(IMAGES)[4:], "truncated IDX header: 255 dimensions need 1024 bytes"),
        (b"\x00\x00", "not an IDX file: 2 bytes"),
    ],
    ids=["truncated", "oversized", "absurd dims", "wrong magic", "type code", "ndim", "tiny"],
)  # fmt: skip
def test_broken_idx_files(tmp_path, data, problem, gz):
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    assert_refused(read_idx, path, problem)


def test_a_gzip_bomb_under_a_lying_header_is_refused_before_decompressing(tmp_path):
    """Declaring (2^32 - 1)^2 bytes, 8 KB of gzip were decompressed whole before the file was
    found truncated (a 1 MB bomb cost 2 GB of memory); no deflate stream expands more than
    1032:1, so the claim is refused from the file's size."""
    path = tmp_path / "bomb-idx3-ubyte.gz"
    header = b"\x00\x00\x08\x02" + np.array([2**32 - 1, 2**32 - 1], ">u4").tobytes()
    path.write_bytes(gzip.compress(header + bytes(8 << 20), compresslevel=9, mtime=0))
    assert path.stat().st_size < 10_000
    assert_refused(read_idx, path, "should be 18446744065119617025 bytes, more than the")
    assert_refused(read_idx, path, "gzip file can hold (deflate expands at most 1032:1)")


def test_a_gzip_bomb_is_not_decompressed_to_the_end(tmp_path):
    path = tmp_path / "bomb.gz"
    bomb = gzip.compress(idx(np.zeros(1, np.uint8)) + bytes(3 << 20), compresslevel=9, mtime=0)
    path.write_bytes(bomb)
    assert len(bomb) < 10_000
    assert_refused(read_idx, path, "should be 1 bytes, found more than")


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(idx(IMAGES), mtime=0)[:-12])
    assert_refused(read_idx, path, "corrupt gzip data")


def write_set(directory: Path, images: np.ndarray, labels: np.ndarray) -> dict[str, str]:
    names = {"train-images-idx3-ubyte": images, "train-labels-idx1-ubyte": labels,
             "t10k-images-idx3-ubyte": images, "t10k-labels-idx1-ubyte": labels}  # fmt: skip
    for name, a in names.items():
        (directory / name).write_bytes(idx(a))
    return {f"{name}.gz": "0" * 32 for name in names}  # uncompressed files carry no checksum


@pytest.mark.parametrize(
    ("images", "labels", "bad", "problem"),
    [
        (IMAGES, np.array([1, 2, 3], np.uint8), "train-labels-idx1-ubyte", "3 labels for 2 images"),
        (IMAGES.reshape(2, 12), np.array([1, 2], np.uint8), "train-images-idx3-ubyte",
         "expected uint8 images of shape (N, rows, cols), got uint8 of shape (2, 12)"),
        (IMAGES, np.array([[1, 2]], np.uint8), "train-labels-idx1-ubyte", "expected 1-D integer labels"),
        (IMAGES, np.array([1, 12], np.uint8), "train-labels-idx1-ubyte",
         "labels should be in 0..9, found 1..12"),
    ],
    ids=["label count", "image dims", "label dims", "label range"],
)  # fmt: skip
def test_loaders_check_what_the_files_hold(tmp_path, images, labels, bad, problem):
    files = write_set(tmp_path, images, labels)
    with pytest.raises(FileFormatError) as info:
        load_mnist(tmp_path, download=False, files=files)
    assert info.value.path == str(tmp_path / bad) and problem in info.value.problem


# --- .npy ----------------------------------------------------------------------------------------
def test_broken_npy_files(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(10, dtype=np.float32))
    good = path.read_bytes()
    path.write_bytes(good[:-4])
    assert_refused(gn.io.load_npy, path, "needs 40 bytes of data, found 36")
    path.write_bytes(good.replace(b"(10,)", b"(9**99,)"))
    assert_refused(gn.io.load_npy, path, "not a .npy file")
    path.write_bytes(b"\x93NUMPY\x01\x00" + b"\xff" * 20)
    assert_refused(gn.io.load_npy, path, "not a .npy file")
    np.savez(tmp_path / "b.npz", a=np.zeros(2))
    assert_refused(gn.io.load_npy, tmp_path / "b.npz", "not a .npy file")


def test_the_other_readers_refuse_a_fifo_at_once(tmp_path):
    """The experiment TOML, a sweep's result file, the MNIST-1D cache, the md5 of a data
    file and a run's config.json: each read a FIFO by a plain open (or np.load) and blocked on it."""
    from glassnet.datasets import _read_mnist1d_cache, md5
    from glassnet.experiment_config import ConfigError, load_config
    from glassnet.experiments import read_result

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    error = refused_at_once(load_config, fifo)
    assert isinstance(error, ConfigError) and "is a named pipe (FIFO)" in str(error)
    from glassnet.cli import read_run_config

    for reader in (md5, _read_mnist1d_cache, read_run_config):
        error = refused_at_once(reader, fifo)
        assert isinstance(error, FileFormatError) and error.path == str(fifo), (reader, error)

    def read_result_or_raise(path):  # read_result answers None for anything unreadable
        assert read_result(str(path)) is None
        raise LookupError("refused")

    assert isinstance(refused_at_once(read_result_or_raise, fifo), LookupError)
