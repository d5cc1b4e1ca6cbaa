"""benchmarks/run_all.py without timing anything: its table writer stamps a file from a fake
measurement, keeps other machines' files, and every command of its --quick and full lists is
accepted by the script it names."""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import run_all  # noqa: E402

STAMP = {
    "cpu": "Intel(R) Xeon(R) Gold 6150 CPU @ 2.70GHz",
    "cores": 2,
    "threads": 2,
    "numpy": "2.4.6",
    "blas": "openblas 0.3.31",
    "blas_kernel": "SkylakeX",
    "blas_threads_default": 2,
    "torch": "2.13.0+cpu",
    "python": "3.11.9",
    "date": "2026-12-03 17:00 UTC",
}


def fake_results(quick: bool) -> list:
    """One made-up JSON report per workload, shaped as each script prints it."""
    out = []
    for w in run_all.workloads(quick):
        if w.table == "one-thread":  # the same scripts' reports at one thread: slower, less apart
            r = {"bench_train.py": {"glassnet_s_per_epoch": 2.0, "torch_s_per_epoch": 2.5},
                 "bench_rnn.py": {"glassnet_s_per_4000": 0.3, "torch_s_per_4000": 0.4},
                 "bench_attention.py": {"rows": {"MultiheadAttention(64, 4)": {
                     "glassnet_ms": 4.5, "torch_ms": 8.0, "ratio": 0.5625}}}}[w.script]  # fmt: skip
        elif w.table == "train":
            # the headline ratio is the median of each round's (1.2), not the ratio of the medians
            r = {"workload": w.key, "glassnet_s_per_epoch": 1.25, "torch_s_per_epoch": 1.0,
                 "ratio": 1.2, "pair_ratios": [1.1, 1.2, 1.35], "ratio_of_medians": 1.25,
                 "inference_examples_per_s": {"glassnet": 4000, "torch": 5000}, "inference_ratio": 0.82,
                 "inference_first_pass_examples_per_s": {"glassnet": 2000, "torch": 4000},
                 "inference_first_pass_ratio": 0.52,
                 "peak_rss_mb": {"glassnet": 600, "torch": 650}}  # fmt: skip
            if "ranks" in w.key:  # glassnet on MPI ranks times no inference
                r = {k: v for k, v in r.items() if not k.startswith("inference")}
        elif w.table == "rnn":  # a result from before the paired ratio: the ratio of the medians
            r = {"glassnet_s_per_4000": 0.2, "torch_s_per_4000": 0.25, "ratio_of_medians": 0.8,
                 "pair_ratios": [0.8]}  # fmt: skip
        elif w.table == "layers":
            r = {
                "threads": 2,
                "rows": {
                    "Conv2d(32,64,5)": {
                        "glassnet_ms": 9.0,
                        "torch_ms": 6.0,
                        "ratio": 1.45,
                        "pair_ratios": [1.6, 1.45, 1.4],
                    }
                },  # fmt: skip
            }
        elif w.table == "attention":
            r = {"threads": 2, "rows": {"MultiheadAttention(64, 4)": {"glassnet_ms": 3.0, "torch_ms": 4.0,
                                                                      "ratio": 0.75}}}  # fmt: skip
        elif w.table == "kernels":
            r = {"threads": 2, "kernels": {
                "default": {"ran_on": "SkylakeX", "ms": {"cols @ W": 5.0}},
                "Haswell": {"ran_on": "Haswell", "ms": {"cols @ W": 6.0}},
                "Bogus": {"error": "exited with -4"}}}  # fmt: skip
        elif w.table == "cores":
            probe = {"distance": 1.0, "backward_2": 15.0, "backward_1": 25.0, "dx_one_buffer": 8.0,
                     "dx_per_tap": 8.2, "rows_one_buffer": 7.5, "rows_per_tap": 9.5,
                     "infer_one_buffer": 10500.0, "infer_ring": 9900.0, "infer_two": 11000.0,
                     "infer_timed": 10900.0}  # fmt: skip
            far = dict(probe, distance=1.8, backward_2=16.0, dx_one_buffer=13.5, dx_per_tap=9.0,
                       infer_one_buffer=5400.0, infer_ring=8700.0)  # fmt: skip
            classes = {"near": dict(probe, probes=3), "far": dict(far, probes=2)}
            r = {"seconds": 60, "threads": 2, "probes": 5, "classes": classes}
        elif w.table == "paths":
            r = {"rows": [{"name": "dx shifted / taps", "fast_ms": 8.0, "plain_ms": 10.0, "ratio": 0.8}]}
        elif w.table == "left-out":
            r = {
                "rows": [
                    {"name": "Winograd / im2col", "alternative_ms": 20.0, "glassnet_ms": 10.0, "ratio": 2.0}
                ]
            }
        elif w.key == "book":  # a step of tens of microseconds, and the same step in plain NumPy
            r = {"glassnet_step_ms": 0.064, "torch_step_ms": 0.19, "ratio": 0.337, "gemm_ms": 0.014,
                 "layers_ms": 0.034, "non_gemm_layer_ms": 0.02, "loss_and_optimizer_ms": 0.03,
                 "gemm_only_ratio": 0.074, "torch_gemm_ms": 0.023, "plain_numpy_step_ms": 0.05,
                 "glassnet_over_plain_numpy": 1.28, "per_layer_ms": {"0 Linear forward": 0.009},
                 "per_gemm_ms": {"0 Linear forward": 0.005}}  # fmt: skip
        else:
            r = {"glassnet_step_ms": 40.0, "torch_step_ms": 30.0, "ratio": 1.333, "gemm_ms": 20.0,
                 "layers_ms": 36.0, "non_gemm_layer_ms": 16.0, "loss_and_optimizer_ms": 4.0,
                 "gemm_only_ratio": 0.667, "per_layer_ms": {"0 Conv2d forward": 5.0},
                 "per_gemm_ms": {"0 Conv2d forward": 1.0}}  # fmt: skip
        out.append((w, r))
    return out


