"""Tests for glassnet.datasets: the IDX reader, look-up, checksummed download, loaders."""

import functools
import gzip
import hashlib
import http.server
import io
import math
import random
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glassnet import datasets
from glassnet.datasets import (
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    find_or_fetch,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_mnist1d,
    md5,
    read_idx,
)
from glassnet.errors import FileFormatError

IDX_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(a: np.ndarray) -> bytes:
    """IDX encoding of ``a``: magic 00 00 code ndim, big-endian uint32 sizes, big-endian data."""
    code = IDX_CODES[a.dtype.str[1:]]
    header = bytes([0, 0, code, a.ndim]) + np.array(a.shape, ">u4").tobytes()
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, gz: bool) -> Path:
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def make_idx_set(directory: Path, n_train=20, n_test=10, gz=True, seed=0):
    """Write a tiny MNIST-format set; return ({gz name: md5}, {gz name: array})."""
    rng = np.random.default_rng(seed)
    arrays = {
        TRAIN_IMAGES: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        TRAIN_LABELS: rng.integers(0, 10, n_train, dtype=np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        TEST_LABELS: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    arrays[TRAIN_IMAGES][0, 0, :2] = [0, 255]  # both ends of the pixel range
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, a in arrays.items():
        path = directory / (name if gz else name.removesuffix(".gz"))
        write(path, idx_bytes(a), gz)
        files[name] = hashlib.md5(gzip.compress(idx_bytes(a), mtime=0)).hexdigest()
    return files, arrays


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch):
    """Tests see neither the host's GLASSNET_DATA nor its proxies (the servers are local)."""
    monkeypatch.delenv("GLASSNET_DATA", raising=False)
    monkeypatch.setenv("no_proxy", "*")


@pytest.fixture
def serve():
    """Start HTTP servers on free local ports; each returns (base_url, list of paths requested)."""
    servers = []

    def start(directory: Path) -> tuple[str, list[str]]:
        requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        handler = functools.partial(Handler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}/", requests

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join()


# read_idx


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("code", list(IDX_CODES))
def test_read_idx_round_trip(tmp_path, code, gz):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((3, 4, 5)) * 100).astype(code)
    out = read_idx(write(tmp_path / "a.idx", idx_bytes(a), gz))
    np.testing.assert_array_equal(out, a)
    assert out.dtype == np.dtype(code).newbyteorder("=") and out.dtype.isnative
    assert out.flags.writeable


def test_read_idx_detects_gzip_by_magic_not_name(tmp_path):
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "plain.gz", idx_bytes(a), False)), a)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "packed", idx_bytes(a), True)), a)


def test_read_idx_one_dimension(tmp_path):
    a = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "l", idx_bytes(a), True)), a)


