"""Experiments over seeds: the config reader, resume, identical results in every backend (this
process, a process pool, a Dask cluster on 127.0.0.1), the statistics against scipy, the report,
ensembles, the learning-rate range test and the command line. Tiny runs on the 8x8 digits."""

from __future__ import annotations

import copy
import json
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

import glassnet as gn
from glassnet import experiments as ex
from glassnet import report
from glassnet.cli import main
from glassnet.experiment_config import ConfigError, check_data_sizes, load_config, parse_config

pytest.importorskip("sklearn")

TINY = {
    "name": "tiny",
    "seeds": [0, 1],
    "data": {"dataset": "digits", "train_size": 400, "test_size": 200},
    "train": {"epochs": 3, "batch_size": 32},
    "model": {"hidden": [16]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "variants": {
        "none": {},
        "drop": {"model": {"hidden_dropout": 0.5}},
        "pen": {"regularizer": {"kind": "dropout-penalty", "p_input": 0.2, "p_hidden": 0.5}},
        "ens": {"train": {"ensemble": 3}},
    },
}

TOML = """
name = "toml"
baseline = "l2"
seeds = 3
[data]
dataset = "digits"
[train]
epochs = 4
[model]
hidden = [32, 16]
input_dropout = 0.1
[optimizer]
name = "sgd"
lr = 1
momentum = 0.9
[regularizer]
kind = "l1"
l1 = 1e-4
[variants.base]
[variants.l2]
regularizer = { kind = "l2", l2 = 1e-3 }
model = { hidden_dropout = 0.5, dropout = "gaussian" }
[variants.preset]
model = { preset = "mlp" }
"""


def without_wall(results):
    return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in results]


# --- the config reader -------------------------------------------------------------------------
def test_toml_is_resolved_variant_by_variant(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text(TOML)
    exp = load_config(path)
    assert exp.baseline == "l2" and exp.seeds == (0, 1, 2) and list(exp.variants) == ["base", "l2", "preset"]
    base, l2, preset = (exp.variants[v] for v in ("base", "l2", "preset"))
    assert base["model"] == {"hidden": [32, 16], "activation": "relu", "init": "he_uniform",
                             "input_dropout": 0.1, "hidden_dropout": 0.0, "dropout": "bernoulli"}  # fmt: skip
    assert base["optimizer"] == {"name": "sgd", "lr": 1.0, "momentum": 0.9}  # an int lr becomes a float
    assert base["regularizer"] == {"kind": "l1", "l1": 1e-4}
    assert base["train"] == {"epochs": 4, "batch_size": 128, "ensemble": 1, "ensemble_mode": "average",
                             "schedule": "none"}  # fmt: skip
    # model changes merge key by key; a regularizer replaces the base's whole
    assert l2["model"] == {**base["model"], "hidden_dropout": 0.5, "dropout": "gaussian"}
    assert l2["regularizer"] == {"kind": "l2", "l2": 1e-3}
    assert preset["model"] == {"preset": "mlp"}
    assert all(v["data"] == base["data"] for v in exp.variants.values())


def _with(change):
    raw = copy.deepcopy(TINY)
    change(raw)
    return raw


BAD = [
    (lambda r: r.update(colour="red"), r"top level: unknown key 'colour'"),
    (lambda r: r.pop("data"), r"missing table \[data\]"),
    (lambda r: r["data"].pop("dataset"), r"\[data\]: missing key 'dataset'"),
    (lambda r: r["data"].update(dataset="cifar"), r"\[data\] dataset: expected one of"),
    (lambda r: r["train"].pop("epochs"), r"\[train\]: missing key 'epochs'"),
    (lambda r: r["train"].update(epochs=True), r"\[train\] epochs: expected an integer, got True"),
    (lambda r: r["train"].update(epochs=2.5), r"\[train\] epochs: expected an integer"),
    (lambda r: r["train"].update(epochs=0), r"\[train\] epochs: expected a number >= 1"),
    (lambda r: r["model"].update(hidden="wide"), r"\[model\] hidden: expected a list of integers"),
    (lambda r: r["model"].update(hidden=[16, 0]), r"\[model\] hidden: expected a list of layer sizes"),
    (lambda r: r["model"].update(depth=3), r"\[model\]: unknown key 'depth'"),
    (lambda r: r["model"].update(input_dropout=1.0), r"input_dropout: expected a probability"),
    (lambda r: r["optimizer"].update(lr=float("nan")), r"\[optimizer\] lr: expected a finite number"),
    (lambda r: r["optimizer"].update(lr="fast"), r"\[optimizer\] lr: expected a number, got 'fast'"),
    (lambda r: r.update(model={"preset": "mlp", "hidden": [3]}), r"'preset' takes no other model keys"),
    (lambda r: r.update(model={"preset": "resnet-152"}), r"\[model\] preset: expected one of"),
    (lambda r: r.update(model={"preset": "mlp"}), r"\[variants.drop.model\]: cannot change keys of the base"),
    (lambda r: r["variants"].update(x={"regularizer": {"kind": "l2"}}), r"kind 'l2' needs key 'l2'"),
    (
        lambda r: r["variants"].update(x={"regularizer": {"kind": "l2", "l2": 1e-4, "l1": 1.0}}),
        r"\[variants.x.regularizer\] l1: not used by kind 'l2'",
    ),  # fmt: skip
    (lambda r: r["variants"].update(x={"data": {"train_size": 5}}), r"\[variants.x\]: unknown key 'data'"),
    (lambda r: r["variants"].update({"../up": {}}), r"a variant name must be"),
    (
        lambda r: r["variants"].update({"report.md": {}}),
        r"\[variants.report.md\]: the name of a file the report",
    ),
    (lambda r: r["variants"].update(x=[1]), r"\[variants.x\]: expected a table"),
    (lambda r: r.update(variants={}), r"expected at least one variant"),
    (lambda r: r.update(baseline="best"), r"baseline: 'best' is not a variant"),
    (lambda r: r.update(seeds=[1, 1]), r"seeds: expected distinct non-negative seeds"),
    (lambda r: r.update(seeds=0), r"seeds: expected a count in 1..10000"),
    (lambda r: r.update(seeds="five"), r"seeds: expected a list of integers"),
]


@pytest.mark.parametrize("change, match", BAD, ids=[m for _, m in BAD])
def test_malformed_configs_name_the_source_and_the_key(change, match):
    with pytest.raises(ConfigError, match=match) as info:
        parse_config(_with(change), source="e.toml")
    assert str(info.value).startswith("e.toml: ")


def test_unreadable_files_raise_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"missing.toml: cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\ndataset = 1")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):
        load_config(bad)
    bad.write_bytes(b"name = '\xff\xfe'")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):
        load_config(bad)