@pytest.mark.parametrize("quick", [True, False])
def test_writer_stamps_a_file_per_machine(tmp_path, quick):
    md, js = run_all.write_results(STAMP, fake_results(quick), quick, tmp_path)
    assert md.name == "intel-xeon-gold-6150-2c-skylakex" + ("-quick" if quick else "") + ".md"
    text = md.read_text()
    for value in ("Intel(R) Xeon(R) Gold 6150", "2.4.6", "openblas 0.3.31", "SkylakeX", "2.13.0+cpu",
                  "2026-12-03 17:00 UTC"):  # fmt: skip
        assert value in text
    assert "| CNN-A, Adam, batch 128 | 1.250 | 1.000 | **1.20** | 1.10, 1.20, 1.35 | <= 1.3 |" in text
    assert "| cnn | 4,000 | 5,000 | **0.82** | 2,000, 4,000, 0.52 | >= 0.8 |" in text
    assert ("| MLP 784-256-128-10 ReLU, CE, SGD momentum, batch 128, glassnet on 2 MPI ranks (one BLAS "
            "thread each) | 1.250 | 1.000 | **1.20** | 1.10, 1.20, 1.35 | <= 0.9 |") in text  # fmt: skip
    assert "| mlp-ranks2 |" not in text  # in the training table, not the inference table
    assert "| Conv2d(32,64,5) | 9.00 | 6.00 | **1.45** | 1.60, 1.45, 1.40 | <= 1.5 |" in text
    assert "| MultiheadAttention(64, 4) | 3.00 | 4.00 | **0.75** |  | <= 1.0 |" in text  # issue 13's
    assert "| GRU(1 -> 64), MNIST-1D, T = 40, Adam, batch 128 | 0.200 | 0.250 | **0.80** | 0.80 |" in text
    assert ("| LSTM(1 -> 64), MNIST-1D, T = 40, Adam, batch 128, glassnet on 2 MPI ranks (one BLAS thread "
            "each) | 0.200 | 0.250 | **0.80** | 0.80 | <= 1.0 |") in text  # fmt: skip
    assert "| product | default (ran on SkylakeX) | Haswell (ran on Haswell) |" in text
    assert (
        "| cols @ W | 5.00 (1.00) | 6.00 (1.20) |" in text
        and "- Bogus: the child failed (exited with -4)" in text
    )
    assert "| the GEMMs alone (NumPy's BLAS, the layers' shapes) | 20.00 | 50% |" in text
    assert "## What stands between the `resnet` preset and 1.0" in text
    assert "## What stands between the LSTM(1 -> 64), T = 40, and 1.0" in text
    assert "| the LSTM's element-wise passes and copies | 16.00 | 40% |" in text
    assert "| dx shifted / taps | 8.00 | 10.00 | **0.80** |" in text
    assert (
        "## Ideas measured and left out" in text
        and "| Winograd / im2col | 20.00 | 10.00 | **2.00** |" in text
    )
    assert "## Where the 2 cores sit, and what it costs the second thread (5 probes over 60 s)" in text
    assert "| far | 2 | 1.80 | 16.00 | 25.00 | 13.50 | 9.00 | 7.50 | 9.50 | 5,400 | 8,700 |" in text
    # at one thread: its own ratio, the one at two threads above, and each library's speed-up
    assert "## What 2 threads buy each library (the same commands at one thread)" in text
    assert "| CNN-A, Adam, batch 128 | 2.000 s | 2.500 s | **0.80** | 1.20 | 1.60x | 2.50x |" in text
    lstm = "| LSTM(1 -> 64), MNIST-1D, T = 40, Adam, batch 128 |"
    assert f"{lstm} 0.300 s | 0.400 s | **0.75** | 0.80 | 1.50x | 1.60x |" in text
    assert "| MultiheadAttention(64, 4) | 4.500 ms | 8.000 ms | **0.56** | 0.75 | 1.50x | 2.00x |" in text
    assert "--threads 1`" in text
    assert "the other 20.0 ms of glassnet's step is what stands between 1.33 and 1.0" in text
    w, r = next((w, r) for w, r in fake_results(quick) if w.table == "breakdown")
    fast = dict(r, glassnet_step_ms=25.0, ratio=0.833)
    text = "\n".join(run_all.breakdown_lines(w, fast))
    assert "at or below PyTorch's in this run (25.0 against 30.0 ms), 5.0 ms of it outside the GEMMs" in text
    w = next(w for w, _ in fake_results(quick) if w.key == "mlp-infer")
    text = "\n".join(run_all.breakdown_lines(w, dict(r, torch_gemm_ms=27.0)))
    assert "## What stands between the MLP's inference and 1.0 (one inference pass over 10,000 images" in text
    assert "| PyTorch, its GEMMs alone (the same products) | 27.00 | |" in text
    assert "Time ratio 1.33 (throughput 0.75)" in text and "predict's own work" in text
    assert "(PyTorch does the whole pass in 30.0 ms, 27.0 of them in its GEMMs)" in text
    md_text = md.read_text()  # the MLP's and the book's steps, against the training table's targets
    assert (
        "## What stands between the MLP's training step and 0.9 (one training step, batch 128, ms)" in md_text
    )
    assert (
        "Step ratio 1.33, against the training table's target <= 0.9. The GEMMs alone are 0.67x PyTorch's "
        "whole step: the other 20.000 ms of glassnet's step is what stands between 1.33 and 0.9"
    ) in md_text
    assert (
        "## What stands between the book's training step and 0.2 (one training step, batch 10, ms)" in md_text
    )
    assert "| glassnet, whole step | 0.064 | 100% |" in md_text and "| 0 Linear forward | 0.009 |" in md_text
    assert (
        "| plain NumPy: the same step as one function, no glassnet (`book_step_numpy`) | 0.050 | 78% |"
        in md_text
    )
    assert ("the other 0.050 ms of glassnet's step is what stands between 0.34 and 0.2 (PyTorch does the "
            "whole step in 0.190 ms, 0.023 of them in its GEMMs)") in md_text  # fmt: skip
    assert ("glassnet's step takes 1.28x the same step written as one plain NumPy function (0.064 against "
            "0.050 ms): glassnet's framework around the same arithmetic") in md_text  # fmt: skip
    assert ("costs 0.014 ms a step over hand-written NumPy. The plain function takes 0.26x PyTorch's step: "
            "hand-written NumPy would not reach 0.2 either.") in md_text  # fmt: skip
    data = json.loads(js.read_text())
    assert data["machine"] == STAMP and data["quick"] is quick
    assert len(data["results"]) == len(run_all.workloads(quick))

    # another machine's run lands beside this one, and a failed benchmark is listed, not dropped
    other = dict(STAMP, cpu="AMD EPYC 7B13", cores=8)
    w = run_all.workloads(quick)[0]
    md2, _ = run_all.write_results(other, [(w, {"error": ["Traceback: boom"]})], quick, tmp_path)
    assert md2 != md and md.exists()
    assert md2.name.startswith("amd-epyc-7b13-8c-skylakex")
    assert "Traceback: boom" in md2.read_text()
    # one model name ("AMD EPYC"), two BLAS kernels: two files
    zen5 = dict(STAMP, cpu="AMD EPYC", blas_kernel="Haswell")
    zen4 = dict(STAMP, cpu="AMD EPYC", blas_kernel="SkylakeX")
    assert run_all.machine_slug(zen5) == "amd-epyc-2c-haswell" != run_all.machine_slug(zen4)
    # one model name, one kernel, two generations (lscpu's family and model): two files
    zen4 = dict(STAMP, cpu="AMD EPYC", cpu_family="family 25 model 17")
    zen5 = dict(STAMP, cpu="AMD EPYC", cpu_family="family 26 model 2")
    assert run_all.machine_slug(zen4) == "amd-epyc-f25m17-2c-skylakex"
    assert run_all.machine_slug(zen5) == "amd-epyc-f26m2-2c-skylakex"


def test_machine_stamp_reads_this_machine():
    stamp = run_all.machine_stamp(2)
    assert stamp["cpu"] and stamp["cores"] >= 1 and stamp["threads"] == 2
    import numpy

    assert stamp["numpy"] == numpy.__version__
    assert stamp["date"].endswith("UTC")


def _bench_module(script: str):
    """A benchmark script imported as a module. The scripts import ``harness`` (benchmarks/'s),
    a name tests/harness.py also has: benchmarks/'s is put in its place while they import."""
    name = script.removesuffix(".py")
    if name in sys.modules:
        return sys.modules[name]
    saved = sys.modules.pop("harness", None)
    try:
        spec = importlib.util.spec_from_file_location("harness", run_all.HERE / "harness.py")
        sys.modules["harness"] = harness = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(harness)
        return importlib.import_module(name)
    finally:
        sys.modules.pop("harness", None)
        if saved is not None:
            sys.modules["harness"] = saved


@pytest.mark.parametrize("quick", [True, False])
def test_every_command_is_accepted_by_its_script(quick):
    listed = run_all.workloads(quick)
    assert {w.table for w in listed} == set(run_all.TABLES)
    assert {"mlp", "book", "cnn", "cnn-bn", "resnet", "gru", "lstm"} <= {w.key for w in listed}
    breakdowns = {w.key: w.args for w in listed if w.table == "breakdown"}
    assert set(breakdowns) == {"", "resnet", "lstm", "mlp-infer", "mlp", "book"}
    assert all(args[args.index("--workload") + 1] == key for key, args in breakdowns.items() if key)
    for w in listed:
        assert (run_all.HERE / w.script).is_file()
        module = _bench_module(w.script)
        args = module.build_parser().parse_args(list(w.args))  # SystemExit on a bad option
        assert args.threads == (1 if w.table == "one-thread" else 2)
        if w.table in ("layers", "attention", "breakdown", "paths", "left-out", "kernels"):
            assert args.json  # run_all reads one JSON line
        if w.table == "train":
            assert args.workload in module.WORKLOADS