GOOD = idx_bytes(np.arange(24, dtype=np.int16).reshape(2, 3, 4))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (GOOD[:-1], r"should be 48 bytes, found 47 \(truncated\)"),
        (GOOD + b"\0\0\0", r"should be 48 bytes, found 51 \(3 trailing bytes\)"),
        (b"\x00\x00", "not an IDX file: 2 bytes"),
        (b"\x01\x02" + GOOD[2:], "bad IDX magic number 01020b03"),
        (GOOD[:2] + b"\x0a" + GOOD[3:], "unknown IDX type code 0x0A"),
        (GOOD[:10], "truncated IDX header: 3 dimensions need 16 bytes, found 10"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_errors_name_the_file(tmp_path, data, message, gz):
    path = write(tmp_path / "broken.idx", data, gz)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


MAX = 2**32 - 1  # the largest size an IDX header can declare


def idx_header(sizes, code=0x08, ndim=None) -> bytes:
    ndim = len(sizes) if ndim is None else ndim
    return bytes([0, 0, code, ndim]) + np.array(sizes, ">u4").tobytes()


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (idx_header([0, MAX, MAX]), r"shape \(0, 4294967295, 4294967295\) of uint8, too large for an array"),
        (idx_header([0, MAX, MAX, MAX]), "too large for an array"),
        (idx_header([0, 2**31, 2**31, 2], code=0x0C), "too large for an array"),  # fits but x4 bytes does not
        (idx_header([0] + [MAX] * 39), "too large for an array"),
        (idx_header([1] * 65) + b"\x07", "declares 65 dimensions, more than 64"),
        (idx_header([1] * 255) + b"\x07", "declares 255 dimensions"),
        (idx_header([MAX]), r"should be 4294967295 bytes"),
        (idx_header([MAX, MAX, MAX], code=0x0E), r"should be 633825299671392843082401579000 bytes"),
        (idx_header([]), r"shape \(\) of uint8 should be 1 bytes, found 0"),
        (idx_header([7, 3], ndim=3), "truncated IDX header"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_header_values_give_a_file_format_error(tmp_path, header, message, gz):
    # issue 11: the header (0, 2^32-1, 2^32-1) gave NumPy's "array is too big" ValueError
    # without the file's path; every header value is a FileFormatError naming the file
    path = write(tmp_path / "header.idx", header, gz)
    with pytest.raises(FileFormatError, match=message) as info:
        read_idx(path)
    assert info.value.path == str(path)


@pytest.mark.parametrize(
    "shape",
    [(0,), (0, 0), (3, 0, 2), (0, 2**31, 2**31), (1,) * 64],
    ids=["0", "0x0", "3x0x2", "0xbig", "64 dims"],
)
def test_read_idx_accepts_every_shape_numpy_can_hold(tmp_path, shape):
    payload = b"\x07" * math.prod(shape)
    out = read_idx(write(tmp_path / "ok.idx", idx_header(list(shape)) + payload, False))
    assert out.shape == shape and out.dtype == np.uint8


@settings(max_examples=300, deadline=None)
@given(
    code=st.sampled_from(sorted(IDX_CODES.values())),
    sizes=st.lists(st.sampled_from([0, 1, 2, 3, 255, 2**16, 2**31 - 1, 2**31, MAX]), max_size=70),
    ndim_delta=st.sampled_from([0, 0, 0, -1, 1]),
    payload=st.sampled_from(["exact", "short", "long", "none"]),
    gz=st.booleans(),
)
def test_read_idx_any_header_reads_or_names_the_file(code, sizes, ndim_delta, payload, gz):
    itemsize = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}[code]
    expected = math.prod(sizes) * itemsize
    body = {
        "exact": b"\x01" * expected if expected < 10_000 else b"",
        "short": b"\x01" * min(expected - 1, 100) if expected else b"",
        "long": b"\x01" * (min(expected, 100) + 3),
        "none": b"",
    }[payload]
    ndim = min(max(len(sizes) + ndim_delta, 0), 255)
    with tempfile.TemporaryDirectory() as d:
        path = write(Path(d) / "h.idx", idx_header(sizes, code, ndim) + body, gz)
        try:
            out = read_idx(path)
        except FileFormatError as e:
            assert e.path == str(path)
        else:  # a wrong ndim makes sizes part of the payload, or payload part of the sizes
            declared = np.frombuffer((np.array(sizes, ">u4").tobytes() + body)[: 4 * ndim], ">u4")
            assert out.shape == tuple(int(d) for d in declared) and out.dtype.itemsize == itemsize


def test_read_idx_corrupt_gzip(tmp_path):
    path = write(tmp_path / "bad.gz", gzip.compress(GOOD)[:-10], False)
    with pytest.raises(ValueError, match="corrupt gzip data") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_md5(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"glassnet" * 100_000)
    assert md5(path) == hashlib.md5(b"glassnet" * 100_000).hexdigest()


# look-up


def test_default_search_dirs(tmp_path, monkeypatch):
    assert datasets.default_search_dirs("mnist") == []
    monkeypatch.setenv("GLASSNET_DATA", str(tmp_path))
    assert datasets.default_search_dirs("fashion-mnist") == [tmp_path / "fashion-mnist", tmp_path]
    # a path given is the one place to look: its files are not completed from elsewhere
    (tmp_path / "mine").mkdir()
    assert datasets.default_search_dirs("fashion-mnist", path=tmp_path / "mine") == [tmp_path / "mine"]
    # in plain words, named as given (the CLI's --data-dir names itself: test_cli_readers)
    with pytest.raises(FileNotFoundError) as info:
        datasets.default_search_dirs("mnist", path=tmp_path / "nope")
    assert (
        str(info.value)
        == f"data directory {tmp_path / 'nope'}: no such directory (give the folder holding the IDX files)"
    )
    (tmp_path / "a-file").write_text("")
    with pytest.raises(FileNotFoundError, match=r"a-file: a file, not a directory \(give the folder"):
        datasets.default_search_dirs("mnist", path=tmp_path / "a-file")


def test_find_or_fetch_prefers_first_dir(tmp_path):
    files, _ = make_idx_set(tmp_path / "a")
    make_idx_set(tmp_path / "b")
    found = find_or_fetch("mnist", files, [tmp_path / "a", tmp_path / "b"], tmp_path / "c", [])
    assert found == {name: tmp_path / "a" / name for name in files}


def test_find_or_fetch_accepts_uncompressed(tmp_path):
    files, _ = make_idx_set(tmp_path / "raw", gz=False)
    found = find_or_fetch("mnist", files, [tmp_path / "raw"], tmp_path / "cache", [])
    assert found[TRAIN_IMAGES] == tmp_path / "raw" / "train-images-idx3-ubyte"


def test_find_or_fetch_md5_mismatch_is_an_error(tmp_path):
    files, _ = make_idx_set(tmp_path / "d")
    wrong = dict(files, **{TRAIN_LABELS: "0" * 32})
    with pytest.raises(
        ValueError,
        match=f"train-labels-idx1-ubyte.gz: md5 is {files[TRAIN_LABELS]}, expected 0{{32}}",
    ):
        find_or_fetch("mnist", wrong, [tmp_path / "d"], tmp_path / "cache", [])


def test_find_or_fetch_not_found_explains(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        find_or_fetch(
            "fashion-mnist",
            {TRAIN_IMAGES: "0" * 32},
            [tmp_path],
            tmp_path / "c",
            [],
            download=False,
        )
    message = str(info.value)
    for expected in [
        TRAIN_IMAGES,
        str(tmp_path),
        "download=False",
        "apt-get install dataset-fashion-mnist",
        "GLASSNET_DATA",
        "path=",
    ]:
        assert expected in message


def test_find_or_fetch_checks_md5_in_the_cache(tmp_path):
    files, _ = make_idx_set(tmp_path / "cache")
    (tmp_path / "cache" / TEST_LABELS).write_bytes(gzip.compress(b"another version", mtime=0))
    with pytest.raises(FileFormatError, match=f"{TEST_LABELS}: md5 is .*, expected {files[TEST_LABELS]}"):
        find_or_fetch("mnist", files, [], tmp_path / "cache", [], download=False)


def test_find_or_fetch_own_dirs_skip_md5_and_come_first(tmp_path):
    files, _ = make_idx_set(tmp_path / "known")
    make_idx_set(tmp_path / "mine", seed=1)  # different bytes: md5s that match nothing
    found = find_or_fetch(
        "mnist", files, [tmp_path / "known"], tmp_path / "c", [], own_dirs=[tmp_path / "mine"]
    )
    assert found == {name: tmp_path / "mine" / name for name in files}


@pytest.mark.parametrize("checked", ["own_dirs", "search_dirs"])
def test_find_or_fetch_never_completes_a_directory_from_another(tmp_path, checked):
    files, _ = make_idx_set(tmp_path / "full")
    make_idx_set(tmp_path / "part")
    (tmp_path / "part" / TEST_IMAGES).unlink()
    dirs = {"own_dirs": [tmp_path / "part"]} if checked == "own_dirs" else {}
    search = [tmp_path / "part", tmp_path / "full"] if checked == "search_dirs" else [tmp_path / "full"]
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'part'} holds .* but not {TEST_IMAGES}"):
        find_or_fetch("mnist", files, search, tmp_path / "c", [], **dirs)


def test_glassnet_data_env(tmp_path, monkeypatch):
    make_idx_set(tmp_path / "mnist", gz=False)
    monkeypatch.setenv("GLASSNET_DATA", str(tmp_path))
    train, test = load_mnist(download=False, cache_dir=tmp_path / "cache")
    assert train.n == 20 and test.n == 10


# loaders on generated files


LOADERS = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist}


