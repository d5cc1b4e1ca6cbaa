"""Save/load: round trips, atomic writes, and files that are broken or hostile."""

from __future__ import annotations

import ast
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

import glassnet.io as gio
from glassnet.layers import GRU, Dropout, Flatten, Linear, ReLU
from glassnet.module import Sequential


def make_model(dtype=np.float32) -> Sequential:
    rng = np.random.default_rng(1)
    return Sequential(
        Flatten(),
        Linear(12, 8, rng=rng, dtype=dtype),
        ReLU(),
        Dropout(0.3, rng=rng),
        Linear(8, 3, rng=rng, dtype=dtype),
    )


def header_of(path: Path) -> dict:
    """The raw safetensors metadata dict (str -> str) of a file."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + n])["__metadata__"]


def write_with_architecture(path: Path, arch, tensors: dict | None = None) -> Path:
    """A safetensors file carrying ``arch`` (a tree, or a raw string) as its architecture."""
    text = arch if isinstance(arch, str) else json.dumps(arch)
    meta = {"glassnet_format": "1", "glassnet_architecture": text}
    safetensors.numpy.save_file(tensors or {}, str(path), metadata=meta)
    return path


def node(kind: str, config: dict | None = None, children: list | None = None) -> dict:
    return {"type": kind, "config": config or {}, "children": children or []}


# --- round trips ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip(tmp_path, dtype):
    model = make_model(dtype)
    path = tmp_path / "model.safetensors"
    gio.save(model, path)
    loaded = gio.load(path)

    assert repr(loaded) == repr(model)
    before, after = model.state_dict(), loaded.state_dict()
    assert list(after) == list(before) == ["1.W", "1.b", "4.W", "4.b"]
    for name in before:
        assert after[name].dtype == before[name].dtype == dtype
        np.testing.assert_array_equal(after[name], before[name])
        assert after[name] is not before[name]
    x = np.random.default_rng(2).standard_normal((5, 3, 4)).astype(dtype)
    y = loaded.eval()(x)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, model.eval()(x))
    assert gio.load_state(path).keys() == before.keys()


def test_round_trip_of_a_single_layer_and_of_a_model_without_params(tmp_path):
    layer = Linear(4, 2, bias=False, rng=np.random.default_rng(0))
    gio.save(layer, tmp_path / "a.safetensors")
    loaded = gio.load(tmp_path / "a.safetensors")
    assert repr(loaded) == repr(layer)
    np.testing.assert_array_equal(loaded.W.data, layer.W.data)

    gio.save(Sequential(ReLU()), tmp_path / "b.safetensors")
    assert repr(gio.load(tmp_path / "b.safetensors")) == repr(Sequential(ReLU()))


def test_non_contiguous_params_are_saved_by_value(tmp_path):
    model = make_model()
    W = model[1].W
    W.data = np.asfortranarray(W.data)  # a strided layout must not reach the file as raw bytes
    gio.save(model, tmp_path / "m.safetensors")
    np.testing.assert_array_equal(gio.load(tmp_path / "m.safetensors")[1].W.data, W.data)


def test_file_layout(tmp_path):
    path = tmp_path / "m.safetensors"
    gio.save(make_model(), path)
    meta = header_of(path)
    assert meta["glassnet_format"] == "1"
    arch = json.loads(meta["glassnet_architecture"])
    assert arch["type"] == "Sequential" and arch["config"] == {}
    assert [c["type"] for c in arch["children"]] == [
        "Flatten",
        "Linear",
        "ReLU",
        "Dropout",
        "Linear",
    ]
    assert arch["children"][1]["config"]["in_features"] == 12
    assert "glassnet_user" not in meta


def test_metadata_round_trip(tmp_path):
    path = tmp_path / "m.safetensors"
    meta = {"history": {"loss": [1.5, 0.75], "acc": [0.5, 0.9]}, "classes": ["cat", "dog"]}
    gio.save(make_model(), path, metadata=meta)
    assert gio.load_metadata(path) == meta
    gio.save(make_model(), path)
    assert gio.load_metadata(path) == {}


@pytest.mark.parametrize(
    "meta, match",
    [
        ({"input_shape": (3, 0), "notes": "x"}, r"'input_shape' must be a list of 1 to 8 positive integers"),
        ({"input_shape": "3"}, r"'input_shape' must be a list"),
        ({"input_shape": [4096, 4096]}, r"'input_shape' \[4096, 4096\] holds more than"),
        ({"model": {"name": "mine"}}, r"'model' must be a string"),
        ({"dataset": None}, r"'dataset' must be a string, got None"),
    ],
)
def test_save_refuses_metadata_load_metadata_would_refuse(tmp_path, meta, match):
    """Refused before anything is written: the old file stays, readable; was written, and then
    load_metadata (and predict/summary/export) refused the file's metadata."""
    path = tmp_path / "m.safetensors"
    gio.save(make_model(), path, metadata={"version": 1})
    old = path.read_bytes()
    with pytest.raises(ValueError, match="save: metadata " + match):
        gio.save(make_model(), path, metadata=meta)
    assert path.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    gio.save(make_model(), path, metadata={"input_shape": (3, 4), "dataset": "mnist"})  # a tuple is a list
    assert gio.load_metadata(path) == {"input_shape": [3, 4], "dataset": "mnist"}