toml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(section=st.sampled_from(["data", "train", "model", "optimizer", "regularizer", "variants", "top"]),
       key=st.sampled_from(["dataset", "epochs", "hidden", "lr", "kind", "l2", "none", "seeds", "baseline",
                            "preset", "ensemble", "x"]),
       value=toml_values)  # fmt: skip
def test_fuzzed_configs_raise_only_config_error(section, key, value):
    raw = copy.deepcopy(TINY)
    raw["optimizer"] = {}
    target = raw if section == "top" else raw.setdefault(section, {})
    if isinstance(target, dict):
        target[key] = value
    try:
        parse_config(raw, source="fuzz")
    except ConfigError as e:
        assert str(e).startswith("fuzz")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_fuzzed_files_raise_only_config_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "e.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError):  # no valid experiment is this short without [data] and [train]
        load_config(path)


# --- runs, resume, backends ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """TINY run in this process; the reference for the other backends."""
    out = tmp_path_factory.mktemp("local")
    return out, ex.compare(TINY, out, workers=1, report=False, log=lambda line: None)


def test_every_run_writes_its_result_file(local):
    out, results = local
    assert len(results) == 8
    for r in results:
        on_disk = json.loads((out / r["variant"] / f"seed{r['seed']}.json").read_text())
        assert on_disk == r
        assert set(r) >= {"config", "seed", "history", "final", "best", "wall_seconds", "members"}
        assert len(r["history"]["test_accuracy"]) == 3 and r["final"]["test_accuracy"] > 0.3
        assert r["best"]["test_accuracy"] == max(r["history"]["test_accuracy"])
        assert r["best"]["test_loss"] == min(r["history"]["test_loss"])
    assert json.loads((out / "experiment.json").read_text())["variants"] == ["none", "drop", "pen", "ens"]


def test_results_are_identical_in_a_process_pool(local, tmp_path):
    _, reference = local
    pooled = ex.compare(TINY, tmp_path, workers=2, report=False, log=lambda line: None)
    assert without_wall(pooled) == without_wall(reference)


def test_results_are_identical_on_a_dask_cluster(local, tmp_path):
    distributed = pytest.importorskip("distributed")
    # a worker in its own process, as on a real cluster (it imports glassnet and loads the data
    # itself); Dask's nanny starts it with OPENBLAS_NUM_THREADS=1, as the pool's workers
    cluster = distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        protocol="tcp",
        dashboard_address=None,
    )
    with cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        remote = ex.compare(TINY, tmp_path, scheduler=cluster.scheduler_address, report=False,
                            log=lambda line: None)  # fmt: skip
    assert without_wall(remote) == without_wall(local[1])