@pytest.mark.parametrize("where", ["path", "GLASSNET_DATA/<name>", "GLASSNET_DATA"])
@pytest.mark.parametrize("gz", [True, False, "mixed"])
@pytest.mark.parametrize("name", list(LOADERS))
def test_own_files_are_read_gzipped_or_not_without_md5(tmp_path, monkeypatch, name, gz, where):
    # issue 11 item 6: the user's own .gz files were refused ("md5 ... a different version")
    # because their bytes are not the published ones; the reader validates them instead
    monkeypatch.setattr(datasets, "PACKAGE_DIRS", {})  # the host may have the real files
    d = tmp_path / "data" / name if where == "GLASSNET_DATA/<name>" else tmp_path / "data"
    _, arrays = make_idx_set(d, gz=gz is True)
    if gz == "mixed":  # some files gzipped, some not, in one directory
        for f in (TRAIN_LABELS, TEST_IMAGES):
            raw = d / f.removesuffix(".gz")
            write(d / f, raw.read_bytes(), True)
            raw.unlink()
    if where != "path":
        monkeypatch.setenv("GLASSNET_DATA", str(tmp_path / "data"))
    path = d if where == "path" else None
    train, test = LOADERS[name](path, download=False, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(train.x[:, 0] * 255, arrays[TRAIN_IMAGES])
    np.testing.assert_array_equal(test.y, arrays[TEST_LABELS])
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("where", ["path", "GLASSNET_DATA"])
@pytest.mark.parametrize("name", list(LOADERS))
def test_own_directory_holding_the_other_known_set_is_refused(tmp_path, monkeypatch, name, where):
    # MNIST and Fashion-MNIST share file names: without md5 for a user's own files, MNIST's
    # files in $GLASSNET_DATA were read as Fashion-MNIST without a word
    monkeypatch.setattr(datasets, "PACKAGE_DIRS", {})
    other = "mnist" if name == "fashion-mnist" else "fashion-mnist"
    files, _ = make_idx_set(tmp_path / "data")  # stands for the other set's published files
    monkeypatch.setitem(datasets.KNOWN_FILES, other, files)
    if where == "GLASSNET_DATA":
        monkeypatch.setenv("GLASSNET_DATA", str(tmp_path / "data"))
    path = tmp_path / "data" if where == "path" else None
    with pytest.raises(
        FileFormatError, match=f"is {other}'s published train-labels-idx1-ubyte.gz, not {name}'s"
    ):
        LOADERS[name](path, download=False, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("where", ["path", "GLASSNET_DATA"])
@pytest.mark.parametrize("name", list(LOADERS))
def test_own_directory_without_the_test_set_is_refused(tmp_path, monkeypatch, name, where):
    # issue 11 item 6: a --data-dir holding only the training files took the test set from
    # the cache (or the package directory): the images of one set, scored on another's
    monkeypatch.setattr(datasets, "PACKAGE_DIRS", {})
    files, _ = make_idx_set(tmp_path / "cache")  # a complete, md5-valid set elsewhere
    make_idx_set(tmp_path / "mine", gz=False, seed=1)
    for f in (TEST_IMAGES, TEST_LABELS):
        (tmp_path / "mine" / f.removesuffix(".gz")).unlink()
    if where == "GLASSNET_DATA":
        monkeypatch.setenv("GLASSNET_DATA", str(tmp_path / "mine"))
    path = tmp_path / "mine" if where == "path" else None
    with pytest.raises(FileNotFoundError) as info:
        LOADERS[name](path, download=False, cache_dir=tmp_path / "cache", files=files)
    message = str(info.value)
    assert f"{tmp_path / 'mine'} holds " in message
    assert f"but not {TEST_IMAGES} (or t10k-images-idx3-ubyte), {TEST_LABELS}" in message


def test_own_directory_without_any_file_is_refused(tmp_path, serve):
    files, _ = make_idx_set(tmp_path / "server")
    url, requests = serve(tmp_path / "server")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        FileNotFoundError, match=f"mnist: {tmp_path / 'empty'} holds none of its files: {TRAIN_IMAGES}"
    ):
        load_mnist(tmp_path / "empty", cache_dir=tmp_path / "cache", mirrors=[url], files=files)
    assert requests == []  # a path given is where the files are: nothing is downloaded


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_directory(tmp_path, gz):
    files, arrays = make_idx_set(tmp_path / "d", gz=gz)
    train, test = load_mnist(tmp_path / "d", download=False, cache_dir=tmp_path / "c", files=files)
    assert train.x.shape == (20, 1, 28, 28) and test.x.shape == (10, 1, 28, 28)
    assert train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert train.x.min() == 0.0 and train.x.max() == 1.0
    np.testing.assert_array_equal(train.x[:, 0] * 255, arrays[TRAIN_IMAGES])
    np.testing.assert_array_equal(test.y, arrays[TEST_LABELS])
    flat, _ = load_mnist(tmp_path / "d", download=False, cache_dir=tmp_path / "c", files=files, flatten=True)
    assert flat.x.shape == (20, 784)
    np.testing.assert_array_equal(flat.x, train.x.reshape(20, -1))


def test_loader_validates_contents(tmp_path):
    d = tmp_path / "d"
    make_idx_set(d, gz=False)
    path = write(d / "train-labels-idx1-ubyte", idx_bytes(np.full(20, 10, np.uint8)), False)
    with pytest.raises(ValueError, match=r"labels should be in 0\.\.9, found 10\.\.10") as info:
        load_mnist(d, download=False, cache_dir=tmp_path / "c")
    assert str(path) in str(info.value)
    path = write(d / "train-labels-idx1-ubyte", idx_bytes(np.full(20, -1, np.int8)), False)
    with pytest.raises(FileFormatError, match=r"labels should be in 0\.\.9, found -1\.\.-1") as info:
        load_mnist(d, download=False, cache_dir=tmp_path / "c")
    assert str(path) in str(info.value)
    path = write(d / "train-labels-idx1-ubyte", idx_bytes(np.zeros(19, np.uint8)), False)
    with pytest.raises(FileFormatError, match="19 labels for 20 images") as info:
        load_mnist(d, download=False, cache_dir=tmp_path / "c")
    assert str(path) in str(info.value)
    path = write(d / "train-labels-idx1-ubyte", idx_bytes(np.zeros(20, np.float32)), False)
    with pytest.raises(FileFormatError, match="expected 1-D integer labels, got float32") as info:
        load_mnist(d, download=False, cache_dir=tmp_path / "c")
    assert str(path) in str(info.value)
    path = write(d / "train-images-idx3-ubyte", idx_bytes(np.zeros((20, 784), np.uint8)), False)
    with pytest.raises(ValueError, match=r"expected uint8 images of shape \(N, rows, cols\)"):
        load_mnist(d, download=False, cache_dir=tmp_path / "c")


@pytest.mark.parametrize("shape", [(0, 28, 28), (5, 0, 28)])
def test_loader_refuses_an_empty_image_file(tmp_path, shape):
    d = tmp_path / "d"
    make_idx_set(d, gz=False)
    path = write(d / "t10k-images-idx3-ubyte", idx_bytes(np.zeros(shape, np.uint8)), False)
    write(d / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(shape[0], np.uint8)), False)
    with pytest.raises(FileFormatError, match=r"holds no images: shape \(") as info:
        load_mnist(d, download=False)
    assert info.value.path == str(path)