def test_saving_through_a_symbolic_link_updates_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "run3").mkdir()
    target, link = tmp_path / "run3" / "model.safetensors", tmp_path / "latest.safetensors"
    old, new = Sequential(Linear(3, 2, rng=0)), Sequential(Linear(3, 2, rng=1))
    gio.save(old, target)
    os.chmod(target, 0o640)
    os.symlink("run3/model.safetensors", link)
    gio.save(new, link)
    assert os.path.islink(link) and os.readlink(link) == "run3/model.safetensors"
    assert np.array_equal(gio.load(target).state_dict()["0.W"], new.state_dict()["0.W"])
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.safetensors", "run3"]
    assert [p.name for p in (tmp_path / "run3").iterdir()] == ["model.safetensors"]
    # a link to a file not there yet creates it, as open(path, "wb") would
    os.symlink("run3/new.safetensors", tmp_path / "dangling")
    gio.write_atomic(tmp_path / "dangling", b"abc")
    assert (
        os.path.islink(tmp_path / "dangling")
        and (tmp_path / "run3" / "new.safetensors").read_bytes() == b"abc"
    )


def test_save_refuses_what_load_could_not_rebuild(tmp_path):
    class Linear(ReLU):  # a user's class named like glassnet's: load() would rebuild glassnet's
        pass

    with pytest.raises(ValueError, match="not glassnet's Linear but has its name"):
        gio.save(Sequential(Linear()), tmp_path / "m.safetensors")

    class NeedsAnArgument(ReLU):  # config() does not return what the constructor needs
        def __init__(self, size):
            super().__init__()

    with pytest.raises(ValueError, match=r"could not rebuild NeedsAnArgument.*from its config\(\).*size"):
        gio.save(Sequential(NeedsAnArgument(3)), tmp_path / "m.safetensors")
    with pytest.raises(TypeError, match="JSON"):
        gio.save(make_model(), tmp_path / "m.safetensors", metadata={"x": object()})
    # load() refuses more than MAX_LAYERS stacked recurrent layers, so save() does too
    with pytest.raises(ValueError, match=r"save: load\(\) could not rebuild GRU.*num_layers must be"):
        gio.save(Sequential(GRU(1, 1, num_layers=1001)), tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_a_layer_whose_state_shapes_are_wrong(tmp_path, monkeypatch):
    """load() checks a file against state_shapes: a wrong one would make the file unreadable."""
    monkeypatch.setattr(Linear, "state_shapes", classmethod(lambda cls, **config: {"W": (2, 2)}))
    with pytest.raises(ValueError, match=r"save: Linear.state_shapes gives \{'W': \(2, 2\)\}"):
        gio.save(Sequential(Linear(2, 2)), tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_a_bit_flip_in_a_weight_is_refused_naming_the_tensor(tmp_path):
    path = tmp_path / "m.safetensors"
    gio.save(make_model(), path, metadata={"classes": ["a", "b", "c"]})
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    start = 8 + n + json.loads(raw[8 : 8 + n])["4.b"]["data_offsets"][0]
    path.write_bytes(raw[:start] + bytes([raw[start] ^ 0x10]) + raw[start + 1 :])
    with pytest.raises(gio.FileFormatError, match=r"m.safetensors: tensor '4.b' fails its CRC-32 check"):
        gio.load(path)
    with pytest.raises(gio.FileFormatError, match="'4.b' fails its CRC-32 check"):
        gio.load_state(path)
    assert gio.load_metadata(path) == {"classes": ["a", "b", "c"]}  # it reads no tensor


def test_single_bit_flips_of_a_model_file_are_refused_or_harmless(tmp_path):
    """Flip each bit of a small model's data, and one bit of 300 places in its header:
    ``load`` refuses the file (FileFormatError) or returns the very model saved (a flip in a
    name no reader uses). Before the checksums every flip in the data loaded another model."""
    path = tmp_path / "m.safetensors"
    model = Sequential(Linear(2, 3), ReLU(), Linear(3, 1))
    gio.save(model, path, metadata={"n": 1})
    good, state = path.read_bytes(), model.state_dict()
    data_start = 8 + int.from_bytes(good[:8], "little")
    rng = np.random.default_rng(0)
    flips = [(at, bit) for at in range(data_start, len(good)) for bit in range(8)]
    flips += [(int(at), int(rng.integers(8))) for at in rng.choice(data_start, 300, replace=False)]
    silent = []
    for at, bit in flips:
        path.write_bytes(good[:at] + bytes([good[at] ^ (1 << bit)]) + good[at + 1 :])
        try:
            loaded, meta = gio.load(path), gio.load_metadata(path)
        except gio.FileFormatError:
            continue
        same = repr(loaded) == repr(model) and meta == {"n": 1}
        same = same and all(np.array_equal(v, state[k]) for k, v in loaded.state_dict().items())
        if not same:
            silent.append((at, bit))
    assert silent == [], f"{len(silent)} bit flips loaded a different model, e.g. {silent[:5]}"


def test_a_model_file_without_checksums_still_loads(tmp_path):
    """Files written before the checksums existed (or edited by hand) load unverified."""
    model = make_model()
    path = tmp_path / "m.safetensors"
    gio.save(model, path, metadata={"k": 1})
    meta = header_of(path)
    del meta[gio.CHECKSUMS]
    safetensors.numpy.save_file(tensors_of(model), str(path), metadata=meta)
    loaded = gio.load(path)
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert gio.load_metadata(path) == {"k": 1}


# --- atomic writes ----------------------------------------------------------------------------
@pytest.mark.parametrize("fail_at", ["fsync", "replace"])
def test_failed_save_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch, fail_at):
    path = tmp_path / "m.safetensors"
    gio.save(make_model(), path, metadata={"version": 1})
    old = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, fail_at, boom)
    bigger = Sequential(Linear(12, 100), ReLU(), Linear(100, 3))
    with pytest.raises(OSError, match="disk full"):
        gio.save(bigger, path, metadata={"version": 2})
    monkeypatch.undo()

    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    assert gio.load_metadata(path) == {"version": 1}