def test_only_reruns_some_tables_and_keeps_the_others_dated(tmp_path, monkeypatch):
    """``run_all.py --only rnn`` replaces the recurrent rows of this machine's file and keeps
    every other table, which the page then dates as measured earlier."""
    run_all.write_results(STAMP, fake_results(False), False, tmp_path)
    later = dict(STAMP, date="2026-12-04 09:00 UTC")
    monkeypatch.setattr(run_all, "machine_stamp", lambda threads, env=None: later)
    ran = []

    def fake_run(w, env):
        ran.append(w.table)
        return {
            "glassnet_s_per_4000": 0.1,
            "torch_s_per_4000": 0.2,
            "ratio_of_medians": 0.5,
            "pair_ratios": [0.5],
        }

    monkeypatch.setattr(run_all, "run", fake_run)
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--only", "rnn", "--out", str(tmp_path)])
    run_all.main()
    assert ran == ["rnn"] * 4  # GRU and LSTM, each plain and on 2 MPI ranks
    data = json.loads((tmp_path / "intel-xeon-gold-6150-2c-skylakex.json").read_text())
    tables = [e["table"] for e in data["results"]]
    assert tables == [w.table for w in run_all.workloads(False)]  # nothing dropped, same order
    by = {(e["table"], e["key"]): e["result"] for e in data["results"]}
    lstm, cnn = by[("rnn", "lstm")], by[("train", "cnn")]
    assert lstm["ratio_of_medians"] == 0.5 and lstm["measured"] == later["date"]
    assert cnn["ratio_of_medians"] == 1.25 and cnn["measured"] == STAMP["date"]
    text = (tmp_path / "intel-xeon-gold-6150-2c-skylakex.md").read_text()
    assert "| train measured | 2026-12-03 17:00 UTC (kept from an earlier run" in text
    assert "| rnn measured |" not in text
    assert "| LSTM(1 -> 64), MNIST-1D, T = 40, Adam, batch 128 | 0.100 | 0.200 | **0.50** |" in text


def test_accuracy_table_reads_the_run_records_and_checks_the_targets(tmp_path):
    """accuracy_table.py renders the records accuracy.py / twins.py --record write, and says
    whether glassnet's mean meets the target and the twin parity, and what is still missing."""
    import accuracy_table
    from accuracy import recipe_stamp

    def record(library, preset, seed, acc, recipe="current", name="", **fields):
        r = {"library": library, "preset": preset, "seed": seed, "dataset": "fashion-mnist", "epochs": 20,
             "train_seconds": 100.0 + seed, "accuracy": acc, "twin_recipe": True,
             "machine": dict(STAMP, threads=1), "command": ["x.py"], **fields}  # fmt: skip
        if recipe is not None:
            r["recipe"] = recipe_stamp(preset) if recipe == "current" else recipe
        (tmp_path / f"{preset}-{library}-seed{seed}{name}.json").write_text(json.dumps(r))

    record("glassnet", "resnet", 0, 0.9412)
    record("pytorch", "resnet", 0, 0.9431)
    for seed, acc in enumerate([0.881, 0.885, 0.879]):
        record("glassnet", "vit", seed, acc)
        record("pytorch", "vit", seed, acc + 0.007)
    # runs of an earlier recipe (another lr; another architecture; none recorded) are listed, not counted
    record("glassnet", "resnet", 1, 0.5, dict(recipe_stamp("resnet"), lr=0.5), "-old")
    record("pytorch", "resnet", 1, 0.5, dict(recipe_stamp("resnet"), architecture="0" * 16), "-old")
    record("glassnet", "vit", 3, 0.5, None)
    # the current recipe, not trained as the twin is: listed, not counted
    record("glassnet", "vit", 4, 0.5, twin_recipe=False)  # accuracy.py --val-fraction 0.1
    record("glassnet", "vit", 5, 0.5, dataset="mnist1d")
    out = tmp_path / "accuracy.md"
    accuracy_table.main(["--records", str(tmp_path), "--out", str(out)])
    text = out.read_text()
    assert "| resnet | glassnet | 0 | 20 | 100 | 1 | 94.12% | current | Intel(R) Xeon(R) Gold 6150" in text
    assert "| resnet | glassnet | 1 | 20 | 101 | 1 | 50.00% | earlier: " in text and " lr 0.5, " in text
    assert "| resnet | pytorch | 1 | 20 | 101 | 1 | 50.00% | earlier: " in text
    assert "architecture 0000" in text
    assert "| vit | glassnet | 3 | 20 | 103 | 1 | 50.00% | earlier (not recorded) |" in text
    assert f"- vit: {accuracy_table.describe(recipe_stamp('vit'))}" in text
    assert "| vit | glassnet | 4 | 20 | 104 | 1 | 50.00% | current, not counted: not all 60,000" in text
    assert "| vit | glassnet | 5 | 20 | 105 | 1 | 50.00% | current, not counted: dataset mnist1d |" in text
    resnet = ("| resnet | 94.12% (one seed) | 94.31% (one seed) | glassnet 94.12% >= target 94.0%; "
              "twin 94.31% >= target 94.0%; -0.19 points against the twin (within 0.5); not final: "
              "glassnet 1 of 3 seeds, twin 1 of 3 seeds |")  # fmt: skip
    vit = ("| vit | 88.17% (sd 0.31) | 88.87% (sd 0.31) | glassnet 88.17% >= target 88.0%; "
           "twin 88.87% >= target 88.0%; -0.70 points against the twin (outside 0.5) |")  # fmt: skip
    assert resnet in text and vit in text
    with pytest.raises(SystemExit, match="no run records"):
        accuracy_table.main(["--records", str(tmp_path / "none"), "--out", str(out)])
    assert "| resnet | glassnet |" in out.read_text()  # the table written before is kept
    (tmp_path / "broken.json").write_text("{}")
    with pytest.raises(ValueError, match="broken.json: not a run record"):
        accuracy_table.load(tmp_path)


def test_a_record_of_a_new_recipe_keeps_the_same_seeds_earlier_record(tmp_path):
    """accuracy.record names each file by preset, library, seed, machine and recipe: the run of a
    changed preset lands next to the earlier recipe's run of that seed, never over it."""
    from accuracy import recipe_id, recipe_stamp, record

    stamp = recipe_stamp("resnet")
    result = {"library": "glassnet", "preset": "resnet", "seed": 0, "accuracy": 0.9, "train_seconds": 1.0}
    first = record(tmp_path, dict(result, recipe=stamp))
    second = record(tmp_path, dict(result, recipe=dict(stamp, lr=0.5), accuracy=0.8))
    assert first != second and sorted(tmp_path.iterdir()) == sorted([first, second])
    assert first.name.startswith("resnet-glassnet-seed0-")
    assert first.name.endswith(f"-{recipe_id(stamp)}.json")
    saved = json.loads(first.read_text())
    assert saved["recipe"] == stamp and saved["accuracy"] == 0.9 and saved["machine"]["cores"] >= 1


def test_a_recipe_stamp_changes_with_the_recipe_and_with_the_architecture(monkeypatch):
    """A record's stamp tells the preset's recipe apart from an earlier one: another optimizer
    setting changes a field, another dropout rate (same weights, other model) the fingerprint."""
    import dataclasses
    import functools

    from accuracy import recipe_stamp

    import glassnet as gn

    before = recipe_stamp("vit")
    assert before["optimizer"] == "adamw" and before["loss"] == "CrossEntropyLoss"
    assert recipe_stamp("vit") == before  # the same preset, the same stamp
    assert recipe_stamp("vit", epochs=3) == dict(before, epochs=3)
    vit = gn.models.PRESETS["vit"]
    monkeypatch.setitem(gn.models.PRESETS, "vit", dataclasses.replace(vit, lr=2e-3))
    assert recipe_stamp("vit") == dict(before, lr=2e-3)
    less_dropout = dataclasses.replace(vit, build=functools.partial(gn.models.vit, dropout=0.05))
    monkeypatch.setitem(gn.models.PRESETS, "vit", less_dropout)
    after = recipe_stamp("vit")
    assert after["architecture"] != before["architecture"]
    assert dict(after, architecture=0) == dict(before, architecture=0)