def test_an_interrupted_experiment_resumes_without_redoing_finished_runs(local, tmp_path, monkeypatch):
    real, calls = ex.run_one, []

    def interrupted_after_three(spec):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append((spec["variant"], spec["seed"]))
        return real(spec)

    monkeypatch.setattr(ex, "run_one", interrupted_after_three)
    with pytest.raises(KeyboardInterrupt):
        ex.compare(TINY, tmp_path, workers=1, report=False, log=lambda line: None)
    done = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/seed*.json"))
    assert len(done) == 3
    stamps = {p: os.stat(tmp_path / p).st_mtime_ns for p in done}
    first = list(calls)
    calls.clear()
    monkeypatch.setattr(
        ex, "run_one", lambda spec: calls.append((spec["variant"], spec["seed"])) or real(spec)
    )
    lines = []
    results = ex.compare(TINY, tmp_path, workers=1, report=False, log=lines.append)
    assert "8 runs, 3 already done, 5 to run" in lines[0]
    assert len(calls) == 5 and not set(calls) & set(first)
    assert {p: os.stat(tmp_path / p).st_mtime_ns for p in done} == stamps  # untouched
    assert without_wall(results) == without_wall(local[1])


def test_a_changed_or_corrupt_result_is_run_again(local, tmp_path):
    out, _ = local
    for path in out.glob("*/seed*.json"):
        (tmp_path / path.parent.name).mkdir(exist_ok=True)
        (tmp_path / path.parent.name / path.name).write_bytes(path.read_bytes())
    (tmp_path / "none" / "seed0.json").write_text('{"format": 1, "seed": 0, "conf')  # a torn write
    changed = _with(lambda r: r["variants"]["drop"].update(train={"epochs": 2}))
    lines = []
    ex.compare(changed, tmp_path, workers=1, report=False, log=lines.append)
    assert "8 runs, 5 already done, 3 to run" in lines[0]  # none/seed0 and both drop runs
    drop = json.loads((tmp_path / "drop" / "seed1.json").read_text())
    assert drop["config"]["train"]["epochs"] == 2 and len(drop["history"]["test_loss"]) == 2
    rerun, original = (json.loads((d / "none" / "seed0.json").read_text()) for d in (tmp_path, out))
    assert without_wall([rerun]) == without_wall([original])


def test_a_variant_renamed_with_its_folder_is_run_again(local, tmp_path):
    """Its files still say the old name: not done (the report would leave them out)."""
    out, _ = local
    for path in out.glob("*/seed*.json"):
        folder = "drop2" if path.parent.name == "drop" else path.parent.name
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / path.name).write_bytes(path.read_bytes())
    renamed = _with(lambda r: r["variants"].update(drop2=r["variants"].pop("drop")))
    lines = []
    ex.compare(renamed, tmp_path, workers=1, report=False, log=lines.append)
    assert "8 runs, 6 already done, 2 to run" in lines[0]
    assert json.loads((tmp_path / "drop2" / "seed0.json").read_text())["variant"] == "drop2"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_run_is_named_and_the_others_are_saved(tmp_path, workers):
    # the cnn preset cannot take 8x8 digits: every run of that variant raises ShapeError
    raw = _with(lambda r: r.update(variants={"none": {}, "bad": {"model": {"preset": "cnn"}}}))
    lines = []
    with pytest.raises(RuntimeError, match=r"2 of 4 runs failed \(bad/seed\d, bad/seed\d\)") as info:
        ex.compare(raw, tmp_path, workers=workers, report=False, log=lines.append)
    assert isinstance(info.value.__cause__, gn.ShapeError)
    assert sorted(s for v, s, _ in info.value.failures if v == "bad") == [0, 1]
    assert sum("failed: ShapeError: Conv2d" in line for line in lines) == 2
    assert sorted(p.name for p in (tmp_path / "none").glob("seed*.json")) == ["seed0.json", "seed1.json"]
    assert not (tmp_path / "bad").exists()


