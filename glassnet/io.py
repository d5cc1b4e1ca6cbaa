"""Save and load models: weights in a safetensors file, architecture as JSON, never pickle.

File layout: one ``.safetensors`` file (https://github.com/huggingface/safetensors)::

    8 bytes         little-endian u64 n, the length of the JSON header
    n bytes         JSON header: for each tensor its dtype, shape and byte range, plus
                    "__metadata__", a str -> str dict holding
                      "glassnet_format":       "1"
                      "glassnet_architecture": JSON tree of the model,
                          {"type": "Sequential", "config": {},
                           "children": [{"type": "Linear", "config": {...}, "children": []}, ...]}
                          a Graph's config holds its wiring, its children the node modules:
                          {"type": "Graph", "config": {"inputs": ["x"], "nodes": [["h", "x"],
                           ["s", ["h", "x"]]], "outputs": "s"}, "children": [Linear, Add]}
                      "glassnet_user":         the caller's metadata as JSON (optional)
                      "glassnet_checksums":    {"algorithm": "crc32", "metadata": CRC-32 of the
                          other metadata entries, "tensors": {name: CRC-32 of its bytes}}
    the rest        raw little-endian tensor bytes, one entry per ``model.state_dict()`` name
                    ("0.W", "0.b", ...)

Every reader verifies the checksums (the tensors' when it reads them), so a flipped bit is a
``FileFormatError`` naming the tensor, not a silently different model. Files without
``glassnet_checksums`` (written before it existed, or by other programs) are read unverified.

Why no pickle: unpickling runs whatever code the file names, so loading a checkpoint from the
internet would be running a program from the internet. Here the weights are plain bytes with a
declared dtype and shape, and the architecture is data: each ``"type"`` is looked up in an
explicit allow-list (the classes of ``glassnet.layers.__all__`` plus ``Sequential``, and the
classes the caller of ``load`` hands over in ``custom_layers``) and called with its JSON
``config`` as keyword arguments (a container given its children, ``Residual`` or ``Graph``,
gets them rebuilt first, through ``from_config``; a graph's node names are checked by its
constructor: no unknown name, no cycle). Nothing is imported, evaluated or looked
up by attribute from a name found in the file. A broken or hostile file raises
``FileFormatError`` (a ``ValueError``) naming the file and what is wrong with it; a write that
fails raises ``WriteError`` (an ``OSError``) and leaves the file that was there untouched.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import math
import os
import stat
import tempfile
import zlib

import numpy as np
import safetensors.numpy
from safetensors import safe_open

from .errors import FileFormatError, WriteError
from .module import Module, Sequential, is_int

FORMAT = "1"
MAX_DEPTH = 64  # nesting deeper than this in an architecture is hostile or broken
MAX_CHILDREN = 10_000  # layers in one container (or nodes in one graph): more is hostile
MAX_MODULES = 100_000  # modules in one architecture, all containers together
MAX_HEADER = 100_000_000  # bytes of JSON header; the safetensors library's own limit
CHECKSUMS = "glassnet_checksums"  # the metadata key of the CRC-32s of everything else
_KEYS = {"type", "config", "children"}
# A malformed file is a bad value, not a caller's type error: wrong JSON types in the file
# raise FileFormatError (a ValueError) like every other defect of it.


# --- saving -----------------------------------------------------------------------------------
def save(model: Module, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write ``model`` (architecture and ``state_dict()``) and ``metadata`` to ``path``.

    ``metadata`` is any JSON-serialisable dict (training history, class names, ...); read it
    back with ``load_metadata``. The fields glassnet reads back (``input_shape``, ``dataset``,
    ``model``: see ``check_metadata``) must be valid, or ``save`` raises a ``ValueError`` naming
    the field and writes nothing. The write is atomic: the file is written to a temporary file
    in the same directory, flushed to disk and renamed over ``path``, so a crash or an error
    midway leaves either the old file or the new one, never half of one. A ``path`` that is a
    symbolic link stays one: the file it points to is replaced.
    """
    path = os.fspath(path)
    described = architecture(model)
    try:
        tree = json.dumps(described)
    except TypeError as e:  # a config() holding e.g. NumPy scalars
        raise TypeError(f"save: a layer's config() is not JSON-serialisable: {e}") from None
    header = {"glassnet_format": FORMAT, "glassnet_architecture": tree}
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise TypeError(f"save: metadata must be a dict, got {type(metadata).__name__}")
        try:
            header["glassnet_user"] = json.dumps(metadata)
        except (TypeError, ValueError) as e:
            raise TypeError(f"save: metadata is not JSON-serialisable: {e}") from None
        # the fields load_metadata checks, checked as they will be read back (a tuple is a
        # JSON list): a file whose metadata load_metadata refuses is never written
        problem = metadata_problem(json.loads(header["glassnet_user"]))
        if problem:
            raise ValueError(f"save: metadata {problem}; nothing was written to {path}")
    try:
        data = serialise(model.state_dict(), header)
    except Exception as e:
        raise ValueError(f"save: cannot serialise the state dict to {path}: {e}") from e
    write_atomic(path, data)


