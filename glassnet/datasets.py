"""Real data sets: an IDX reader, checksummed look-up and download, MNIST-style loaders.

Files are found before they are fetched. Given ``path``, a loader reads the four files from
that directory and nowhere else. Otherwise it looks in ``$GLASSNET_DATA/<name>`` and
``$GLASSNET_DATA``, in the directory a Debian package installs (``apt-get install
dataset-fashion-mnist``) and in the cache (``~/.cache/glassnet/<name>``); only then, if
``download`` is true, does it download into the cache, trying each mirror in turn.

Two kinds of file, two checks. Where glassnet knows the bytes, in a package's directory and in
the cache, a ``.gz`` file is checked against its published md5; a download reaches
its final name only once it has passed (a temporary file in the same directory, then an atomic
``os.replace``), so the cache never holds a partial or corrupt file. A user's own files, in
``path`` or ``$GLASSNET_DATA``, gzipped or not, have no published checksum: they are checked
as they are read (``read_idx``: header, sizes, payload length; the loader: one label in 0..9
per image). The four files of a set
always come from one directory: a directory holding some but not all of them is an error
naming what is missing, never completed from another. Nothing here uses pickle.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import importlib.metadata
import io
import math
import os
import random
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .data import Dataset, train_val_split
from .errors import FileFormatError
from .io import check_regular_file, open_regular
from .module import as_rng

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

# md5 of the .gz files as published; an uncompressed copy is checked by reading it instead
FASHION_MNIST_FILES = {
    TRAIN_IMAGES: "cf8536b0aa1a6ac5fa3f23001093305c",
    TRAIN_LABELS: "10bea18fdb374794d4bb42e356e600c9",
    TEST_IMAGES: "f78720b4224f21cce2f2ccf2d7a94c9a",
    TEST_LABELS: "0d30e22e447f3c33dab9ed536400ac01",
}
MNIST_FILES = {
    TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
    TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
    TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
}

# base URLs tried in order; the md5 check makes a wrong or tampered mirror harmless
FASHION_MNIST_MIRRORS = [
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/fashion-mnist/",
]
MNIST_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]

# where a distribution package installs a data set, and the package's name
PACKAGE_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}
PACKAGE_NAMES = {"fashion-mnist": "dataset-fashion-mnist"}

# class names, indexed by label: ``FASHION_MNIST_CLASSES[train.y[0]]``
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DIGIT_CLASSES = [str(d) for d in range(10)]  # MNIST, scikit-learn's digits and MNIST-1D
CLASSES = {
    "fashion-mnist": FASHION_MNIST_CLASSES,
    "mnist": DIGIT_CLASSES,
    "digits": DIGIT_CLASSES,
    "mnist1d": DIGIT_CLASSES,
}

DOWNLOAD_TIMEOUT_S = 30.0
_CHUNK = 1 << 20
_DEFLATE_MAX_RATIO = 1032  # no deflate stream decompresses to more than 1032 times its size
_IDX_MAX_DIMS = 64  # NumPy's limit on an array's dimensions

# IDX type code (third byte of the magic number) -> element type; multi-byte types are big-endian
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _open_maybe_gzip(f) -> tuple[BinaryIO, bool]:
    """A stream of the file's bytes, decompressed if it starts with the gzip magic bytes 1f 8b."""
    gz = f.read(2) == b"\x1f\x8b"
    f.seek(0)
    return (gzip.GzipFile(fileobj=f, mode="rb") if gz else f), gz


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes, fewer only at the end of the stream; read in chunks, so that a header
    claiming terabytes costs no more memory than the bytes that are really there."""
    chunks, left = [], n
    while left > 0:
        chunk = stream.read(min(left, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _count_rest(stream: BinaryIO, limit: int = 1 << 20) -> tuple[int, bool]:
    """How many bytes are left (reading and dropping them, at most ``limit``); and whether
    there were more: a gzip bomb is not decompressed to the end just to count it."""
    count = 0
    while count <= limit and (chunk := stream.read(_CHUNK)):
        count += len(chunk)
    return count, count > limit


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a native-endian array.

    The format: a magic number ``00 00 <type code> <ndim>``, then ``ndim`` big-endian uint32
    sizes, then the elements in C order, big-endian. The file must hold exactly
    ``prod(sizes) * itemsize`` payload bytes; anything else (truncated, trailing bytes, a bad
    magic number, corrupt gzip data) is a ``FileFormatError`` naming the file. The header is
    checked before the payload is read, and the payload is read in chunks up to the size the
    header declares: neither a lying header nor a gzip bomb can make it allocate more memory
    than the declared array, which a raw file must hold and a gzip file must be able to hold
    (deflate expands at most 1032:1, so a larger claim is refused before decompressing).
    """
    path = Path(path)
    with open_regular(path) as f:  # a FIFO or a device is refused; FileNotFoundError names the path
        stream, gz = _open_maybe_gzip(f)
        size = os.fstat(f.fileno()).st_size
        try:
            return _read_idx(path, stream, None if gz else size, size * _DEFLATE_MAX_RATIO if gz else None)
        except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            if not gz:  # a real I/O error of a plain file, not a format problem
                raise
            raise FileFormatError(path, f"corrupt gzip data: {e}") from None