@pytest.mark.parametrize(
    "script, args, problem",
    [
        ("accuracy", "--presets resnet --optimizer adam --momentum 0.9", "resnet would train with adam"),
        ("accuracy", "--presets vit --momentum 0.9", "vit would train with adamw"),
        ("accuracy", "--presets vit --l2 1e-3", "--l2 with AdamW (vit)"),
        ("accuracy", "--presets resnet --lr 0.1 --record", "--record is for the preset's own recipe"),
        ("accuracy", "--presets resnet --lr nan", "argument --lr: expected a finite number > 0, got 'nan'"),
        ("twins", "--preset resnet --momentum 1", "argument --momentum: expected a number in [0, 1)"),
        ("twins", "--preset resnet --optimizer adam --momentum 0.5", "only SGD takes a momentum"),
        ("twins", "--preset resnet --l2 -1 --record", "argument --l2: expected a finite number >= 0"),
    ],
)  # fmt: skip
def test_a_candidate_recipe_both_libraries_cannot_train_is_a_usage_error(
    monkeypatch, capsys, script, args, problem
):
    """accuracy.py and twins.py share the candidate-recipe flags and their checks: a wrong value
    is argparse's one-line usage error (exit 2) before any training starts."""
    module = importlib.import_module(script)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *args.split()])

    def no_training(*call, **kwargs):  # a usage the scripts accept fails here, not after hours
        raise AssertionError(f"{script}.py {args}: accepted, and would train {call}")

    monkeypatch.setattr(module, "run" if script == "accuracy" else "train_twin", no_training)
    with pytest.raises(SystemExit) as exit_:
        module.main()
    assert exit_.value.code == 2
    assert problem in capsys.readouterr().err


@pytest.mark.parametrize("workload", ["resnet", "vit"])
def test_the_preset_speed_workloads_run_on_both_sides(workload, monkeypatch):
    """bench_train's preset workloads train one short epoch in each library with the preset's own
    optimizer (twins.torch_optimizer takes the preset, not its name): no workload of the table
    is timed by a script that cannot run it. An SGD recipe with momentum and L2 runs too."""
    pytest.importorskip("torch")
    import dataclasses

    import glassnet as gn

    bench_train = _bench_module("bench_train.py")  # not a plain import: tests/harness.py clashes
    for preset in (gn.models.PRESETS[workload], None):
        if preset is None:  # the same workload under a momentum-and-L2 recipe
            recipe = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "l2": 5e-4}
            sgd = dataclasses.replace(gn.models.PRESETS[workload], **recipe)
            monkeypatch.setitem(gn.models.PRESETS, workload, sgd)
        for run in (bench_train.run_glassnet, bench_train.run_torch):
            result = run(workload, 1, 1, train_size=256, infer_size=64)
            assert result["train"] > 0 and result["infer"] > 0, run.__name__


def test_bench_kernels_compares_the_kernels_in_child_processes(capsys):
    """bench_kernels.py runs each OPENBLAS_CORETYPE in its own child and says which kernel each
    one ran on: an unknown name leaves OpenBLAS's default (a child that dies is rendered as
    failed: test_writer_stamps_a_file_per_machine)."""
    bench_kernels = _bench_module("bench_kernels.py")
    for wrong in (["--rounds", "0"], ["--threads", "-1"], ["--repeats", "x"]):
        with pytest.raises(SystemExit):  # argparse's one-line error, no traceback
            bench_kernels.build_parser().parse_args(wrong)
    assert bench_kernels.kernel_env("default", 1).get("OPENBLAS_CORETYPE") is None
    assert bench_kernels.kernel_env("Haswell", 1)["OPENBLAS_CORETYPE"] == "Haswell"
    table = bench_kernels.compare(["default", "NoSuchKernel"], rounds=1, repeats=1, threads=1)
    assert set(table) == {"default", "NoSuchKernel"}
    for kernel in table.values():
        assert kernel["ran_on"] and set(kernel["ms"]) == set(bench_kernels.PRODUCTS)
    assert table["NoSuchKernel"]["ran_on"] == table["default"]["ran_on"]  # OpenBLAS kept its own


@pytest.mark.parametrize(
    "script",
    [
        "bench_train.py",
        "bench_rnn.py",
        "bench_layers.py",
        "bench_attention.py",
        "breakdown.py",
        "bench_paths.py",
        "bench_left_out.py",
        "bench_kernels.py",
    ],  # fmt: skip
)
def test_the_speed_scripts_refuse_a_count_below_one_with_a_usage_error(script, capsys):
    """--threads 0 used to reach torch.set_num_threads (a traceback) and --rounds 0 a median of
    nothing; now argparse refuses them, naming the argument."""
    parser = _bench_module(script).build_parser()
    for option, text in (("--threads", "0"), ("--rounds", "0"), ("--rounds", "two")):
        with pytest.raises(SystemExit) as e:
            parser.parse_args([option, text])
        assert e.value.code == 2
        assert f"argument {option}: expected an integer >= 1, got '{text}'" in capsys.readouterr().err
    assert parser.parse_args(["--threads", "3"]).threads == 3


@pytest.mark.parametrize(
    ("script", "args", "option", "text", "expected"),
    [
        ("run_all.py", [], "--threads", "0", "an integer >= 1"),
        ("bench_rnn.py", [], "--ranks", "0", "an integer >= 1"),
        ("bench_train.py", [], "--ranks", "0", "an integer >= 1"),
        ("twins.py", ["--preset", "resnet"], "--threads", "0", "an integer >= 1"),
        ("twins.py", ["--preset", "resnet"], "--epochs", "0", "an integer >= 1"),
        ("twins.py", ["--preset", "resnet"], "--train-size", "-5", "an integer >= 1"),
        ("twins.py", ["--preset", "resnet"], "--seeds", "-1", "an integer in [0, 2^64)"),
        ("twins.py", ["--preset", "resnet"], "--seeds", str(2**64), "an integer in [0, 2^64)"),
        ("accuracy.py", [], "--epochs", "0", "an integer >= 1"),
        ("accuracy.py", [], "--seeds", "-1", "an integer in [0, 2^128)"),
        ("bench_mpi.py", [], "--warmup", "0", "an integer >= 1"),
        ("bench_mpi.py", [], "--steps", "0", "an integer >= 1"),
        ("bench_mpi.py", [], "--ranks", "2,x", "rank counts >= 1 separated by commas, e.g. 2,4,8;"),
        ("bench_mpi.py", [], "--ranks", "0", "rank counts >= 1 separated by commas, e.g. 2,4,8;"),
    ],
)
def test_the_other_benchmark_scripts_refuse_bad_counts_and_seeds_with_a_usage_error(
    script, args, option, text, expected, capsys
):
    """Until now these took any integer: ``--threads 0`` reached torch.set_num_threads, ``--seeds
    -1`` NumPy's seeding, ``--warmup 0`` a clock that never started, ``--ranks 2,x`` int() (all
    tracebacks, the last after minutes of training in the longer scripts)."""
    parser = _bench_module(script).build_parser()
    with pytest.raises(SystemExit) as e:
        parser.parse_args([*args, option, text])
    assert e.value.code == 2
    assert f"argument {option}: expected {expected}" in capsys.readouterr().err