def architecture(model: Module) -> dict:
    """The architecture tree ``save`` writes for ``model`` (each module's type, config and
    children): equal trees build equal models, so it names a model's design (dropout rates
    included) apart from its weights."""
    if not isinstance(model, Module):
        raise TypeError(f"expected a glassnet Module (a layer or a container), got {type(model).__name__}")
    return _describe(model, _allowed())


def serialise(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """The safetensors file of ``tensors`` and ``metadata``, with their CRC-32s added to the
    metadata (``glassnet_checksums``), which every glassnet reader verifies."""
    # safetensors reads each tensor's raw buffer, so a strided view must be made contiguous
    # np.require keeps 0-d arrays 0-d (ascontiguousarray would make them 1-d)
    tensors = {name: np.require(a, requirements="C") for name, a in tensors.items()}
    checksums = {
        "algorithm": "crc32",
        "metadata": _metadata_crc(metadata),
        "tensors": {name: _tensor_crc(a) for name, a in tensors.items()},
    }
    return safetensors.numpy.save(tensors, metadata={**metadata, CHECKSUMS: json.dumps(checksums)})


def _tensor_crc(a: np.ndarray) -> str:
    """CRC-32 of the bytes the file holds for ``a`` (little-endian, C order), as 8 hex digits."""
    raw = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).reshape(-1).view(np.uint8)
    return f"{zlib.crc32(raw):08x}"


def _metadata_crc(metadata: dict[str, str]) -> str:
    entries = {k: v for k, v in metadata.items() if k != CHECKSUMS}
    return f"{zlib.crc32(json.dumps(entries, sort_keys=True).encode()):08x}"


def _describe(module: Module, allowed: dict[str, type], depth: int = 0) -> dict:
    """The architecture tree of ``module``; refuse what ``load`` could not rebuild.

    A class outside glassnet's allow-list is a user's layer, saved under its class name;
    ``load`` rebuilds it only from a class the caller hands over (``custom_layers``)."""
    cls, name = type(module), type(module).__name__
    builtin = allowed.get(name)
    if builtin is not None and builtin is not cls:
        raise ValueError(
            f"save: {cls.__qualname__} is not glassnet's {name} but has its name, so load() would "
            "rebuild glassnet's: give your class another name"
        )
    if depth > MAX_DEPTH:
        raise ValueError(f"save: the model is nested deeper than {MAX_DEPTH} levels")
    config = module.config()
    if module.children and not _given_children(cls):  # children it builds itself are its state
        own = {k: np.shape(v) for k, v in module.state_dict().items()}
    else:
        own = {p.name: p.shape for p in module.params} | {k: np.shape(b) for k, b in module.buffers().items()}
    try:
        expected = cls.state_shapes(**config)
        if not _given_children(cls):  # load() calls cls(**config): it must be able to
            inspect.signature(cls).bind(**config)
    except (TypeError, ValueError) as e:  # a size beyond what load() accepts (num_layers > 1000)
        hint = ""
        if module.children and not _given_children(cls):
            hint = (
                f"; a container that is given its children is rebuilt from them: give {name} a "
                "classmethod from_config(cls, config, children), as Residual has "
                "(docs/howto/own-layer.md)"
            )
        raise ValueError(f"save: load() could not rebuild {module!r} from its config(): {e}{hint}") from None
    # a user's layer without state_shapes is checked by load_state_dict after it is built
    checked = builtin is not None or cls.state_shapes.__func__ is not Module.state_shapes.__func__
    if checked and expected != own:  # a wrong state_shapes: a bug, caught before writing
        raise ValueError(f"save: {name}.state_shapes gives {expected}, the layer holds {own}")
    children = [_describe(c, allowed, depth + 1) for c in module.children]
    return {"type": name, "config": config, "children": children}