def test_a_rerun_removes_the_out_of_date_report_first(local, tmp_path, monkeypatch):
    """A changed experiment whose rerun fails (or is interrupted) leaves no report of the old
    configuration; one with nothing to run keeps its report."""
    out, _ = local
    for path in out.glob("*/seed*.json"):
        (tmp_path / path.parent.name).mkdir(exist_ok=True)
        (tmp_path / path.parent.name / path.name).write_bytes(path.read_bytes())
    ex.compare(TINY, tmp_path, workers=1, log=lambda line: None)
    assert (tmp_path / "report.md").exists() and (tmp_path / "curves.png").exists()
    changed = _with(lambda r: r["variants"]["drop"].update(train={"epochs": 2}))
    monkeypatch.setattr(ex, "run_one", lambda spec: 1 / 0)
    lines = []
    with pytest.raises(ex.FailedRunsError, match="glassnet report"):
        ex.compare(changed, tmp_path, workers=1, log=lines.append)
    assert not (tmp_path / "report.md").exists() and not (tmp_path / "curves.png").exists()
    assert any("removed the out-of-date report.md and curves.png" in line for line in lines)
    assert len(list(tmp_path.glob("*/seed*.json"))) == 8  # the results stay
    monkeypatch.undo()
    ex.compare(TINY, tmp_path, workers=1, log=lambda line: None)  # drop reruns: a new report
    stamp = os.stat(tmp_path / "report.md").st_mtime_ns
    ex.compare(TINY, tmp_path, workers=1, report=False, log=lambda line: None)  # nothing to run
    assert os.stat(tmp_path / "report.md").st_mtime_ns == stamp


def test_ensemble_member_zero_is_the_single_network_of_the_same_seed(local):
    _, results = local
    by = {(r["variant"], r["seed"]): r for r in results}
    for seed in (0, 1):
        single, ens = by[("none", seed)], by[("ens", seed)]
        assert len(ens["members"]) == 3
        assert ens["members"][0] == single["members"][0]
        assert ens["members"][1] != ens["members"][0]  # independent members
        assert ens["final"]["test_accuracy"] == ens["final"]["average_accuracy"]


def test_a_voting_ensemble_reports_the_vote(local):
    _, results = local
    ens = next(r for r in results if r["variant"] == "ens" and r["seed"] == 0)
    cfg = copy.deepcopy(ens["config"])
    cfg["train"]["ensemble_mode"] = "vote"
    vote = ex.run_one({"variant": "vote", "seed": 0, "config": cfg})
    assert vote["members"] == ens["members"]  # the same networks, combined another way
    assert vote["final"]["test_accuracy"] == ens["final"]["vote_accuracy"] == vote["final"]["vote_accuracy"]
    assert vote["history"]["test_loss"] == ens["history"]["test_loss"]  # of the averaged probabilities


def test_ensemble_scores_average_probabilities_and_vote():
    # 2 members, 3 examples, 3 classes; probabilities chosen so averaging and voting disagree
    probs = np.array([
        [[0.6, 0.4, 0.0], [0.1, 0.2, 0.7], [0.5, 0.5, 0.0]],
        [[0.0, 0.55, 0.45], [0.3, 0.6, 0.1], [0.0, 0.1, 0.9]],
        [[0.0, 0.45, 0.55], [0.2, 0.7, 0.1], [0.0, 0.1, 0.9]],
    ]) + 1e-12  # fmt: skip
    y = np.array([1, 1, 2])
    s = ex._scores(np.log(probs), y)
    mean = probs.mean(axis=0)
    assert s["loss"] == pytest.approx(-np.mean(np.log(mean[np.arange(3), y])), rel=1e-12)
    # mean: [0.2, 0.467, 0.333] -> 1 (right); [0.2, 0.5, 0.3] -> 1 (right); [0.167, 0.233, 0.6] -> 2 (right)
    assert s["average_accuracy"] == 1.0
    # votes: ex0 {0, 1, 2}: a three-way tie goes to class 0 (wrong); ex1 {2, 1, 1} -> 1; ex2 {0, 2, 2} -> 2
    assert s["vote_accuracy"] == pytest.approx(2 / 3)
    # K = 1: both are the network's own accuracy (member 0 predicts 0, 2, 0: all wrong)
    one = ex._scores(np.log(probs[1:2]), y)  # member 1 predicts 1, 1, 2: all right
    assert one["average_accuracy"] == one["vote_accuracy"] == 1.0
    assert ex._scores(np.log(probs[:1]), y)["vote_accuracy"] == 0.0


# --- statistics and the report -------------------------------------------------------------------
def test_mean_ci_is_the_t_interval():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    ci = report.mean_ci(x)
    # by hand: sd = sqrt(2.5), sem = sqrt(0.5), t(0.975, 4) = 2.7764451051977987
    half = 2.7764451051977987 * math.sqrt(0.5)
    assert ci["mean"] == 3.0 and ci["sd"] == pytest.approx(math.sqrt(2.5), rel=1e-14)
    assert (ci["low"], ci["high"]) == pytest.approx((3.0 - half, 3.0 + half), rel=1e-12)
    lo, hi = stats.ttest_1samp(x, 0.0).confidence_interval(0.95)
    assert (ci["low"], ci["high"]) == pytest.approx((lo, hi), rel=1e-12)
    assert math.isnan(report.mean_ci([0.8])["low"])
    assert report.mean_ci([0.5, 0.5, 0.5])["high"] == 0.5