# downloads from a local server


def test_download_then_cache(tmp_path, serve):
    files, arrays = make_idx_set(tmp_path / "server")
    url, requests = serve(tmp_path / "server")
    cache = tmp_path / "cache"
    train, test = load_mnist(cache_dir=cache, mirrors=[url], files=files)
    assert sorted(requests) == sorted(f"/{name}" for name in files)
    assert sorted(p.name for p in cache.iterdir()) == sorted(files)
    assert all(md5(cache / name) == digest for name, digest in files.items())
    np.testing.assert_array_equal(train.y, arrays[TRAIN_LABELS])
    np.testing.assert_array_equal(test.x[:, 0] * 255, arrays[TEST_IMAGES])
    load_mnist(cache_dir=cache, mirrors=[url], files=files)
    assert len(requests) == 4  # the second call found everything in the cache


def test_download_fashion_mnist(tmp_path, serve, monkeypatch):
    monkeypatch.setattr(datasets, "PACKAGE_DIRS", {})  # the host may have the real files
    files, _ = make_idx_set(tmp_path / "server")
    url, _ = serve(tmp_path / "server")
    train, _ = load_fashion_mnist(cache_dir=tmp_path / "cache", mirrors=[url], files=files)
    assert train.x.shape == (20, 1, 28, 28)