def _given_children(cls: type) -> bool:
    """A container that is given its children (it overrides ``from_config``)."""
    return cls.from_config.__func__ is not Module.from_config.__func__


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, rename over ``path``: a
    reader sees the old file or the new one, never half of one.

    A failure (disk full, permission denied, an I/O error) removes the temporary file, leaves
    ``path`` as it was, and raises ``WriteError`` (an ``OSError`` with the same ``errno``)
    naming ``path`` and the cause.

    A ``path`` that is a symbolic link (or lies under one) is resolved first: the file it
    points to is replaced and the link kept, as ``open(path, "wb")``, ``np.save`` and
    ``torch.save`` do (renaming over the link would replace the link with a regular file).
    """
    path = os.fspath(path)
    try:
        _write_atomic(os.path.realpath(path), data)
    except OSError as e:
        raise WriteError(path, e) from e


def _write_atomic(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    # keep an existing file's permissions; NamedTemporaryFile would leave 0600
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else _default_mode()
    tmp = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp", delete=False
        ) as f:
            tmp = f.name
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    _fsync_dir(directory)


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` without pickle, written atomically."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    write_atomic(path, buf.getvalue())


def _default_mode() -> int | None:
    """0o666 minus the process umask, as ``open`` would create; None where it cannot be read."""
    # /proc avoids os.umask(), which would briefly change the umask of every thread
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


def _fsync_dir(directory: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- opening files to read -------------------------------------------------------------------
_NOT_REGULAR = {
    stat.S_ISDIR: "a directory",
    stat.S_ISFIFO: "a named pipe (FIFO)",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}


def check_regular_file(path: str | os.PathLike) -> None:
    """Refuse ``path`` at once unless it is a regular file (after symbolic links).

    A reader given a FIFO blocks until another process writes to it (forever if none does),
    ``/dev/zero`` never ends, a directory or a socket cannot be read as a file: each is a
    ``FileFormatError`` naming the path and what it is. A missing path raises
    ``FileNotFoundError`` (it names the path). For readers that hand a path to a library;
    ``open_regular`` also closes the gap between this check and the open.
    """
    _refuse_non_regular(os.fspath(path), os.stat(path).st_mode)


def open_regular(path: str | os.PathLike, mode: str = "rb", encoding: str | None = None):
    """``open(path, mode)`` for reading, refusing anything but a regular file before it reads.

    The path is opened without blocking (a FIFO's open would wait for a writer) and the open
    file itself is checked with ``fstat``, so what is read is what was checked. ``mode`` is
    ``"rb"`` or ``"r"`` (text, with ``encoding``). Raises ``FileFormatError`` as
    ``check_regular_file`` does, and the ``OSError`` of the open (it names the path).
    """
    if mode not in ("rb", "r"):
        raise ValueError(f"mode must be 'rb' or 'r', got {mode!r}")
    path = os.fspath(path)
    check_regular_file(path)  # before the open: a socket cannot even be opened
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        _refuse_non_regular(path, os.fstat(fd).st_mode)  # the path may have changed since
        os.set_blocking(fd, True)
        return os.fdopen(fd, mode, encoding=encoding)
    except BaseException:
        os.close(fd)
        raise


def _refuse_non_regular(path: str, mode: int) -> None:
    if not stat.S_ISREG(mode):
        what = next((name for test, name in _NOT_REGULAR.items() if test(mode)), "a special file")
        raise FileFormatError(path, f"is {what}, not a regular file: refused")


# --- loading ----------------------------------------------------------------------------------
def load(path: str | os.PathLike, custom_layers: dict[str, type] | None = None) -> Module:
    """Rebuild the model saved at ``path`` and load its weights.

    Every layer type is resolved through the allow-list: glassnet's layers and containers,
    plus ``custom_layers``, the caller's own ``Module`` subclasses by the class name ``save``
    wrote (``{"MyBlock": MyBlock}``; Keras' ``custom_objects``). A file naming any other class
    is refused: nothing is imported from a name in a file. Layers whose constructor takes
    ``dtype`` get the dtype of their stored tensors. The model comes back in training mode
    (as a freshly built one); dropout layers share one generator seeded with 0: call
    ``model.set_rng(rng)`` before training on.
    """
    path = os.fspath(path)
    allowed = _allowed(custom_layers)
    metadata, tensors = read_file(path, tensors=True)
    if "glassnet_architecture" not in metadata:
        raise FileFormatError(path, "not a glassnet model file (no 'glassnet_architecture' in its metadata)")
    check_format(path, metadata)
    arch = _parse_json(path, metadata["glassnet_architecture"], "glassnet_architecture")
    _check_size(path, arch)
    model = _build(path, arch, allowed, tensors, np.random.default_rng(0))
    try:
        model.load_state_dict(tensors)
    except (KeyError, ValueError) as e:
        raise FileFormatError(path, str(e.args[0] if e.args else e)) from None
    return model


def load_metadata(path: str | os.PathLike) -> dict:
    """The ``metadata`` dict given to ``save`` ({} if none was given); reads no tensors.

    The keys glassnet's own tools read back (``input_shape``, ``dataset``, ``model``, see
    ``check_metadata``) are checked here, so a hostile file is refused with a
    ``FileFormatError`` naming the file and the field; every other key is returned as stored.
    """
    path = os.fspath(path)
    metadata, _ = read_file(path, tensors=False)
    if "glassnet_user" not in metadata:
        return {}
    user = _parse_json(path, metadata["glassnet_user"], "glassnet_user")
    if not isinstance(user, dict):
        raise FileFormatError(path, f"glassnet_user metadata is a {type(user).__name__}, not a dict")
    check_metadata(path, user, "glassnet_user metadata")
    return user


# one example of more values than this is hostile or a mistake: 2**20 is a 1024 x 1024 image,
# and summary/predict allocate a few arrays of it per layer
MAX_INPUT_SIZE = 2**20
MAX_INPUT_DIMS = 8


def input_shape_problem(shape) -> str | None:
    """What is wrong with ``shape`` as one example's shape (None: nothing): it must be a list
    of 1 to ``MAX_INPUT_DIMS`` positive integers holding at most ``MAX_INPUT_SIZE`` values, as
    summary and predict build arrays of it. The rule of a model file's metadata and of the
    command line's ``--input-shape``."""
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= MAX_INPUT_DIMS
        or not all(is_int(n) and n > 0 for n in shape)
    ):
        return (
            f"must be a list of 1 to {MAX_INPUT_DIMS} positive integers (one example's shape), "
            f"got {shorten(shape)}"
        )
    if math.prod(shape) > MAX_INPUT_SIZE:
        return f"{shorten(shape)} holds more than {MAX_INPUT_SIZE:,} values per example"
    return None