def test_welch_matches_the_formula_and_scipy():
    a, b = [0.86, 0.87, 0.85, 0.88, 0.86], [0.84, 0.85, 0.83, 0.86, 0.81, 0.84]
    w = report.welch(a, b)
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert w["diff"] == pytest.approx(np.mean(a) - np.mean(b), rel=1e-12)
    assert w["p"] == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-10)
    assert (w["low"], w["high"]) == pytest.approx((w["diff"] - half, w["diff"] + half), rel=1e-10)
    assert w["p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-12)
    assert math.isnan(report.welch([1.0, 1.0], [1.0, 1.0])["p"])  # no spread at all: no test
    tied = report.welch([0.8651, 0.8651], [0.8699, 0.8675])  # two seeds that tie: a test, no warning
    with pytest.warns(RuntimeWarning, match="Precision loss"):  # scipy itself warns here
        expected = stats.ttest_ind([0.8651] * 2, [0.8699, 0.8675], equal_var=False).pvalue
    assert tied["p"] == pytest.approx(expected)


def fake_result(variant, seed, acc, loss, epochs=3):
    curve = [acc - 0.01 * (epochs - 1 - e) for e in range(epochs)]
    return {"format": 1, "variant": variant, "seed": seed, "config": {"train": {"ensemble_mode": "average"}},
            "history": {"epoch": list(range(1, epochs + 1)), "test_accuracy": curve,
                        "test_loss": [loss] * epochs, "train_loss": [0.1] * epochs,
                        "train_accuracy": [0.9] * epochs},
            "final": {"test_accuracy": acc, "test_loss": loss, "train_accuracy": 0.99, "train_loss": 0.01},
            "best": {"test_accuracy": acc, "test_accuracy_epoch": epochs, "test_loss": loss,
                     "test_loss_epoch": 1},
            "members": [{"test_accuracy": acc, "test_loss": loss}], "wall_seconds": 2.0}  # fmt: skip


def test_report_renders_the_table_and_figure_from_result_files_alone(tmp_path):
    base = [0.80, 0.82, 0.81]
    better = [0.85, 0.86, 0.84, 0.85]
    for v, accs in (("plain", base), ("better", better)):
        (tmp_path / v).mkdir()
        for s, acc in enumerate(accs):
            (tmp_path / v / f"seed{s}.json").write_text(json.dumps(fake_result(v, s, acc, 1 - acc)))
    meta = {"name": "fake", "baseline": "plain", "variants": ["plain", "better"], "seeds": [0, 1, 2, 3]}
    (tmp_path / "experiment.json").write_text(json.dumps(meta))
    assert main(["report", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    ci = report.mean_ci(better)
    w = report.welch(better, base)
    assert rows["| **plain** (baseline)"].split(" | ")[1] == "3 of 4"  # seeds 0-3, plain has 3
    cells = rows["| better"].split(" | ")
    assert cells[1] == "4" and cells[2] == f"{100 * ci['mean']:.2f} ± {100 * ci['sd']:.2f}"
    assert cells[3] == f"[{100 * ci['low']:.2f}, {100 * ci['high']:.2f}]"
    assert cells[7] == f"{100 * w['diff']:+.2f} [{100 * w['low']:+.2f}, {100 * w['high']:+.2f}]"
    assert cells[8] == f"{w['p']:.2g}" and w["p"] < 0.01
    assert "Welch" in text and "curves.png" in text
    assert (
        "(1 per metric, 2 in the table)" in text and "p < 0.05 within one metric, p < 0.025 over both" in text
    )
    assert "held-out" not in text
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # another baseline on request; an unknown one is a clear error
    assert main(["report", str(tmp_path), "--baseline", "better"]) == 0
    assert "**better** (baseline)" in (tmp_path / "report.md").read_text()
    with pytest.raises(ValueError, match="baseline 'worst' is not a variant"):
        report.render(tmp_path, baseline="worst")


def test_report_leaves_out_results_of_an_earlier_configuration(local, tmp_path):
    """An experiment changed and rerun, interrupted: the runs not yet redone hold the old
    configuration and must not be averaged with the new ones."""
    out, _ = local
    for path in [*out.glob("*/seed*.json"), out / "experiment.json"]:
        (tmp_path / path.relative_to(out)).parent.mkdir(exist_ok=True)
        (tmp_path / path.relative_to(out)).write_bytes(path.read_bytes())
    old = json.loads((tmp_path / "drop" / "seed1.json").read_text())
    old["config"]["model"]["hidden_dropout"] = 0.25
    (tmp_path / "drop" / "seed1.json").write_text(json.dumps(old))
    meta, groups = report.load_results(tmp_path)
    assert [r["seed"] for r in groups["drop"]] == [0] and meta["stale"] == 1
    assert [r["seed"] for r in groups["none"]] == [0, 1]
    text = report.render(tmp_path)
    assert "| drop | 1 of 2 |" in text and "Left out: 1 result files of an earlier configuration" in text


def _write_fake(tmp_path, variants, seeds, baseline=None):
    for v, accs in variants.items():
        (tmp_path / v).mkdir()
        for s, acc in zip(seeds, accs):
            (tmp_path / v / f"seed{s}.json").write_text(json.dumps(fake_result(v, s, acc, 1 - acc)))
    meta = {"name": "fake", "baseline": baseline or next(iter(variants)), "variants": list(variants),
            "seeds": list(seeds)}  # fmt: skip
    (tmp_path / "experiment.json").write_text(json.dumps(meta))


def test_report_reads_one_result_per_variant_and_seed(tmp_path):
    """A backup copy beside a result, a copied folder, or a file whose fields disagree with its
    path is no extra seed: left out, and listed."""
    _write_fake(tmp_path, {"a": [0.80, 0.82, 0.81], "b": [0.85, 0.86, 0.84]}, [0, 1, 2])
    clean = report.render(tmp_path)
    (tmp_path / "b" / "seed0_before_rerun.json").write_bytes((tmp_path / "b" / "seed0.json").read_bytes())
    (tmp_path / "b_backup").mkdir()
    for f in (tmp_path / "b").glob("*.json"):
        (tmp_path / "b_backup" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "a" / "seed3.json").write_text(json.dumps(fake_result("a", 3, 0.5, 0.5)))  # not a seed
    (tmp_path / "a" / "seed03.json").write_text(json.dumps(fake_result("a", 3, 0.5, 0.5)))
    meta, groups = report.load_results(tmp_path)
    assert [r["seed"] for r in groups["b"]] == [0, 1, 2] and [r["seed"] for r in groups["a"]] == [0, 1, 2]
    assert sorted(meta["ignored"]) == sorted(
        ["a/seed03.json", "a/seed3.json", "b/seed0_before_rerun.json", "b_backup/seed0.json",
         "b_backup/seed0_before_rerun.json", "b_backup/seed1.json", "b_backup/seed2.json"]
    )  # fmt: skip
    text = report.render(tmp_path)
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table == [line for line in clean.splitlines() if line.startswith("| ")]
    assert "Left out: 7 other files" in text and "`b_backup/seed0.json`" in text
    # a result moved under another variant's or seed's name is not that run
    (tmp_path / "b" / "seed2.json").write_bytes((tmp_path / "b" / "seed1.json").read_bytes())
    meta, groups = report.load_results(tmp_path)
    assert [r["seed"] for r in groups["b"]] == [0, 1] and "b/seed2.json" in meta["ignored"]
    # without experiment.json: the folders are the variants, a copied folder's files say "b"
    (tmp_path / "experiment.json").unlink()
    meta, groups = report.load_results(tmp_path)
    assert sorted(groups) == ["a", "b"] and len(groups["a"]) == 4  # seeds 0-3, seed03 left out
    assert "b_backup/seed1.json" in meta["ignored"]


@pytest.mark.parametrize("explicit", [False, True])
def test_report_lists_variants_without_results_and_a_missing_baseline(tmp_path, capsys, explicit):
    _write_fake(tmp_path, {"base": [], "part": [0.8, 0.81], "full": [0.8, 0.82, 0.81], "gone": []}, [0, 1, 2])
    assert main(["report", str(tmp_path), *(["--baseline", "base"] if explicit else [])]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "Baseline: `base` has no results, so no differences" in text
    rows = [
        line.split(" | ")[:3] for line in text.splitlines() if line.startswith("| ") and "---" not in line
    ]
    assert rows[1:] == [["| **base** (baseline)", "0 of 3", "no results"], ["| part", "2 of 3", rows[2][2]],
                        ["| full", "3", rows[3][2]], ["| gone", "0 of 3", "no results"]]  # fmt: skip
    assert "Incomplete: seeds finished per variant: `base` 0 of 3, `part` 2 of 3, `gone` 0 of 3" in text
    assert "+" not in "".join(line for line in text.splitlines() if line.startswith("| part"))  # no Δ


def test_report_of_held_out_runs_says_so(tmp_path):
    r = fake_result("a", 0, 0.8, 0.5)
    r["config"]["data"] = {"holdout": 300}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "seed0.json").write_text(json.dumps(r))
    text = report.render(tmp_path)
    assert "Held-out: 300 training examples outside the training subset" in text
    assert "epoch on the held-out set" in text and "| final held-out acc |" in text
    assert " test " not in text.replace("not the test set", "")  # every other "test" is held-out


@pytest.mark.parametrize("holdout, scored_on", [(0, "test"), (300, "held-out")])
def test_figure_and_report_name_the_same_evaluation_set(tmp_path, holdout, scored_on):
    """The figure's axes say what the report's table says: "test", or "held-out" when the runs
    were scored on training examples outside the subset (and the figure says what those are)."""
    groups = {}
    for v in ("a", "b"):
        groups[v] = [fake_result(v, s, 0.8 + 0.01 * s, 0.5) for s in range(3)]
        for r in groups[v]:
            r["config"]["data"] = {"holdout": holdout}
    fig = report.curves_figure(groups, "title")
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == [
        f"{scored_on} accuracy",
        f"{scored_on} loss",
        "training loss (with penalty), geometric mean",
    ]
    text = report.markdown(report.summarize(groups, "a"), {"baseline": "a", "name": "x"})
    assert f"| final {scored_on} acc |" in text and f"| best {scored_on} loss |" in text
    note = fig._suptitle.get_text()
    assert ("Held-out: 300 training examples" in note) == bool(holdout) and note.startswith("title")
    assert ("Held-out: 300 training examples" in text) == bool(holdout)


def test_every_variant_has_its_own_colour_and_line_style():
    """More variants than tab10 has colours: colour and dash pattern together tell them apart."""
    from matplotlib.colors import to_rgba

    groups = {f"v{i:02d}": [fake_result(f"v{i:02d}", 0, 0.8, 0.5)] for i in range(45)}
    for ax in report.curves_figure(groups).axes:
        keys = {(to_rgba(line.get_color()), repr(line._unscaled_dash_pattern)) for line in ax.get_lines()}
        assert len(keys) == 45


def test_training_loss_band_is_the_geometric_interval_and_stays_positive():
    """Seeds that disagree: the arithmetic t-interval of the loss goes below zero, off the log
    axis; the panel's band is exp of the interval of mean log(loss)."""
    losses = [[0.5, 0.02], [0.4, 0.0001], [0.6, 0.05]]
    runs = []
    for s, curve in enumerate(losses):
        r = fake_result("a", s, 0.8, 0.5, epochs=2)
        r["history"]["train_loss"] = curve
        runs.append(r)
    assert report.mean_ci([c[1] for c in losses])["low"] < 0
    fig = report.curves_figure({"a": runs})
    ax = fig.axes[2]
    logs = np.log(np.array(losses))
    ci = [report.mean_ci(col) for col in logs.T]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), np.exp([c["mean"] for c in ci]))
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() > 0
    np.testing.assert_allclose(band.min(), min(np.exp(c["low"]) for c in ci))
    np.testing.assert_allclose(band.max(), max(np.exp(c["high"]) for c in ci))
    assert "geometric" in ax.get_ylabel()


def test_report_of_an_empty_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no result files"):
        report.render(tmp_path)


# --- lr-find -------------------------------------------------------------------------------------
def test_lr_find_stays_below_the_divergence_point_and_restores_the_model():
    """Full-batch gradient descent on least squares diverges exactly above lr = 2 / lambda_max of
    the loss's Hessian; the suggested range must lie below it, and the model come back as it was."""
    rng = np.random.default_rng(0)
    n, d = 200, 5
    x = rng.standard_normal((n, d)) * np.array([3.0, 1.0, 1.0, 0.5, 0.2])
    y = (x @ rng.standard_normal((d, 1)) + 0.1 * rng.standard_normal((n, 1))).astype(np.float32)
    model = gn.Sequential(gn.Linear(d, 1, rng=rng))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    opt = gn.optim.SGD(model.parameters(), lr=0.123)
    xa = np.hstack([x, np.ones((n, 1))])
    critical = 2.0 / np.linalg.eigvalsh(2.0 / n * xa.T @ xa).max()  # MSELoss = 1/n sum (xw + b - y)^2
    result = gn.experiments.lr_find(model, gn.MSELoss(), opt, (x.astype(np.float32), y), start=1e-5, end=10.0,
                                    steps=200, batch_size=n, rng=rng)  # fmt: skip
    low, high = result.suggestion
    assert 1e-4 < low <= high < critical
    assert result.lrs[-1] < 10.0  # stopped early: the loss blew up past 4x its best
    assert result.losses[-1] > 4 * result.losses.min() or not np.isfinite(result.raw_losses[-1])
    assert opt.lr == 0.123 and opt.t == 0
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    assert result.diverged
    # an end below the divergence point: the test runs every step and says it never got "too hot"
    calm = gn.experiments.lr_find(model, gn.MSELoss(), opt, (x.astype(np.float32), y), start=1e-5,
                                  end=critical / 10, steps=50, batch_size=n, rng=rng)  # fmt: skip
    assert len(calm.lrs) == 50 and not calm.diverged


def test_cli_compare_and_lr_find(tmp_path, capsys):
    cfg = tmp_path / "e.toml"
    cfg.write_text(
        'seeds = 2\n[data]\ndataset = "digits"\ntrain_size = 200\ntest_size = 100\n[train]\nepochs = 1\n'
        "[model]\nhidden = [8]\n[variants.a]\n[variants.b]\nmodel = { hidden_dropout = 0.5 }\n"
    )
    assert main(["compare", str(cfg), "--out", str(tmp_path / "res"), "--workers", "1"]) == 0
    assert (tmp_path / "res" / "b" / "seed1.json").exists() and (tmp_path / "res" / "curves.png").exists()
    assert "| b | 2 |" in (tmp_path / "res" / "report.md").read_text()
    out = str(tmp_path / "lr")
    argv = ["lr-find", "--dataset", "digits", "--train-size", "500", "--steps", "60", "--end", "100"]
    assert main([*argv, "--out", out]) == 0
    assert "suggested learning rate" in capsys.readouterr().out
    found = json.loads((tmp_path / "lr.json").read_text())
    assert found["suggestion"][0] <= found["suggestion"][1] and len(found["lrs"]) <= 60
    assert min(found["raw_losses"]) < 0.5 * found["raw_losses"][0]  # it learns: images and labels match
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"
    assert found["diverged"]
    assert main([*argv[:-2], "--end", "1e-4", "--out", out]) == 0
    assert "warning: the loss did not diverge up to lr 0.0001" in capsys.readouterr().err
    cfg.write_text("[data]\n")
    assert main(["compare", str(cfg), "--out", str(tmp_path / "res")]) == 2
    assert "missing table [train]" in capsys.readouterr().err


def test_holdout_scores_on_training_examples_outside_the_subset():
    full, test = gn.datasets.load_digits()
    data = {"dataset": "digits", "train_size": 300, "test_size": 0, "subset_seed": 3, "holdout": 200}
    train, held = ex.load_data(data)
    assert train.n == 300 and held.n == 200
    rows = {row.tobytes(): i for i, row in enumerate(full.x)}
    a, b = ({rows[x.tobytes()] for x in d.x} for d in (train, held))
    assert len(a) == 300 and len(b) == 200 and not a & b  # disjoint parts of the training set
    assert not {x.tobytes() for x in held.x} & {x.tobytes() for x in test.x}
    with pytest.raises(ConfigError, match=rf"\[data\] holdout: expected at most {full.n - 1} "):
        ex.load_data({**data, "holdout": 2000})


# (sizes asked for, the message) from the data set's own sizes, counted on the loaded data
TOO_LARGE = {
    "train_size": lambda n, t: (
        {"train_size": n + 1},
        f"train_size: expected at most {n} (digits has {n} training",
    ),
    "train_size 100000": lambda n, t: ({"train_size": 100000}, f"train_size: expected at most {n} (digits"),
    "holdout": lambda n, t: ({"holdout": n}, f"holdout: expected at most {n - 1} (digits has {n} training"),
    "train_size + holdout": lambda n, t: (
        {"train_size": n - 99, "holdout": 100},
        f"train_size: expected at most {n - 100} (digits has {n} training examples, 100 of them held out)",
    ),
    "test_size": lambda n, t: ({"test_size": t + 1}, f"test_size: expected at most {t} (digits has {t} test"),
}


@pytest.mark.parametrize("case", TOO_LARGE)
def test_compare_refuses_data_sizes_beyond_the_data_set_before_any_run(tmp_path, case):
    train, test = gn.datasets.load_digits()
    sizes, message = TOO_LARGE[case](train.n, test.n)
    lines = []
    with pytest.raises(ConfigError) as info:
        ex.compare(_with(lambda r: r["data"].update(sizes)), tmp_path / "res", workers=1, log=lines.append)
    assert str(info.value).startswith(f"<dict>: [data] {message}")
    assert str(info.value).endswith(f"got {next(iter(sizes.values()))}")
    assert not lines and not (tmp_path / "res").exists()  # nothing ran, nothing was written


def test_check_data_sizes_takes_the_whole_data_set():
    full = {"dataset": "digits", "train_size": 0, "test_size": 0, "subset_seed": 0, "holdout": 0}
    for data in [
        full,
        {**full, "train_size": 100},
        {**full, "test_size": 50},
        {**full, "holdout": 99},  # train on the other 1
        {**full, "train_size": 60, "holdout": 40},  # every example used
        {**full, "holdout": 10, "test_size": 5000},  # a holdout replaces the test set: test_size unused
    ]:
        check_data_sizes(data, 100, 50)  # no error