def test_the_other_benchmark_scripts_take_good_counts_and_seeds():
    argv = ["--preset", "vit", "--seeds", "0", "7", "--epochs", "2", "--threads", "1", "--train-size", "64"]
    twins = _bench_module("twins.py").build_parser().parse_args(argv)
    assert (twins.seeds, twins.epochs, twins.threads, twins.train_size) == ([0, 7], 2, 1, 64)
    accuracy = _bench_module("accuracy.py").build_parser().parse_args(["--seeds", "3", "--epochs", "4"])
    assert (accuracy.seeds, accuracy.epochs) == ([3], 4)
    assert _bench_module("run_all.py").build_parser().parse_args(["--threads", "4"]).threads == 4
    assert _bench_module("bench_mpi.py").build_parser().parse_args(["--ranks", "2,4,8"]).ranks == [2, 4, 8]


def test_a_ratio_is_the_median_of_each_rounds_own_and_the_order_alternates(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("bench_harness", run_all.HERE / "harness.py")
    harness = importlib.util.module_from_spec(spec)  # benchmarks/'s, not tests/harness.py
    spec.loader.exec_module(harness)

    # rounds 3 and 4 ran in a slow phase of the machine that slowed both libraries alike: each
    # round's own ratio stays 0.9, while glassnet's median from the slow phase over torch's from
    # the fast one would say 1.35
    g, t = [5.4, 5.4, 9.0, 9.0, 5.4], [6.0, 6.0, 10.0, 6.0, 6.0]
    ratio, pairs = harness.paired_ratio(g, t)
    assert pairs == pytest.approx([0.9, 0.9, 0.9, 1.5, 0.9]) and ratio == pytest.approx(0.9)
    with pytest.raises(ValueError):  # a lost round is an error, not a silent shift of the pairs
        harness.paired_ratio(g, t[:-1])

    order, times = [], iter([5.4, 6.0, 10.0, 9.0, 9.0, 6.0])  # as the children report them, in turn

    def child(cmd, env=None):
        order.append(cmd[cmd.index("--impl") + 1])
        return json.dumps({"layer": next(times)}) + "\n"

    monkeypatch.setattr(harness, "run_child", child)
    results = harness.alternate("bench.py", 3, [])
    assert order == ["glassnet", "torch", "torch", "glassnet", "glassnet", "torch"]
    assert [r["layer"] for r in results["glassnet"]] == [5.4, 9.0, 9.0]  # in round order
    harness.layer_table(results, ["layer"], "layer", True, 2)
    row = json.loads(capsys.readouterr().out)["rows"]["layer"]
    assert row["pair_ratios"] == [0.9, 0.9, 1.5] and row["ratio"] == 0.9
    assert (row["glassnet_ms"], row["torch_ms"]) == (9000.0, 6000.0)  # the medians, 1.5 apart


def test_alternate_live_asks_two_long_lived_children_in_each_rounds_order(tmp_path):
    """alternate_live starts each library's child once; every round asks both, in round_order,
    and the answers come back by library, in round order. A child that dies is an error that
    quotes its traceback."""
    spec = importlib.util.spec_from_file_location("bench_harness", run_all.HERE / "harness.py")
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    clock = tmp_path / "clock"  # one line per answer, from either child: the order they ran in
    script = tmp_path / "bench.py"
    script.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(run_all.HERE)!r})\n"
        "from harness import alternating_parser, serve\n"
        "args = alternating_parser('', rounds=1).parse_args()\n"
        "calls = []\n"
        "def measure():\n"
        "    calls.append(1)\n"
        f"    with open({str(clock)!r}, 'a') as f: f.write(args.impl + '\\n')\n"
        "    if args.impl == 'torch' and len(calls) == 3 and os.environ.get('DIE'):\n"
        "        raise SystemExit('torch gave up')\n"
        "    return {'layer': len(calls), 'pid': os.getpid(), 'serving': args.serve}\n"
        "serve(measure)\n"
    )
    results = harness.alternate_live(str(script), 3, [], pause=0.0)
    assert clock.read_text().split() == ["glassnet", "torch", "torch", "glassnet", "glassnet", "torch"]
    for impl in ("glassnet", "torch"):
        assert [r["layer"] for r in results[impl]] == [1, 2, 3]  # one process answered all three
        assert len({r["pid"] for r in results[impl]}) == 1 and all(r["serving"] for r in results[impl])
    assert results["glassnet"][0]["pid"] != results["torch"][0]["pid"]
    with pytest.raises(RuntimeError, match="(?s)--impl torch --serve exited with 1.*torch gave up"):
        harness.alternate_live(str(script), 3, [], env=dict(os.environ, DIE="1"), pause=0.0)


def test_probe_cores_classes_each_probe_by_the_distance_measured_with_it(monkeypatch):
    probe_cores = _bench_module("probe_cores.py")
    distances = iter([1.05, 1.8, 1.35, 1.9] * 1000)  # near, far, neither, far, ...
    monkeypatch.setattr(probe_cores.Distance, "measure", lambda self, reads=30: next(distances))
    from glassnet.layers import conv

    rule, seen = conv.SPECTRAL_MAX_COST, set()
    # the layers' timings are not the point here; which way the convolutions would take is
    work = lambda: (seen.add(conv.SPECTRAL_MAX_COST), sum(range(1000)))  # noqa: E731
    monkeypatch.setattr(probe_cores, "conv_backward", lambda np, gn: (work, work, work))
    monkeypatch.setattr(probe_cores, "shifted_rows", lambda np: (work, work))
    monkeypatch.setattr(probe_cores, "inference", lambda np, gn: (work,) * len(probe_cores.INFERENCE_WAYS))
    report = probe_cores.probe(1)
    near, far = report["classes"]["near"], report["classes"]["far"]
    assert near["distance"] == 1.05 and 1.8 <= far["distance"] <= 1.9  # 1.35 is in neither class
    assert near["probes"] + far["probes"] <= report["probes"] and far["probes"] >= near["probes"]
    assert near["backward_1"] > 0 and far["dx_per_tap"] > 0
    assert far["infer_ring"] > 0 and far["infer_timed"] > 0
    assert seen == {0} and conv.SPECTRAL_MAX_COST == rule  # every probe by windows; the rule comes back


def test_the_breakdown_times_the_products_of_a_convolution_through_the_dft(monkeypatch):
    """CNN-A's second convolution goes through the DFT: its products alone (the transforms and
    the products per frequency) stand in the GEMM rows as the windows' products did."""
    import glassnet as gn

    breakdown = _bench_module("breakdown.py")
    monkeypatch.setattr(gn, "tune_malloc", lambda *a, **k: True)  # this process's allocator stays
    g = breakdown.time_glassnet("cnn", repeats=1)
    assert [k for k in g["gemms"] if k.startswith("3 ")] == ["3 Conv2d forward", "3 Conv2d dW", "3 Conv2d dx"]
    assert all(v > 0 for v in g["gemms"].values())


def test_the_inference_breakdown_times_each_layer_and_the_products_of_one_pass(monkeypatch):
    """breakdown.py --workload mlp-infer: glassnet's pass split into each layer's forward (summed
    over the pass's batches), the products alone and predict's own work; PyTorch's pass and its
    products alone; the same network in both (bench_train.py's MLP)."""
    import numpy as np
    import torch

    import glassnet as gn

    breakdown, bench_train = _bench_module("breakdown.py"), _bench_module("bench_train.py")
    monkeypatch.setattr(breakdown, "INFER_IMAGES", 1200)  # three batches of 500, the last short
    monkeypatch.setattr(gn, "tune_malloc", lambda *a, **k: True)  # this process's allocator stays
    g = breakdown.time_glassnet("mlp-infer", repeats=2)
    # each Linear and its ReLU run as one step (LinearThenReLU): one row for the pair
    assert list(g["layers"]) == ["0-1 Linear+ReLU forward", "2-3 Linear+ReLU forward",
                                 "4 Linear forward"]  # fmt: skip
    assert list(g["gemms"]) == [f"{i} Linear forward, 3 products" for i in (0, 2, 4)]
    # the whole pass timed without the timers, the layers' passes in the next pass (with them): on
    # a busy machine two passes differ by more than predict's own work, so no order is asserted
    assert g["step"] > 0 and sum(g["layers"].values()) > 0 and isinstance(g["rest"], float)
    t = breakdown.time_torch("mlp-infer", repeats=2, threads=1)
    assert t["step"] > 0 and t["gemm"] > 0
    s = breakdown.summarise({"glassnet": [g], "torch": [t]})
    assert s["torch_gemm_ms"] > 0 and "glassnet, whole pass" in breakdown.table(s, "mlp-infer")
    mine = bench_train.glassnet_mlp(gn, "mlp", np.random.default_rng(0))
    twin = bench_train.torch_mlp(torch, "mlp")
    assert [type(m).__name__ for m in mine.layers] == [type(m).__name__ for m in twin]
    assert [m.W.shape[::-1] for m in mine.layers if hasattr(m, "W")] == [
        tuple(m.weight.shape) for m in twin if hasattr(m, "weight")
    ]