def test_write_atomic_syncs_the_data_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync dir",) if stat.S_ISDIR(st.st_mode) else ("fsync file", st.st_size))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.dirname(src) == os.path.dirname(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    gio.write_atomic(tmp_path / "f.bin", b"x" * 100)
    # the whole file (flushed from Python's buffer) reaches the disk, then the rename in the
    # same directory, then the directory entry
    assert events == [("fsync file", 100), ("replace", True), ("fsync dir",)]
    assert (tmp_path / "f.bin").read_bytes() == b"x" * 100


def test_save_overwrites_and_keeps_permissions(tmp_path):
    path = tmp_path / "m.safetensors"
    gio.save(make_model(), path)
    os.chmod(path, 0o640)
    gio.save(Sequential(ReLU()), path)
    assert repr(gio.load(path)) == repr(Sequential(ReLU()))
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


# --- broken and hostile files -----------------------------------------------------------------
def test_missing_file(tmp_path):
    for fn in (gio.load, gio.load_metadata, gio.load_state):
        with pytest.raises(FileNotFoundError, match="nope.safetensors"):
            fn(tmp_path / "nope.safetensors")


def test_random_bytes(tmp_path):
    path = tmp_path / "random.safetensors"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    for fn in (gio.load, gio.load_metadata, gio.load_state):
        with pytest.raises(ValueError, match="random.safetensors: not a safetensors file"):
            fn(path)