def _read_idx(path: Path, stream: BinaryIO, size: int | None, most: int | None) -> np.ndarray:
    """``size``: a raw file's size; ``most``: the most bytes a gzip file can decompress to."""
    magic = _read_exactly(stream, 4)
    if len(magic) < 4:
        raise FileFormatError(path, f"not an IDX file: {len(magic)} bytes, need at least 4")
    zero0, zero1, code, ndim = magic
    if zero0 or zero1:
        raise FileFormatError(path, f"bad IDX magic number {magic.hex()}, expected 0000<tt><nd>")
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise FileFormatError(path, f"unknown IDX type code 0x{code:02X}, expected one of {known}")
    header = 4 + 4 * ndim
    sizes = _read_exactly(stream, 4 * ndim)
    if len(sizes) < 4 * ndim:
        raise FileFormatError(
            path, f"truncated IDX header: {ndim} dimensions need {header} bytes, found {4 + len(sizes)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(sizes, ">u4"))
    dtype = _IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    if size is not None and size - header != expected:  # a raw file: its size is known up front
        found = size - header
        problem = "truncated" if found < expected else f"{found - expected} trailing bytes"
        raise FileFormatError(
            path,
            f"IDX payload for shape {shape} of {dtype.name} should be {expected} bytes, "
            f"found {found} ({problem})",
        )
    if most is not None and header + expected > most:  # a lying header on a gzip bomb
        raise FileFormatError(
            path,
            f"IDX payload for shape {shape} of {dtype.name} should be {expected} bytes, more than "
            f"the {most // _DEFLATE_MAX_RATIO}-byte gzip file can hold (deflate expands at most "
            f"{_DEFLATE_MAX_RATIO}:1): truncated or not an IDX file",
        )
    _check_shape(path, shape, dtype)  # what passed the size checks: a zero-size or 65-D claim
    data = _read_exactly(stream, expected)
    if len(data) < expected:
        raise FileFormatError(
            path,
            f"IDX payload for shape {shape} of {dtype.name} should be {expected} bytes, "
            f"found {len(data)} (truncated)",
        )
    extra, more = _count_rest(stream)
    if extra:
        over = "more than " if more else ""
        raise FileFormatError(
            path,
            f"IDX payload for shape {shape} of {dtype.name} should be {expected} bytes, found "
            f"{over}{expected + extra} ({over}{extra} trailing bytes)",
        )
    # astype copies: the result is writable and native-endian
    return np.frombuffer(data, dtype).astype(dtype.newbyteorder("=")).reshape(shape)


def _check_shape(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse a header NumPy could not make an array of, before its payload is read.

    NumPy allows at most 64 dimensions, and its size check multiplies the non-zero sizes and the
    item size, which must fit in an ``intp``: a zero-size array such as (0, 2^32-1, 2^32-1)
    is refused too, though it holds no bytes.
    """
    if len(shape) > _IDX_MAX_DIMS:
        raise FileFormatError(path, f"IDX header declares {len(shape)} dimensions, more than {_IDX_MAX_DIMS}")
    if math.prod(d for d in shape if d) * dtype.itemsize > np.iinfo(np.intp).max:
        raise FileFormatError(
            path, f"IDX header declares shape {shape} of {dtype.name}, too large for an array"
        )


def md5(path: str | os.PathLike) -> str:
    """The md5 hex digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open_regular(path) as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def default_cache_dir(name: str) -> Path:
    """``~/.cache/glassnet/<name>``, where downloads of data set ``name`` go."""
    return Path.home() / ".cache" / "glassnet" / name


def check_data_dir(path: str | os.PathLike, label: str = "data directory") -> Path:
    """``path`` with ``~`` expanded, if it is a directory; else a ``FileNotFoundError`` that
    names it after ``label``, what the user typed it as (``--data-dir`` on the command line)."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        what = "a file, not a directory" if directory.exists() else "no such directory"
        raise FileNotFoundError(
            f"{label} {os.fsdecode(path)}: {what} (give the folder holding the IDX files)"
        )
    return directory


def default_search_dirs(name: str, path: str | os.PathLike | None = None) -> list[Path]:
    """The user's directories that may hold data set ``name``, in the order they are searched.

    ``path``, if given (it must be a directory), and nothing else: the caller named the place.
    Otherwise ``$GLASSNET_DATA/<name>`` and ``$GLASSNET_DATA``, if the variable is set. Their
    files are the user's own, validated by ``read_idx`` rather than by md5; the package
    directory and the cache, whose files are md5-checked, come after them.
    """
    if path is not None:
        return [check_data_dir(path)]
    root = os.environ.get("GLASSNET_DATA")
    return [Path(root) / name, Path(root)] if root else []


def _one_of(directory: Path, filename: str) -> Path | None:
    """``directory/filename`` (``x.gz``) or its uncompressed twin ``x``, whichever is a file."""
    for candidate in (directory / filename, directory / filename.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _check_md5(path: Path, expected_md5: str) -> None:
    """Refuse a ``.gz`` whose md5 is not the published one; an uncompressed copy has none."""
    if path.suffix != ".gz":
        return  # no published checksum: read_idx validates it as it reads it
    actual = md5(path)
    if actual != expected_md5:
        # an error, not a skip: silently using another copy would hide a broken one
        raise FileFormatError(
            path,
            f"md5 is {actual}, expected {expected_md5}; the file is corrupt or a different "
            "version: replace or delete it",
        )


def _set_in(name: str, files: Mapping[str, str], directory: Path, checked: bool) -> dict[str, Path] | None:
    """All of ``files`` in ``directory`` (``None`` if it holds none of them), md5-checked if
    ``checked``. Some but not all is a ``FileNotFoundError`` naming the missing ones: taking
    them from another directory could pair one set's images with another's labels or test set."""
    found = {filename: p for filename in files if (p := _one_of(directory, filename))}
    if not found:
        return None
    missing = [f"{f} (or {f.removesuffix('.gz')})" for f in files if f not in found]
    if missing:
        raise FileNotFoundError(
            f"{name}: {directory} holds {', '.join(p.name for p in found.values())} but not "
            f"{', '.join(missing)}; the files of a data set are read from one directory, "
            "so add the missing ones there"
        )
    if checked:
        for filename, p in found.items():
            _check_md5(p, files[filename])
    else:
        _refuse_another_known_set(name, found)
    return found


# the published files of each known set: MNIST and Fashion-MNIST share file names, so a
# user's directory could hold the other one's files without a word
KNOWN_FILES = {"fashion-mnist": FASHION_MNIST_FILES, "mnist": MNIST_FILES}


def _refuse_another_known_set(name: str, found: Mapping[str, Path]) -> None:
    """Refuse a user's label file that is, byte for byte, another known set's (the label
    files are small, so their md5 costs nothing; a user's own data matches none)."""
    for filename in (TRAIN_LABELS, TEST_LABELS):
        p = found.get(filename)
        if p is None or p.suffix != ".gz":
            continue
        digest = md5(p)
        for other, other_files in KNOWN_FILES.items():
            if other != name and other_files.get(filename) == digest:
                raise FileFormatError(
                    p,
                    f"is {other}'s published {filename}, not {name}'s: keep each data set "
                    f"in its own directory ($GLASSNET_DATA/<name>)",
                )


def _find(filename: str, expected_md5: str, dirs: Iterable[Path]) -> Path | None:
    """The first ``filename`` (checked against its md5) or its uncompressed twin in ``dirs``."""
    for d in dirs:
        if (path := _one_of(d, filename)) is not None:
            _check_md5(path, expected_md5)
            return path
    return None


def _download(url: str, target: Path, expected_md5: str) -> None:
    """Download ``url`` to ``target`` through a temporary file, replaced only if the md5 fits."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
        ):
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected_md5:
            raise ValueError(f"md5 of the download is {digest.hexdigest()}, expected {expected_md5}")
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)  # never leave a partial or corrupt file in the cache
        raise


def _not_found(name: str, filename: str, dirs: list[Path], failures: list[str]) -> str:
    """The message for a file that is nowhere: where we looked, what we tried, what to do."""
    tried = "\n".join(f"  {f}" for f in failures) or "  none (download=False)"
    how = f"apt-get install {PACKAGE_NAMES[name]}, or " if name in PACKAGE_NAMES else ""
    return (
        f"{name}: {filename} (or {filename.removesuffix('.gz')}) not found.\n"
        f"Searched:\n" + "\n".join(f"  {d}" for d in dirs) + "\n"
        f"Downloads tried:\n{tried}\n"
        f"To get the data: {how}put the files in a directory and pass path=<dir>, "
        f"or set GLASSNET_DATA=<dir>."
    )


def find_or_fetch(
    name: str,
    files: Mapping[str, str],
    search_dirs: Iterable[str | os.PathLike],
    cache_dir: str | os.PathLike,
    mirrors: Iterable[str],
    download: bool = True,
    *,
    own_dirs: Iterable[str | os.PathLike] = (),
) -> dict[str, Path]:
    """Locate each of ``files`` (``{"x.gz": md5}``), downloading what is missing into the cache.

    Looks first in ``own_dirs``, a user's directories, whose files (``x.gz`` or ``x``) are
    validated by the reader, not by md5: a user's own gzip has its own bytes. Then in
    ``search_dirs`` (known places such as a package's directory), whose ``x.gz`` must match its
    md5 (a mismatch is a ``FileFormatError``). The first of these directories that holds any of
    ``files`` must hold all of them (else ``FileNotFoundError`` naming the missing ones) and is
    the answer. Failing that, the cache: each file found there is md5-checked and each missing
    one is downloaded from ``mirrors`` in turn into ``cache_dir``; if none delivers a file with
    the right md5, or ``download`` is false, raises ``FileNotFoundError`` saying where it
    looked and what it tried. Returns ``{"x.gz": path found}``.
    """
    own = [Path(d) for d in own_dirs]
    known = [Path(d) for d in search_dirs]
    for directory, checked in [(d, False) for d in own] + [(d, True) for d in known]:
        if (found := _set_in(name, files, directory, checked)) is not None:
            return found
    cache_dir = Path(cache_dir).expanduser()
    found = {}
    for filename, expected_md5 in files.items():
        path = _find(filename, expected_md5, [cache_dir])
        failures = []
        if path is None and download:
            cache_dir.mkdir(parents=True, exist_ok=True)
            for mirror in mirrors:
                url = mirror.rstrip("/") + "/" + filename
                try:
                    _download(url, cache_dir / filename, expected_md5)
                except (OSError, ValueError, http.client.HTTPException) as e:
                    failures.append(f"{url}: {e}")  # URLError and timeouts are OSErrors
                else:
                    path = cache_dir / filename
                    break
        if path is None:
            searched = list(dict.fromkeys([*own, *known, cache_dir]))
            raise FileNotFoundError(_not_found(name, filename, searched, failures))
        found[filename] = path
    return found


def _images_and_labels(images_path: Path, labels_path: Path, flatten: bool) -> Dataset:
    """Read an IDX image/label pair into float32 pixels in [0, 1] and int64 labels."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise FileFormatError(
            images_path,
            f"expected uint8 images of shape (N, rows, cols), got {images.dtype} of shape {images.shape}",
        )
    if images.size == 0:  # an empty training or test set would fail far from its cause
        raise FileFormatError(images_path, f"holds no images: shape {images.shape}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise FileFormatError(
            labels_path, f"expected 1-D integer labels, got {labels.dtype} of shape {labels.shape}"
        )
    if len(labels) != len(images):
        raise FileFormatError(labels_path, f"{len(labels)} labels for {len(images)} images in {images_path}")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise FileFormatError(labels_path, f"labels should be in 0..9, found {labels.min()}..{labels.max()}")
    x = images.astype(np.float32)
    x /= 255.0  # a true division, so 255 maps to exactly 1.0
    n, rows, cols = images.shape
    x = x.reshape(n, rows * cols) if flatten else x.reshape(n, 1, rows, cols)
    return Dataset(x, labels.astype(np.int64))


def _load_idx_set(
    name: str,
    files: Mapping[str, str],
    mirrors: Iterable[str],
    path: str | os.PathLike | None,
    download: bool,
    cache_dir: str | os.PathLike | None,
    flatten: bool,
) -> tuple[Dataset, Dataset]:
    """Find or fetch the four MNIST-format files of ``name`` and read them as (train, test)."""
    missing = {TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS} - set(files)
    if missing:
        raise ValueError(f"{name}: files must give the md5 of {sorted(missing)}")
    own_dirs = default_search_dirs(name, path)
    if path is not None:  # the user's own files, from that directory alone
        paths = _set_in(name, files, own_dirs[0], checked=False)
        if paths is None:
            names = ", ".join(f"{f} (or {f.removesuffix('.gz')})" for f in files)
            raise FileNotFoundError(f"{name}: {own_dirs[0]} holds none of its files: {names}")
    else:
        known = [PACKAGE_DIRS[name]] if name in PACKAGE_DIRS else []
        cache_dir = default_cache_dir(name) if cache_dir is None else cache_dir
        paths = find_or_fetch(name, files, known, cache_dir, mirrors, download, own_dirs=own_dirs)
    train = _images_and_labels(paths[TRAIN_IMAGES], paths[TRAIN_LABELS], flatten)
    test = _images_and_labels(paths[TEST_IMAGES], paths[TEST_LABELS], flatten)
    return train, test


def load_fashion_mnist(
    path: str | os.PathLike | None = None,
    download: bool = True,
    cache_dir: str | os.PathLike | None = None,
    flatten: bool = False,
    *,
    mirrors: Iterable[str] = FASHION_MNIST_MIRRORS,
    files: Mapping[str, str] = FASHION_MNIST_FILES,
) -> tuple[Dataset, Dataset]:
    """Fashion-MNIST as ``(train, test)``: 60,000 and 10,000 28x28 grey images of 10 classes.

    ``x`` is float32 in [0, 1] of shape (N, 1, 28, 28), or (N, 784) with ``flatten``; ``y`` is
    int64, indexing ``FASHION_MNIST_CLASSES``. ``path``: a directory holding your own four
    files, gzipped or not (``train-images-idx3-ubyte.gz`` or ``train-images-idx3-ubyte``, ...);
    they are read from there alone, validated by ``read_idx``, and nothing is downloaded.
    Without it, see the module docstring for where the files are looked for; ``mirrors`` and
    ``files`` (name -> md5) replace the built-in tables.
    """
    return _load_idx_set("fashion-mnist", files, mirrors, path, download, cache_dir, flatten)


def load_mnist(
    path: str | os.PathLike | None = None,
    download: bool = True,
    cache_dir: str | os.PathLike | None = None,
    flatten: bool = False,
    *,
    mirrors: Iterable[str] = MNIST_MIRRORS,
    files: Mapping[str, str] = MNIST_FILES,
) -> tuple[Dataset, Dataset]:
    """MNIST handwritten digits as ``(train, test)``, in the same form as ``load_fashion_mnist``
    (``path`` too); ``y`` indexes ``DIGIT_CLASSES``."""
    return _load_idx_set("mnist", files, mirrors, path, download, cache_dir, flatten)


def load_digits(
    test_fraction: float = 0.2, rng: np.random.Generator | None = None
) -> tuple[Dataset, Dataset]:
    """scikit-learn's 1,797 8x8 digits as ``(train, test)``, split at random by ``rng``.

    ``x`` is float32 in [0, 1] (the 0..16 grey levels divided by 16) of shape (N, 1, 8, 8);
    ``y`` is int64 in 0..9. ``rng`` defaults to ``np.random.default_rng(0)``, so the split is
    the same every time. Needs the optional scikit-learn (``pip install 'glassnet[digits]'``).
    """
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError:
        raise ImportError("load_digits needs scikit-learn: pip install 'glassnet[digits]'") from None
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    digits = sklearn_load_digits()
    x = digits.images.astype(np.float32).reshape(-1, 1, 8, 8)
    x /= 16.0
    rng = np.random.default_rng(0) if rng is None else as_rng(rng, "load_digits")
    return train_val_split(Dataset(x, digits.target.astype(np.int64)), test_fraction, rng)


MNIST1D_MISSING = "load_mnist1d needs the mnist1d package: pip install 'glassnet[mnist1d]'"


def _mnist1d_version() -> str:
    try:
        return importlib.metadata.version("mnist1d")
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(MNIST1D_MISSING) from None


def _make_mnist1d() -> dict[str, np.ndarray]:
    """MNIST-1D from the mnist1d package's default arguments, generated here (never downloaded).

    ``make_dataset`` seeds NumPy's and Python's global generators (seed 42, its default); their
    states are put back afterwards, so loading the data leaves the caller's global state alone.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise ImportError(MNIST1D_MISSING) from None
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {
        "x": data["x"].astype(np.float32),
        "y": data["y"].astype(np.int64),
        "x_test": data["x_test"].astype(np.float32),
        "y_test": data["y_test"].astype(np.int64),
    }


# what a cache file must hold: the package's default split (5,000 signals, 80/20) of length 40
MNIST1D_ARRAYS = {
    "x": ((4000, 40), np.float32),
    "y": ((4000,), np.int64),
    "x_test": ((1000, 40), np.float32),
    "y_test": ((1000,), np.int64),
}


def _read_mnist1d_cache(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of a cache file, each checked for shape, dtype and (labels) range; a
    file that is not one (garbage, truncated, a bare .npy, pickled objects, other arrays) is a
    ``FileFormatError`` naming it."""

    def bad(problem: str) -> FileFormatError:
        problem = f"not a glassnet MNIST-1D cache file ({problem}); delete it to regenerate"
        return FileFormatError(path, problem)

    arrays = {}
    try:
        check_regular_file(path)  # np.load would block on a FIFO
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):  # a bare .npy loads as one array
            raise bad("not an .npz archive")
        with f:
            if sorted(f.files) != sorted(MNIST1D_ARRAYS):
                raise bad(f"arrays {sorted(f.files)}, expected {sorted(MNIST1D_ARRAYS)}")
            for name, (shape, dtype) in MNIST1D_ARRAYS.items():
                a = f[name]
                if a.shape != shape or a.dtype != dtype:
                    raise bad(f"{name} is {a.dtype} {a.shape}, expected {np.dtype(dtype)} {shape}")
                arrays[name] = a
    except FileFormatError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise bad(f"{type(e).__name__}: {e}") from None
    for name in ("y", "y_test"):
        if arrays[name].min() < 0 or arrays[name].max() > 9:
            raise bad(f"{name} holds labels outside 0..9")
    return arrays


def load_mnist1d(cache_dir: str | os.PathLike | None = None, cache: bool = True) -> tuple[Dataset, Dataset]:
    """MNIST-1D (Greydanus 2020) as ``(train, test)``: 4,000 and 1,000 signals of length 40.

    Generated offline by the ``mnist1d`` package with its default arguments
    (``make_dataset(get_dataset_args())``: seed 42, the paper's data set); ``x`` is float32 of
    shape (N, 40), standardised over the whole set as the package does, ``y`` int64 in 0..9.
    The arrays are cached in ``cache_dir`` (default ``~/.cache/glassnet/mnist1d``) as one
    ``.npz`` per package version, written atomically and read without pickle; ``cache=False``
    regenerates. Needs the optional mnist1d (``pip install 'glassnet[mnist1d]'``).
    """
    version = _mnist1d_version()
    cache_dir = default_cache_dir("mnist1d") if cache_dir is None else Path(cache_dir).expanduser()
    path = cache_dir / f"mnist1d-{version}-default.npz"
    arrays = _read_mnist1d_cache(path) if cache and path.is_file() else None
    if arrays is None:
        arrays = _make_mnist1d()
        if cache:
            from .io import write_atomic  # a temporary file, fsynced, then renamed

            cache_dir.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            write_atomic(path, buf.getvalue())
    return Dataset(arrays["x"], arrays["y"]), Dataset(arrays["x_test"], arrays["y_test"])