def check_metadata(path: str | os.PathLike, meta: dict, where: str = "metadata") -> None:
    """Check the fields of ``meta`` that glassnet reads back (``glassnet train`` writes them
    into a model file and its ``history.json``; the command line reads them), each only when
    present:

    - ``input_shape``: one example's shape, a list of 1 to 8 positive integers holding at most
      ``MAX_INPUT_SIZE`` values (summary and predict build arrays of it);
    - ``dataset``, ``model``: strings (a data set and a preset name).

    Anything else is a ``FileFormatError`` naming ``path``, ``where`` and the field.
    """
    problem = metadata_problem(meta)
    if problem:
        raise FileFormatError(path, f"{where}: {problem}")


def metadata_problem(meta: dict) -> str | None:
    """What ``check_metadata`` finds wrong with ``meta``, naming the field (None: nothing);
    ``save`` refuses such metadata before writing anything."""
    if "input_shape" in meta:
        problem = input_shape_problem(meta["input_shape"])
        if problem:
            return f"'input_shape' {problem}"
    for key in ("dataset", "model"):
        if key in meta and not isinstance(meta[key], str):
            return f"{key!r} must be a string, got {shorten(meta[key])}"
    return None


def read_json(path: str | os.PathLike, max_bytes: int = 64 << 20):
    """The JSON value in the regular file ``path``, or a ``FileFormatError`` naming it.

    Opened without blocking and checked to be a regular file first: a FIFO or a device named
    like a result file must not hang the reader, nor /dev/zero fill the memory. A file over
    ``max_bytes``, invalid UTF-8 or JSON, or nesting too deep for the parser is refused.
    """
    path = os.fspath(path)
    with open_regular(path) as f:  # FileNotFoundError names it
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise FileFormatError(path, f"{size} bytes, more than the {max_bytes} a JSON file may have")
        data = f.read(max_bytes + 1)
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise FileFormatError(path, f"not valid JSON: {shorten(str(e))}") from None