def test_tiny_and_empty_files(tmp_path):
    for content in (b"", b"\x01\x02", b"\x02\x00\x00\x00\x00\x00\x00\x00[]"):
        path = tmp_path / "tiny.safetensors"
        path.write_bytes(content)
        with pytest.raises(ValueError, match="tiny.safetensors: not a safetensors file"):
            gio.load(path)


@pytest.mark.parametrize("keep", [0.5, 0.999, 0.01])
def test_truncated_file(tmp_path, keep):
    good = tmp_path / "good.safetensors"
    gio.save(make_model(), good)
    raw = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(ValueError, match="cut.safetensors"):
        gio.load(cut)
    with pytest.raises(ValueError, match="cut.safetensors"):
        gio.load_state(cut)


def test_plain_safetensors_file_is_not_a_model(tmp_path):
    path = tmp_path / "plain.safetensors"
    tensors = {"weight": np.ones((2, 3), np.float32)}
    safetensors.numpy.save_file(tensors, str(path))
    with pytest.raises(ValueError, match="plain.safetensors: not a glassnet model file"):
        gio.load(path)
    # the tensors and (absent) metadata of any safetensors file can still be read
    np.testing.assert_array_equal(gio.load_state(path)["weight"], tensors["weight"])
    assert gio.load_metadata(path) == {}


@pytest.mark.parametrize("kind", ["os.system", "__import__", "eval", "builtins.exec", "Module"])
def test_types_outside_the_allow_list_are_rejected_and_never_run(tmp_path, monkeypatch, kind):
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    marker = tmp_path / "pwned"
    config = {"command": f"touch {marker}"}
    path = write_with_architecture(tmp_path / "evil.safetensors", node(kind, config))
    with pytest.raises(ValueError, match=r"evil.safetensors: unknown layer type .*allowed: .*Linear"):
        gio.load(path)
    nested = node("Sequential", children=[node("ReLU"), node(kind, config)])
    path = write_with_architecture(tmp_path / "evil2.safetensors", nested)
    with pytest.raises(ValueError, match="unknown layer type"):
        gio.load(path)
    assert calls == [] and not marker.exists()


@pytest.mark.parametrize(
    ("arch", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON|nested deeper"),
        (json.dumps([1, 2]), "must be an object"),
        (json.dumps({"type": "ReLU"}), "must be an object with keys"),
        (json.dumps({**node("ReLU"), "code": "x"}), "must be an object with keys"),
        (json.dumps(node(["Linear"])), "'type' is not a string"),
        (json.dumps({"type": "ReLU", "config": [1], "children": []}), "'config' of ReLU"),
        (json.dumps({"type": "Sequential", "config": {}, "children": {}}), "'children' of"),
        (json.dumps(node("Sequential", {"x": 1})), "Sequential takes no config"),
        (json.dumps(node("ReLU", children=[node("ReLU")])), "other children"),
    ],
)
def test_malformed_architecture(tmp_path, arch, reason):
    path = write_with_architecture(tmp_path / "bad.safetensors", arch)
    with pytest.raises(ValueError, match=f"bad.safetensors: .*({reason})"):
        gio.load(path)


def test_absurd_nesting_is_refused(tmp_path):
    arch = node("ReLU")
    for _ in range(200):
        arch = node("Sequential", children=[arch])
    path = write_with_architecture(tmp_path / "deep.safetensors", arch)
    with pytest.raises(ValueError, match="deep.safetensors: architecture nested deeper than 64"):
        gio.load(path)


@pytest.mark.parametrize(
    "config",
    [
        {"in_features": 12, "out_features": 3, "bogus": 1},
        {"in_features": "12", "out_features": 3},
        {"in_features": 12},
        {"in_features": 12, "out_features": 3, "init": "no_such_init"},
        {"in_features": 12, "out_features": 3, "init": [1]},
    ],
)
def test_bad_config_names_the_layer_and_file(tmp_path, config):
    tensors = {"W": np.zeros((12, 3), np.float32), "b": np.zeros(3, np.float32)}
    path = write_with_architecture(tmp_path / "cfg.safetensors", node("Linear", config), tensors)
    with pytest.raises(ValueError, match="cfg.safetensors: cannot build layer Linear"):
        gio.load(path)