def test_the_breakdowns_of_the_mlp_and_the_book_are_said_against_their_targets():
    """The MLP's and the book's breakdowns measure against the training table's targets (0.9, 0.2),
    not 1.0, in each of the sentence's three cases; the book's compares glassnet's step with the
    plain NumPy one either way round."""
    results = {w.key: (w, r) for w, r in fake_results(True) if w.table == "breakdown"}
    w, r = results["mlp"]
    text = "\n".join(run_all.breakdown_lines(w, dict(r, glassnet_step_ms=25.0, ratio=0.833)))
    assert "glassnet's step is at or below 0.9x PyTorch's in this run (25.000 against 30.000 ms)" in text
    text = "\n".join(run_all.breakdown_lines(w, dict(r, gemm_only_ratio=0.95)))
    assert "even with everything else free, NumPy's GEMMs at these shapes would not reach 0.9." in text
    w, r = results["book"]
    text = "\n".join(run_all.breakdown_lines(w, dict(r, gemm_only_ratio=0.25)))
    assert "would not reach 0.2." in text
    faster = dict(r, glassnet_over_plain_numpy=0.98, plain_numpy_step_ms=0.03)  # and it 0.16x PyTorch's
    text = "\n".join(run_all.breakdown_lines(w, faster))
    assert ("(0.064 against 0.030 ms): glassnet's step is no slower than hand-written NumPy in this run. The "
            "plain function takes 0.16x PyTorch's step.") in text  # fmt: skip
    level = dict(
        r, glassnet_over_plain_numpy=1.004, plain_numpy_step_ms=r["glassnet_step_ms"]
    )  # 1.00x as shown
    text = "\n".join(run_all.breakdown_lines(w, level))
    assert "takes 1.00x the same step" in text and "no slower than hand-written NumPy" in text
    assert "costs 0.000 ms" not in text
    w, r = results[""]  # CNN-A's, as before: against 1.0
    assert (
        "## What stands between CNN-A and 1.0 (one training step, batch 128, ms)"
        in run_all.breakdown_lines(w, r)
    )