def load_state(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Just the tensors, name -> array, of any safetensors file (glassnet's or not)."""
    path = os.fspath(path)
    return read_file(path, tensors=True)[1]


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """The array in a ``.npy`` file, never unpickled.

    The header is checked before any data is read: an object dtype (which only pickle can
    read), a shape whose size does not match the file, or anything that is not a ``.npy``
    file is a ``FileFormatError`` naming the file.
    """
    path = os.fspath(path)
    with open_regular(path) as f:  # FileNotFoundError names the path
        size = os.fstat(f.fileno()).st_size
        try:
            version = np.lib.format.read_magic(f)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }
            if version not in read_header:
                raise ValueError(f"unsupported .npy format version {version}")
            shape, _, dtype = read_header[version](f, max_header_size=10_000)
        except Exception as e:  # NumPy's header parser raises many types (TokenError, ...)
            raise FileFormatError(path, f"not a .npy file: {type(e).__name__}: {shorten(str(e))}") from None
        if dtype.hasobject:
            raise FileFormatError(
                path, f"holds Python objects ({dtype}), which only pickle could read: refused"
            )
        expected, found = math.prod(shape) * dtype.itemsize, size - f.tell()
        if found != expected:
            raise FileFormatError(
                path,
                f"a .npy array of shape {shape} and dtype {dtype} needs {expected} bytes of data, "
                f"found {found}",
            )
        f.seek(0)
        try:
            return np.load(f, allow_pickle=False)
        except (ValueError, EOFError) as e:
            raise FileFormatError(path, f"not a valid .npy file: {shorten(str(e))}") from None


def read_file(path: str, tensors: bool) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """The header metadata and (if asked) the tensors, or a FileFormatError naming the file."""
    _check_header(path)
    try:
        with safe_open(path, framework="numpy") as f:
            metadata = f.metadata() or {}
            names = f.keys() if tensors else []  # safe_open is not a dict
            arrays = {k: f.get_tensor(k) for k in names}
    except (OSError, MemoryError):
        raise
    except Exception as e:  # SafetensorError, and KeyError for a dtype NumPy lacks (BF16)
        raise FileFormatError(path, f"not a valid safetensors file: {shorten(str(e), 500)}") from e
    _verify(path, metadata, arrays if tensors else None)
    return metadata, arrays


def _verify(path: str, metadata: dict[str, str], arrays: dict[str, np.ndarray] | None) -> None:
    """Check the CRC-32s ``serialise`` stored: of the metadata, and of each tensor in ``arrays``
    (None: the caller read none). A file without them is accepted as it is."""
    if CHECKSUMS not in metadata:
        return
    sums = _parse_json(path, metadata[CHECKSUMS], CHECKSUMS)
    if (
        not isinstance(sums, dict)
        or sums.get("algorithm") != "crc32"
        or not isinstance(sums.get("metadata"), str)
        or not isinstance(sums.get("tensors"), dict)
    ):
        raise FileFormatError(path, f"{CHECKSUMS} must hold the algorithm 'crc32', metadata and tensors")
    if _metadata_crc(metadata) != sums["metadata"]:
        raise FileFormatError(path, "its metadata fails its CRC-32 check: the file is corrupt")
    if arrays is None:
        return
    stored = sums["tensors"]
    if set(stored) != set(arrays):
        odd = sorted(set(stored) ^ set(arrays))
        raise FileFormatError(path, f"the checksums and the tensors differ in {shorten(odd)}: corrupt file")
    for name, a in arrays.items():
        if _tensor_crc(a) != stored[name]:
            raise FileFormatError(
                path, f"tensor {name!r} fails its CRC-32 check: the file is corrupt (its data changed)"
            )


def _check_header(path: str) -> None:
    """Cheap checks of the 8-byte length prefix, for clear messages on non-safetensors files;
    a FIFO, a device or a directory is refused here, before safetensors opens the path."""
    with open_regular(path) as f:  # FileNotFoundError names the path
        size = os.fstat(f.fileno()).st_size
        prefix = f.read(9)
    if size < 8:
        raise FileFormatError(path, f"not a safetensors file (only {size} bytes)")
    n = int.from_bytes(prefix[:8], "little")
    if n > size - 8:
        raise FileFormatError(
            path,
            f"not a safetensors file, or truncated: its header length {n} is larger "
            f"than the file ({size} bytes)",
        )
    if n > MAX_HEADER:
        raise FileFormatError(path, f"safetensors header of {n} bytes, more than the {MAX_HEADER} allowed")
    if prefix[8:9] != b"{":
        raise FileFormatError(path, "not a safetensors file (its header is not a JSON object)")


def check_format(path: str, metadata: dict[str, str]) -> None:
    """Refuse a glassnet file written by a format version this one cannot read."""
    if metadata.get("glassnet_format") != FORMAT:
        raise FileFormatError(
            path,
            f"unsupported glassnet_format {shorten(metadata.get('glassnet_format'))} "
            f"(this version reads {FORMAT!r})",
        )


def _parse_json(path: str, text: str, key: str):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise FileFormatError(path, f"{key} metadata is not valid JSON: {shorten(str(e))}") from None


def _allowed(custom_layers: dict[str, type] | None = None) -> dict[str, type]:
    """Layer name -> class: the allow-list (built now, so newly added layer families join it),
    and the caller's ``custom_layers``, each checked to be a ``Module`` subclass of that name."""
    from . import layers

    allowed = {"Sequential": Sequential}
    for name in layers.__all__:
        obj = getattr(layers, name)
        if isinstance(obj, type) and issubclass(obj, Module):
            allowed[name] = obj
    if custom_layers is None:
        return allowed
    if not isinstance(custom_layers, dict):
        raise TypeError(
            f"custom_layers must be a dict of name -> Module class, got {type(custom_layers).__name__}"
        )
    for name, cls in custom_layers.items():
        if not (isinstance(cls, type) and issubclass(cls, Module)):
            raise TypeError(f"custom_layers[{name!r}] must be a glassnet Module subclass, got {cls!r}")
        if name != cls.__name__:
            raise ValueError(
                f"custom_layers: {name!r} names the class {cls.__name__} (save wrote the class name)"
            )
        if name in allowed and allowed[name] is not cls:
            raise ValueError(f"custom_layers: {name!r} is glassnet's own layer and cannot be replaced")
    return {**allowed, **custom_layers}


def _build(
    path: str,
    node,
    allowed: dict[str, type],
    tensors: dict[str, np.ndarray],
    rng: np.random.Generator,
    prefix: str = "",
    depth: int = 0,
) -> Module:
    """Construct the module tree ``node`` describes; ``prefix`` is its state_dict prefix."""
    where = f"architecture node {prefix.rstrip('.') or '<root>'}"
    if depth > MAX_DEPTH:
        raise FileFormatError(path, f"architecture nested deeper than {MAX_DEPTH} levels")
    if not isinstance(node, dict) or not {"type", "config"} <= set(node) <= _KEYS:
        raise FileFormatError(path, f"{where} must be an object with keys 'type', 'config', 'children'")
    kind, config, children = node["type"], node["config"], node.get("children", [])
    if not isinstance(kind, str):
        raise FileFormatError(path, f"{where}: 'type' is not a string: {shorten(kind)}")
    cls = allowed.get(kind)  # a plain dict lookup: nothing is imported or evaluated
    if cls is None:
        raise FileFormatError(
            path,
            f"unknown layer type {shorten(kind)}: if it is your own layer class, pass it: "
            f"gn.load(path, custom_layers={{{shorten(kind)}: TheClass}}) "
            f"(allowed: {', '.join(sorted(allowed))})",
        )
    if not isinstance(config, dict):
        raise FileFormatError(path, f"{where}: 'config' of {kind} must be an object")
    if not isinstance(children, list):
        raise FileFormatError(path, f"{where}: 'children' of {kind} must be a list")
    if len(children) > MAX_CHILDREN:
        raise FileFormatError(path, f"{where}: {kind} has {len(children)} children, more than {MAX_CHILDREN}")
    if _given_children(cls):
        return _build_container(
            path, where, kind, cls, config, children, allowed, tensors, rng, prefix, depth
        )

    kwargs = dict(config)
    accepts = inspect.signature(cls).parameters
    if "rng" in accepts:  # the weights are overwritten below; only dropout keeps this one
        kwargs["rng"] = rng
    if "dtype" in accepts:
        dtype = _stored_dtype(path, where, kind, tensors, prefix)
        if dtype is not None:
            kwargs["dtype"] = dtype
        if "dtype" in kwargs and not _is_float_dtype(kwargs["dtype"]):
            raise FileFormatError(path, f"{where}: {kind} dtype must be a float type")
    try:
        inspect.signature(cls).bind(**kwargs)  # a missing or unknown argument, named by Python
        shapes = cls.state_shapes(**config)
    except (TypeError, ValueError, OverflowError) as e:
        raise _cannot_build(path, kind, config, e) from None
    _check_shapes(path, where, kind, config, shapes, tensors, prefix)
    try:
        module = cls(**kwargs)
    except Exception as e:  # a bad value the shapes do not depend on (a stride, an init name, ...)
        raise _cannot_build(path, kind, config, e) from e
    # a layer that builds its own children must build the ones the file describes
    if _type_tree(module) != _type_tree_of_node(node, depth):
        raise FileFormatError(path, f"{where}: the {kind} built from its config has other children")
    return module


def _check_size(path: str, arch) -> None:
    """Refuse an architecture of more than ``MAX_MODULES`` modules before building any: nested
    containers of 10,000 children each would otherwise multiply (counted without recursion,
    so the depth limit is ``_build``'s to report)."""
    count, stack = 0, [arch]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_MODULES:
            raise FileFormatError(path, f"the architecture has more than {MAX_MODULES:,} modules")
        children = node.get("children") if isinstance(node, dict) else None
        if isinstance(children, list):
            stack.extend(children)


def _build_container(
    path, where, kind, cls, config, children, allowed, tensors, rng, prefix, depth
) -> Module:
    """A container given its children (``Sequential``, ``Residual``, ``Graph``): the children
    first, each under the state_dict name the container gives it, then ``cls.from_config``."""
    names = _child_names(path, where, kind, cls, config, len(children))
    built = [
        _build(path, c, allowed, tensors, rng, f"{prefix}{n}.", depth + 1) for n, c in zip(names, children)
    ]
    try:
        shapes = cls.state_shapes(**config)
        _check_shapes(path, where, kind, config, shapes, tensors, prefix)
        module = cls.from_config(config, built)
    except FileFormatError:
        raise
    except Exception as e:  # unknown node names, a cycle, a wrong config: the class's own message
        raise _cannot_build(path, kind, config, e) from e
    if module.child_names() != names:
        raise FileFormatError(path, f"{where}: the {kind} built from its config names its children otherwise")
    return module


def _child_names(path: str, where: str, kind: str, cls: type, config: dict, n: int) -> list[str]:
    """The state_dict names of a container's children before they are built: a graph's node
    names (from its config), else the indices (and Residual's block and shortcut)."""
    if kind == "Graph":
        nodes = config.get("nodes")
        if not isinstance(nodes, list) or not all(
            isinstance(x, list) and x and isinstance(x[0], str) for x in nodes
        ):
            raise FileFormatError(path, f"{where}: Graph config 'nodes' must be a list of [name, sources]")
        if len(nodes) != n:
            raise FileFormatError(path, f"{where}: Graph config lists {len(nodes)} nodes for {n} modules")
        return [x[0] for x in nodes]
    if kind == "Residual":
        if not 1 <= n <= 2:
            raise FileFormatError(path, f"{where}: Residual takes 1 or 2 children (block, shortcut), got {n}")
        return ["block", "shortcut"][:n]
    return [str(i) for i in range(n)]


def _cannot_build(path: str, kind: str, config: dict, e: Exception) -> FileFormatError:
    return FileFormatError(
        path, f"cannot build layer {kind} from config {shorten(config)}: {type(e).__name__}: {str(e)[:500]}"
    )


def _check_shapes(
    path: str, where: str, kind: str, config: dict, shapes: dict, tensors: dict, prefix: str
) -> None:
    """Refuse a layer whose config calls for a tensor the file does not store, in that shape,
    before its constructor allocates and initialises it: a 345-byte file naming
    RNN(1, 1, num_layers=1000000) or Linear(70000, 70000) would otherwise cost gigabytes and
    minutes before ``load_state_dict`` compared anything. What the layer allocates is then at
    most what the file holds."""
    for name, shape in shapes.items():
        stored = tensors.get(prefix + name)
        if stored is None or stored.shape != shape:
            found = "none" if stored is None else f"shape {stored.shape}"
            raise FileFormatError(
                path,
                f"{where}: {kind} config {shorten(config)} needs tensor {prefix + name!r} of shape "
                f"{shorten(shape, 100)}, the file holds {found}",
            )


def _stored_dtype(path: str, where: str, kind: str, tensors: dict[str, np.ndarray], prefix: str):
    """The one floating dtype of the tensors under ``prefix`` (None if it has none)."""
    dtypes = {a.dtype for name, a in tensors.items() if name.startswith(prefix)}
    floats = {d for d in dtypes if d.kind == "f"}
    if len(floats) > 1:
        raise FileFormatError(path, f"{where}: {kind} tensors mix dtypes {sorted(map(str, floats))}")
    return floats.pop() if floats else None


def shorten(x, limit: int = 200) -> str:
    """repr for an error message, cut short: a hostile header may hold megabytes of JSON."""
    r = repr(x)
    return r if len(r) <= limit else r[:limit] + "..."


def _is_float_dtype(dtype) -> bool:
    try:
        return np.dtype(dtype).kind == "f"
    except (TypeError, ValueError):
        return False


def _type_tree(module: Module) -> tuple:
    return type(module).__name__, tuple(_type_tree(c) for c in module.children)


def _type_tree_of_node(node, depth: int) -> tuple:
    if depth > MAX_DEPTH or not isinstance(node, dict):
        return ()
    children = node.get("children", [])
    if not isinstance(children, list):
        return ()
    return node.get("type"), tuple(_type_tree_of_node(c, depth + 1) for c in children)