def test_corrupt_download_leaves_nothing(tmp_path, serve):
    files, _ = make_idx_set(tmp_path / "server")
    (tmp_path / "server" / TRAIN_LABELS).write_bytes(b"not what was promised")
    url, _ = serve(tmp_path / "server")
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError, match="md5 of the download is") as info:
        load_mnist(cache_dir=cache, mirrors=[url], files=files)
    assert f"{url}{TRAIN_LABELS}" in str(info.value)
    assert [p.name for p in cache.iterdir()] == [TRAIN_IMAGES]  # verified earlier; no temp files


def test_first_mirror_404_falls_through(tmp_path, serve):
    files, arrays = make_idx_set(tmp_path / "server")
    (tmp_path / "empty").mkdir()
    dead, dead_requests = serve(tmp_path / "empty")
    good, good_requests = serve(tmp_path / "server")
    train, _ = load_mnist(cache_dir=tmp_path / "cache", mirrors=[dead, good], files=files)
    np.testing.assert_array_equal(train.y, arrays[TRAIN_LABELS])
    assert len(dead_requests) == 4 and len(good_requests) == 4


def test_all_mirrors_fail(tmp_path, serve):
    (tmp_path / "empty").mkdir()
    dead, _ = serve(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="HTTP Error 404") as info:
        load_mnist(cache_dir=tmp_path / "cache", mirrors=[dead])
    assert str(tmp_path / "cache") in str(info.value)
    assert list((tmp_path / "cache").iterdir()) == []