@pytest.mark.parametrize("workload", ["mlp", "book"])
def test_the_breakdown_of_the_mlp_and_the_books_step_runs_end_to_end(workload):
    """breakdown.py --workload mlp / book --json: both children run (glassnet's train_step with
    bench_train's SGD and loss, PyTorch's step and its products alone) and the report has what
    run_all renders: each Linear's passes (a Linear and its ReLU as one row; the first layer's
    backward without dx), the products at the Linear layers' shapes (no dx for the first), and
    for the book the plain NumPy step."""
    out = subprocess.run(
        [sys.executable, str(run_all.HERE / "breakdown.py"), "--workload", workload, "--rounds", "1",
         "--repeats", "3", "--threads", "1", "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    if workload == "mlp":  # each Linear and its ReLU as one step (LinearThenReLU): one row
        layers = ["0-1 Linear+ReLU forward", "0-1 Linear+ReLU backward_params", "2-3 Linear+ReLU forward",
                  "2-3 Linear+ReLU backward", "4 Linear forward", "4 Linear backward"]  # fmt: skip
    else:
        layers = ["0 Linear forward", "0 Linear backward_params", "1 Sigmoid forward", "1 Sigmoid backward",
                  "2 Linear forward", "2 Linear backward", "3 Sigmoid forward",
                  "3 Sigmoid backward"]  # fmt: skip
        assert report["plain_numpy_step_ms"] > 0 and report["glassnet_over_plain_numpy"] > 0
    later = (2, 4) if workload == "mlp" else (2,)  # the Linear layers after the first, which computes no dx
    gemms = [
        "0 Linear forward",
        "0 Linear dW",
        *(f"{i} Linear {p}" for i in later for p in ("forward", "dW", "dx")),
    ]
    assert list(report["per_layer_ms"]) == layers and list(report["per_gemm_ms"]) == gemms
    assert report["glassnet_step_ms"] > 0 and report["torch_step_ms"] > 0 and report["torch_gemm_ms"] > 0
    w = next(w for w in run_all.workloads(True) if w.table == "breakdown" and w.key == workload)
    text = "\n".join(run_all.breakdown_lines(w, report))  # a key it reads and the report lacks: KeyError
    title = {"mlp": "the MLP's training step and 0.9 (one training step, batch 128, ms)",
             "book": "the book's training step and 0.2 (one training step, batch 10, ms)"}  # fmt: skip
    assert f"## What stands between {title[workload]}" in text
    assert ("| plain NumPy: the same step as one function" in text) is (workload == "book")
    _bench_module("bench_train.py")  # breakdown's table reads its batch sizes (tests/harness.py clashes)
    table = _bench_module("breakdown.py").table(report, workload)  # the script's own, without --json
    assert f"| part of one training step (batch {128 if workload == 'mlp' else 10}) | ms |" in table
    assert ("| plain NumPy: the same step as one function, no glassnet |" in table) is (workload == "book")


def test_the_breakdown_times_the_whole_step_without_its_timers():
    """The layers' timers are in place only while they time a step: taken away, the layers' own
    methods run again (no wrapper in the step that gives the whole-step figure) and nothing is
    recorded. A Linear and its ReLU that start the model are one row, backward_params included."""
    import numpy as np

    import glassnet as gn
    from glassnet.walk import leaves

    breakdown, bench_train = _bench_module("breakdown.py"), _bench_module("bench_train.py")
    model = bench_train.glassnet_mlp(gn, "mlp", np.random.default_rng(0))
    opt, loss_fn = gn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), gn.CrossEntropyLoss()
    x, y = breakdown._data("mlp")
    names = [f"{name} {type(layer).__name__}" for name, layer in leaves(model)]
    spent, joined, timers = breakdown._layer_timers(gn, model, names, [layer for _, layer in leaves(model)])
    assert joined == {"0-1 Linear+ReLU": "Linear+ReLU", "2-3 Linear+ReLU": "Linear+ReLU"}
    timers(True)
    gn.train_step(model, loss_fn, opt, x, y)
    timed = {k for k, v in spent.items() if v}
    assert timed == {"0-1 Linear+ReLU forward", "0-1 Linear+ReLU backward_params", "2-3 Linear+ReLU forward",
                     "2-3 Linear+ReLU backward", "4 Linear forward", "4 Linear backward"}  # fmt: skip
    timers(False)
    counts = {k: len(v) for k, v in spent.items()}
    gn.train_step(model, loss_fn, opt, x, y)
    assert {k: len(v) for k, v in spent.items()} == counts
    pair = model.steps()[0][1]
    for obj in (model[0], model[1], model[4], pair):
        assert not {"forward", "backward", "backward_params"} & set(vars(obj))  # the class's methods


def _book_step_against_glassnet(plain_step) -> None:
    """One ``gn.train_step`` of the book's net and one call of ``plain_step`` from the same weights
    on the same batch: the same loss and the same new weights, to float32 rounding."""
    import numpy as np

    import glassnet as gn

    breakdown, bench_train = _bench_module("breakdown.py"), _bench_module("bench_train.py")
    x, y = breakdown._data("book")
    lr = bench_train.WORKLOADS["book"][4]
    model = bench_train.glassnet_mlp(gn, "book", np.random.default_rng(0))
    opt = gn.optim.SGD(model.parameters(), lr=lr)
    weights = [p.data.copy(order="K") for p in model.parameters()]  # W1, b1, W2, b2
    before = [w.copy() for w in weights]
    loss = gn.train_step(model, gn.QuadraticCost(), opt, x, y)
    assert plain_step(*weights, x, y, lr) == pytest.approx(loss, rel=1e-6)
    for p, w, w0 in zip(model.parameters(), weights, before, strict=True):
        assert np.abs(p.data - w0).max() > 1e-3  # the step moved every array, by far more than rtol
        np.testing.assert_allclose(w, p.data, rtol=1e-6, atol=1e-8)


def _mutant(function, old: str, new: str):
    """``function`` with its one occurrence of ``old`` in the source replaced by ``new``."""
    import inspect

    source = inspect.getsource(function)
    assert source.count(old) == 1, old
    scope: dict = {}
    exec(source.replace(old, new), {}, scope)
    return scope[function.__name__]


def test_the_books_plain_numpy_step_computes_glassnets_step():
    """breakdown.book_step_numpy, the book's step as one plain NumPy function, gives what
    gn.train_step gives; the comparison catches a step that is wrong somewhere (a test that
    cannot fail proves nothing): without sigma'(z) at the output layer, without the mean's 1/n,
    or without the first layer's update."""
    book_step = _bench_module("breakdown.py").book_step_numpy
    _book_step_against_glassnet(book_step)
    for old, new in ((" * a2 * (1 - a2)", ""), (" * (1.0 / n)", ""), ("w1 -= lr * (x.T @ delta1)", "pass")):
        wrong = _mutant(book_step, old, new)  # outside pytest.raises: a change it cannot make fails the test
        with pytest.raises(AssertionError, match="Not equal to tolerance"):
            _book_step_against_glassnet(wrong)


def test_the_recurrent_benchmark_asks_two_live_children_for_epochs():
    """bench_rnn.py runs each library's child once (alternate_live): a round asks both for
    ``--epochs`` epochs of the model they keep training; one JSON report with a ratio per round."""
    out = subprocess.run(
        [sys.executable, str(run_all.HERE / "bench_rnn.py"), "--workload", "gru", "--rounds", "2",
         "--epochs", "1", "--threads", "1"],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(report["pair_ratios"]) == 2 and report["ratio"] > 0
    assert report["glassnet_s_per_4000"] > 0 and report["torch_s_per_4000"] > 0


def test_a_rank_per_thread_run_all_leaves_out_the_ranks_rows_at_one_thread():
    """bench_rnn.py --ranks K runs glassnet on K ranks of one BLAS thread each against PyTorch on
    --threads threads: run_all lists such a row only where the threads cover the ranks, and the
    script refuses more ranks than threads (glassnet would get more cores than PyTorch)."""
    at_two = {w.key: w for w in run_all.workloads(False, 2) if w.table == "rnn"}
    assert {"lstm-ranks2", "gru-ranks2"} <= set(at_two) and "--ranks" in at_two["lstm-ranks2"].args
    assert not any("ranks" in w.key for w in run_all.workloads(False, 1))
    out = subprocess.run(
        [sys.executable, str(run_all.HERE / "bench_rnn.py"), "--ranks", "2", "--threads", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2 and "--ranks 2 needs --threads 2 or more" in out.stderr


@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="needs mpiexec (pip install 'glassnet[mpi]')")
def test_the_recurrent_benchmark_runs_glassnet_on_two_mpi_ranks():
    """--ranks 2: glassnet's child is ``mpiexec -n 2``, rank 0 answering every round (its
    requests passed on to rank 1, which trains its half of each batch); one report, as without."""
    out = subprocess.run(
        [sys.executable, str(run_all.HERE / "bench_rnn.py"), "--workload", "gru", "--rounds", "2",
         "--epochs", "1", "--threads", "2", "--ranks", "2"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["ranks"] == 2 and len(report["pair_ratios"]) == 2
    assert report["glassnet_s_per_4000"] > 0 and report["torch_s_per_4000"] > 0


@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="needs mpiexec (pip install 'glassnet[mpi]')")
def test_the_training_benchmark_runs_glassnet_on_two_mpi_ranks():
    """bench_train.py --ranks 2: glassnet's child is ``mpiexec -n 2`` (rank 0's line the answer),
    fit over both ranks; its report has no inference figures (predict runs on one process)."""
    out = subprocess.run(
        [sys.executable, str(run_all.HERE / "bench_train.py"), "--workload", "mlp", "--rounds", "1",
         "--epochs", "1", "--train-size", "2560", "--threads", "2", "--ranks", "2"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["ranks"] == 2 and report["glassnet_s_per_epoch"] > 0 and report["torch_s_per_epoch"] > 0
    assert "inference_ratio" not in report
    refused = subprocess.run(
        [sys.executable, str(run_all.HERE / "bench_train.py"), "--ranks", "2", "--shards", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2 and "--ranks and --shards split the batch two ways" in refused.stderr


def test_serve_ranks_runs_every_request_on_every_rank_and_answers_on_rank_0(monkeypatch, capsys):
    """Rank 0 reads the requests; each rank measures once per request (the broadcast tells the
    others); only rank 0 prints; end of input ends every rank."""
    spec = importlib.util.spec_from_file_location("bench_harness", run_all.HERE / "harness.py")
    harness = importlib.util.module_from_spec(spec)  # not tests/harness.py, which has the name
    spec.loader.exec_module(harness)

    class Request:
        def Test(self):
            return True

    class Comm:  # one rank's view; the broadcast copies rank 0's flag, as MPI would
        def __init__(self, rank, flags):
            self.rank, self.flags = rank, flags

        def Ibcast(self, buf, root):
            if self.rank == 0:
                self.flags.append(int(buf[0]))
            else:
                buf[0] = self.flags[len(self.seen)]
                self.seen.append(buf[0])
            return Request()

    flags: list[int] = []
    monkeypatch.setattr(sys, "stdin", io.StringIO("go\ngo\ngo\n"))
    calls = []
    harness.serve_ranks(lambda: calls.append(0) or {"train": len(calls)}, Comm(0, flags))
    assert flags == [1, 1, 1, 0] and len(calls) == 3
    assert [json.loads(line)["train"] for line in capsys.readouterr().out.splitlines()] == [1, 2, 3]
    other = Comm(1, flags)
    other.seen = []
    harness.serve_ranks(lambda: calls.append(1) or {"train": 0}, other)
    assert calls.count(1) == 3 and capsys.readouterr().out == ""  # rank 1 measured, printed nothing


def test_the_left_out_batch_norm_alternative_gives_the_layers_numbers_in_every_layout():
    """bench_left_out.py times batch norm in blocks of examples against the layer, inside whole
    training steps too: switched on, the layer must still give its own numbers, on channels-last
    input (the alternative's path) and on the layouts it hands back to the layer (C order, the
    pixel-major output of a one-channel convolution before a max-pool). A full run once failed
    there when the layer gained a flag the alternative did not set."""
    import numpy as np

    import glassnet as gn

    on, off = _bench_module("bench_left_out.py").batch_norm_switch(gn, np)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4, 5, 3)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    layouts = {"C order": (0, 1, 2, 3), "channels-last": (0, 2, 3, 1), "pixel-major": (2, 3, 0, 1)}
    for name, order in layouts.items():
        xi = np.ascontiguousarray(x.transpose(order)).transpose(np.argsort(order))
        results = []
        for switch in (off, on):
            bn = gn.BatchNorm2d(4)
            switch()
            try:
                results.append(
                    (bn.forward(xi), bn.backward(dy), bn.weight.grad.copy(), bn.running_var.copy())
                )
            finally:
                off()
        for a, b in zip(*results):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5, err_msg=name)


def test_readme_speed_tables_are_the_ones_the_results_files_give(tmp_path, capsys):
    """No number in README's speed tables is typed by hand: they are what summary.py makes from
    the committed results files; a README with one figure changed fails the same check."""
    import summary

    assert summary.main(["--check"]) == 0, capsys.readouterr().err
    readme = (run_all.HERE.parent / "README.md").read_text()
    block = readme[readme.index(summary.BEGIN) : readme.index(summary.END)]
    cell = next(line for line in block.splitlines() if line.startswith("| CNN-A |")).split(" | ")[2]
    edited = tmp_path / "README.md"
    edited.write_text(readme.replace(cell, "0.42 ✓", 1))
    assert summary.main(["--check", "--readme", str(edited)]) == 1
    assert "run python benchmarks/summary.py" in capsys.readouterr().err


def test_summary_ticks_the_targets_a_figure_meets():
    import summary

    assert summary.meets(0.9, "<= 0.9") and summary.meets(0.904, "<= 0.9")  # shown as 0.90
    assert not summary.meets(0.91, "<= 0.9") and not summary.meets(0.21, "<= 0.2 (5x faster)")
    assert summary.meets(1.0, ">= 1.0") and not summary.meets(0.99, ">= 1.0")
    assert not summary.meets(0.5, "")  # no target, no tick


def test_summary_has_a_column_per_full_run_newest_first(tmp_path):
    """Each machine's full-run file is a column (a --quick file is not), the newest first, headed
    by its CPU, family and model, and the dates its figures were measured; glassnet's other ways
    stand beside the plain figure; a breakdown's products alone are set against PyTorch's step."""
    import summary

    run_all.write_results(STAMP, fake_results(False), False, tmp_path)
    zen4 = dict(STAMP, cpu="AMD EPYC", cpu_family="family 25 model 17", date="2026-12-01 10:00 UTC")
    run_all.write_results(zen4, fake_results(False), False, tmp_path)
    run_all.write_results(dict(STAMP, cpu="Quick CPU"), fake_results(True), True, tmp_path)
    text = summary.render(summary.machines(tmp_path))
    head = text.splitlines()[0]
    assert head.index("Xeon Gold 6150, 2 cores, OpenBLAS SkylakeX (2026-12-03 17:00 UTC)") < head.index(
        "AMD EPYC, family 25 model 17, 2 cores, OpenBLAS SkylakeX (2026-12-01 10:00 UTC)"
    )
    assert "Quick CPU" not in text
    assert ("| CNN-A | <= 1.3 | 1.20 ✓; 1.20 ✓ with `fit(shards=2)`; 1.20 ✓ on 2 MPI ranks | "
            "1.20 ✓; 1.20 ✓ with `fit(shards=2)`; 1.20 ✓ on 2 MPI ranks |") in text  # fmt: skip
    assert "| MLP 784-256-128-10 | <= 0.9 | 1.20; 1.20 on 2 MPI ranks |" in text
    assert "| MLP inference (throughput) | >= 1.0 | 0.82 | 0.82 |" in text
    assert "| Conv2d(32, 64, 5) | <= 1.5 | 1.45 ✓ | 1.45 ✓ |" in text
    assert "| CNN-A, a training step | 40.00 / 20.00 / 30.00 (0.67) |" in text
    book = {"glassnet_step_ms": 0.061, "gemm_ms": 0.014, "torch_step_ms": 0.28, "plain_numpy_step_ms": 0.066}
    assert summary.breakdown_cell(book) == "0.061 / 0.014 / 0.280 (0.05); the same step in plain NumPy 0.066"


def test_summary_refuses_a_readme_without_its_markers(tmp_path, capsys):
    import summary

    readme = tmp_path / "README.md"
    readme.write_text("# a README with no place for the tables\n")
    assert summary.main(["--readme", str(readme)]) == 2
    assert "no speed-table markers" in capsys.readouterr().err
    assert readme.read_text() == "# a README with no place for the tables\n"  # nothing appended


def test_summary_refuses_a_results_folder_without_a_full_run(tmp_path, capsys):
    """A mistyped --results (or one with --quick files only) is named in one line, and README's
    tables stay as they are instead of being replaced by nothing."""
    import summary

    readme = tmp_path / "README.md"
    readme.write_text(f"{summary.BEGIN}\nthe tables\n{summary.END}\n")
    run_all.write_results(STAMP, fake_results(True), True, tmp_path / "quick-only")
    for folder in (tmp_path / "no-such-folder", tmp_path / "quick-only"):
        assert summary.main(["--readme", str(readme), "--results", str(folder)]) == 2
        assert f"{folder} holds no full run's results" in capsys.readouterr().err
    assert readme.read_text() == f"{summary.BEGIN}\nthe tables\n{summary.END}\n"


@pytest.mark.parametrize("text", ["{not json", '{"quick": false, "machine": {}}', "[]"])
def test_summary_names_a_results_file_it_cannot_read(tmp_path, capsys, text):
    """A broken results file (cut short, hand-edited) is named in one line; README is untouched."""
    import summary

    readme = tmp_path / "README.md"
    readme.write_text(f"{summary.BEGIN}\nold\n{summary.END}\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "broken.json").write_text(text)
    assert summary.main(["--readme", str(readme), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert "broken.json is not a results file run_all.py wrote" in err and "Traceback" not in err
    assert readme.read_text() == f"{summary.BEGIN}\nold\n{summary.END}\n"


def test_a_full_run_remakes_the_readme_tables(tmp_path, monkeypatch):
    """run_all.py into benchmarks/results rewrites README's tables from the files, between the
    markers only; a run into another folder leaves README alone."""
    import summary

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{summary.BEGIN}\nold figures\n{summary.END}\nthe rest\n")
    results = tmp_path / "results"
    for module in (run_all, summary):
        monkeypatch.setattr(module, "RESULTS", results)
    monkeypatch.setattr(summary, "README", readme)
    monkeypatch.setattr(run_all, "machine_stamp", lambda threads, env=None: STAMP)
    fake = {(w.table, w.key): r for w, r in fake_results(False)}
    monkeypatch.setattr(run_all, "run", lambda w, env: fake[(w.table, w.key)])
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--out", str(tmp_path / "elsewhere")])
    run_all.main()
    assert "old figures" in readme.read_text()
    monkeypatch.setattr(sys, "argv", ["run_all.py"])
    run_all.main()
    text = readme.read_text()
    assert text.startswith(f"intro\n{summary.BEGIN}\n| workload")
    assert text.endswith(f"{summary.END}\nthe rest\n")
    assert "old figures" not in text and "| CNN-A | <= 1.3 | 1.20 ✓" in text


def test_render_writes_the_page_again_from_the_json_and_measures_nothing(tmp_path, monkeypatch, capsys):
    """``run_all.py --render``: this machine's page made again from its .json (after a change to
    the page's wording), the stored stamp and figures as they are; no benchmark runs."""
    md, js = run_all.write_results(STAMP, fake_results(False), False, tmp_path)
    page, stored = md.read_text(), js.read_text()
    md.write_text("an older page\n")
    monkeypatch.setattr(
        run_all, "machine_stamp", lambda threads, env=None: dict(STAMP, date="2026-12-09 00:00 UTC")
    )
    monkeypatch.setattr(run_all, "run", lambda w, env: pytest.fail(f"--render ran {w.script}"))
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--render", "--out", str(tmp_path)])
    run_all.main()
    assert md.read_text() == page and js.read_text() == stored  # the stored date, not today's
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--render", "--out", str(tmp_path / "empty")])
    with pytest.raises(SystemExit, match="no .* to render; run the benchmarks first"):
        run_all.main()