def test_config_cannot_choose_rng_or_a_non_float_dtype(tmp_path):
    arch = node("Dropout", {"p": 0.5, "rng": 7})
    path = write_with_architecture(tmp_path / "rng.safetensors", arch)
    assert isinstance(gio.load(path).rng, np.random.Generator)
    tensors = {"W": np.zeros((2, 3), np.int64), "b": np.zeros(3, np.int64)}
    arch = node("Linear", {"in_features": 2, "out_features": 3, "dtype": "object"})
    path = write_with_architecture(tmp_path / "dtype.safetensors", arch, tensors)
    with pytest.raises(ValueError, match="dtype.safetensors: .*dtype must be a float type"):
        gio.load(path)


def tensors_of(model) -> dict:
    return {k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}


def arch_of(model) -> dict:
    return gio._describe(model, gio._allowed())


def test_wrong_shape(tmp_path):
    model = make_model()
    tensors = tensors_of(model)
    tensors["4.W"] = np.zeros((8, 4), np.float32)
    path = write_with_architecture(tmp_path / "shape.safetensors", arch_of(model), tensors)
    with pytest.raises(
        ValueError, match=r"shape.safetensors: .*'4.W' of shape \(8, 3\), the file holds shape \(8, 4\)"
    ):
        gio.load(path)


def test_missing_and_unexpected_tensors(tmp_path):
    model = make_model()
    tensors = tensors_of(model)
    del tensors["1.b"]
    path = write_with_architecture(tmp_path / "missing.safetensors", arch_of(model), tensors)
    with pytest.raises(
        ValueError, match=r"missing.safetensors: .*needs tensor '1.b' of shape \(8,\), the file holds none"
    ):
        gio.load(path)
    tensors = {**tensors_of(model), "9.W": np.zeros(2, np.float32)}
    path = write_with_architecture(tmp_path / "extra.safetensors", arch_of(model), tensors)
    with pytest.raises(ValueError, match=r"extra.safetensors: .*unexpected \['9.W'\]"):
        gio.load(path)


def test_mixed_dtypes_in_one_layer(tmp_path):
    model = make_model()
    tensors = tensors_of(model)
    tensors["1.b"] = tensors["1.b"].astype(np.float64)
    path = write_with_architecture(tmp_path / "mixed.safetensors", arch_of(model), tensors)
    with pytest.raises(ValueError, match="mixed.safetensors: .*mix dtypes"):
        gio.load(path)


def test_bad_format_version_and_user_metadata(tmp_path):
    path = tmp_path / "m.safetensors"
    gio.save(make_model(), path)
    # edited by hand, without the checksums (which the edit would break: a corrupt file)
    meta = {**header_of(path), "glassnet_format": "99"}
    del meta[gio.CHECKSUMS]
    safetensors.numpy.save_file(gio.load_state(path), str(path), metadata=meta)
    with pytest.raises(ValueError, match="m.safetensors: unsupported glassnet_format '99'"):
        gio.load(path)
    meta = {**meta, "glassnet_user": "{oops"}
    safetensors.numpy.save_file(gio.load_state(path), str(path), metadata=meta)
    with pytest.raises(ValueError, match="m.safetensors: glassnet_user metadata is not valid"):
        gio.load_metadata(path)


def test_io_never_imports_pickle_or_evaluates_code():
    tree = ast.parse(Path(gio.__file__).read_text())
    imported, used = set(), set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            imported |= {a.name.split(".")[0] for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module:
            imported.add(n.module.split(".")[0])
        elif isinstance(n, ast.Name):
            used.add(n.id)
        elif isinstance(n, ast.Attribute):
            used.add(n.attr)
    assert not imported & {"pickle", "cPickle", "dill", "joblib", "marshal", "shelve", "importlib"}
    assert not used & {"eval", "exec", "compile", "__import__", "import_module", "allow_pickle"}


def test_something_that_is_not_a_module_is_named_not_an_attribute_error(tmp_path):
    """save and architecture describe glassnet modules only: anything else is a TypeError saying
    what was expected and what came, and no file is written."""
    for call in (lambda: gio.architecture("model.safetensors"), lambda: gio.save("x", tmp_path / "m")):
        with pytest.raises(TypeError, match="expected a glassnet Module .*, got str"):
            call()
    assert list(tmp_path.iterdir()) == []