# the real data set and load_digits


@pytest.mark.skipif(
    not DEBIAN_FASHION.is_dir(),
    reason=f"{DEBIAN_FASHION} absent: apt-get install dataset-fashion-mnist",
)
def test_real_fashion_mnist(tmp_path):
    train, test = load_fashion_mnist(DEBIAN_FASHION, download=False, cache_dir=tmp_path)
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert train.x.min() == 0.0 and train.x.max() == 1.0
    np.testing.assert_array_equal(np.bincount(train.y), [6000] * 10)
    assert set(np.unique(test.y)) == set(range(10))
    assert len(datasets.FASHION_MNIST_CLASSES) == 10


def test_load_digits():
    train, test = load_digits()
    assert train.n + test.n == 1797 and test.n == round(1797 * 0.2)
    assert train.x.shape[1:] == (1, 8, 8) and train.x.dtype == np.float32
    assert train.y.dtype == np.int64 and set(np.unique(train.y)) == set(range(10))
    assert train.x.min() >= 0.0 and train.x.max() == 1.0
    again, _ = load_digits()
    np.testing.assert_array_equal(again.y, train.y)


def test_every_cli_data_set_has_class_names():
    from glassnet.cli import DATASETS

    assert set(datasets.CLASSES) == set(DATASETS)
    assert datasets.CLASSES["fashion-mnist"][9] == "Ankle boot"
    assert all(len(names) == 10 == len(set(names)) for names in datasets.CLASSES.values())
    assert datasets.DIGIT_CLASSES[7] == "7"


def test_load_digits_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'glassnet\[digits\]'"):
        load_digits()


# MNIST-1D, generated by the optional mnist1d package


def test_load_mnist1d_generates_caches_and_leaves_global_random_state(tmp_path):
    np.random.seed(123)
    random.seed(123)
    before, py_before = np.random.get_state()[1].copy(), random.getstate()
    train, test = load_mnist1d(cache_dir=tmp_path)
    # make_dataset seeds both global generators; both are put back
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    assert random.getstate() == py_before
    assert train.x.shape == (4000, 40) and test.x.shape == (1000, 40)
    assert train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert set(np.unique(train.y)) == set(range(10)) and set(np.unique(test.y)) == set(range(10))
    assert np.bincount(train.y).min() > 350  # 500 per class before the 80/20 split
    # standardised over the whole set, as the package does
    everything = np.concatenate([train.x, test.x])
    assert abs(everything.mean()) < 1e-3 and abs(everything.std() - 1) < 1e-3
    cached = list(tmp_path.iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".npz"
    again, again_test = load_mnist1d(cache_dir=tmp_path)  # from the cache, identical
    np.testing.assert_array_equal(again.x, train.x)
    np.testing.assert_array_equal(again_test.y, test.y)
    fresh, _ = load_mnist1d(cache_dir=tmp_path, cache=False)  # regenerated, identical (seed 42)
    np.testing.assert_array_equal(fresh.x, train.x)


def test_load_mnist1d_rejects_a_foreign_cache_file(tmp_path):
    path = tmp_path / f"mnist1d-{datasets._mnist1d_version()}-default.npz"
    np.savez(path, x=np.zeros((3, 40)))
    with pytest.raises(ValueError, match="not a glassnet MNIST-1D cache file"):
        load_mnist1d(cache_dir=tmp_path)


def _good_mnist1d_arrays():
    return {
        "x": np.zeros((4000, 40), np.float32),
        "y": np.arange(4000) % 10,
        "x_test": np.zeros((1000, 40), np.float32),
        "y_test": np.arange(1000) % 10,
    }


@pytest.mark.parametrize(
    "write",
    [
        lambda p: p.write_bytes(b""),
        lambda p: p.write_bytes(b"not a zip archive" * 10),
        lambda p: np.save(p.open("wb"), np.zeros((4000, 40), np.float32)),  # a bare .npy
        lambda p: p.write_bytes(_npz_bytes(_good_mnist1d_arrays())[:3000]),  # truncated
        lambda p: p.write_bytes(_npz_bytes({**_good_mnist1d_arrays(), "y": np.array([None] * 4000)})),
        lambda p: p.write_bytes(_npz_bytes({**_good_mnist1d_arrays(), "x": np.zeros((4000, 40))})),  # float64
        lambda p: p.write_bytes(_npz_bytes({**_good_mnist1d_arrays(), "x_test": np.zeros((10, 40), "f4")})),
        lambda p: p.write_bytes(_npz_bytes({**_good_mnist1d_arrays(), "y_test": np.arange(1000) + 5})),
    ],
    ids=["empty", "garbage", "npy", "truncated", "objects", "float64", "short test set", "labels"],
)
def test_load_mnist1d_refuses_a_bad_cache_file_naming_it(tmp_path, write):
    # every way a cache file can be wrong is a FileFormatError naming it, never a stray
    # TypeError/BadZipFile/EOFError, and never a data set of the wrong shape, dtype or labels
    path = tmp_path / f"mnist1d-{datasets._mnist1d_version()}-default.npz"
    write(path)
    with pytest.raises(FileFormatError, match=r"not a glassnet MNIST-1D cache file .*delete it") as info:
        load_mnist1d(cache_dir=tmp_path)
    assert str(path) in str(info.value)


def test_load_mnist1d_reads_a_valid_cache_file_without_the_generator(tmp_path, monkeypatch):
    path = tmp_path / f"mnist1d-{datasets._mnist1d_version()}-default.npz"
    path.write_bytes(_npz_bytes(_good_mnist1d_arrays()))
    monkeypatch.setattr(datasets, "_make_mnist1d", None)  # must not be called
    train, test = load_mnist1d(cache_dir=tmp_path)
    assert train.x.shape == (4000, 40) and test.y.dtype == np.int64


def _npz_bytes(arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_load_mnist1d_without_the_package(monkeypatch, tmp_path):
    def missing(name):
        raise datasets.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(datasets.importlib.metadata, "version", missing)
    with pytest.raises(ImportError, match=r"pip install 'glassnet\[mnist1d\]'"):
        load_mnist1d(cache_dir=tmp_path)
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)  # metadata present, module unimportable
    with pytest.raises(ImportError, match=r"pip install 'glassnet\[mnist1d\]'"):
        load_mnist1d(cache_dir=tmp_path)
