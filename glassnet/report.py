"""Summaries of an experiment's result files: statistics, a Markdown table, learning curves.

The statistics, all from ``scipy.stats``:

- **mean, standard deviation, 95% confidence interval of the mean** of each metric over a
  variant's seeds: mean +- t_{0.975, n-1} * sd / sqrt(n), Student's t with n - 1 degrees of
  freedom (``scipy.stats.t.interval``). It assumes the per-seed numbers are roughly normal,
  which is a fair description of test accuracies over seeds, and is exact for normal data at
  any n, where a bootstrap with 5 seeds would not be.
- **difference from the baseline**: mean(variant) - mean(baseline), with **Welch's t-test**
  (``scipy.stats.ttest_ind(equal_var=False)``, two-sided) for the p-value and its confidence
  interval of the difference (Welch-Satterthwaite degrees of freedom). Welch does not assume
  the two variants have the same spread across seeds (a regularizer often changes it). Welch
  treats the two samples as independent, and they are not: the same seed gives variants with
  the same layers the same initial weights and, where nothing else draws from the generator
  (no dropout: none, L1, L2, the fixed penalty), every epoch's shuffle too; an ensemble's
  member 0 *is* the single network of its seed. With dropout the streams part after the first
  batch. Where runs that share a seed are positively correlated, Welch's interval is wider and
  its p-value larger than a paired test's (conservative); where negatively, narrower. The
  correlation varies by variant and is barely estimable from 5 seeds; Welch does not need it.
- p-values are **not** corrected for comparing several variants with one baseline; with k
  variants besides the baseline the table holds 2k p-values (accuracy and loss), and
  Bonferroni's family-wise 5% level is p < 0.05 / k within one metric, 0.05 / 2k over both
  (the report says so).

"Best" test accuracy is the maximum over epochs: it picks the epoch by looking at the test
set, so it is optimistic and is there to show what early stopping could at most buy.
"""

from __future__ import annotations

import glob
import io
import math
import os
import re
import warnings

import numpy as np

from .errors import FileFormatError
from .experiment_config import RESULT_FORMAT
from .io import read_json, write_atomic
from .module import is_int, is_number

LEVEL = 0.95
METRICS = {  # name -> how to read it from a result
    "final_acc": lambda r: r["final"]["test_accuracy"],
    "best_acc": lambda r: r["best"]["test_accuracy"],
    "final_loss": lambda r: r["final"]["test_loss"],
    "best_loss": lambda r: r["best"]["test_loss"],
    "train_acc": lambda r: r["final"]["train_accuracy"],
    "wall": lambda r: r["wall_seconds"],
}


def mean_ci(x, level: float = LEVEL) -> dict[str, float]:
    """Mean, sample standard deviation (n - 1) and the t-based confidence interval of the mean;
    sd and the interval are NaN for fewer than two values."""
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    n, mean = len(x), float(np.mean(x)) if len(x) else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "sd": math.nan, "low": math.nan, "high": math.nan}
    sd = float(np.std(x, ddof=1))
    if sd == 0.0:
        return {"n": n, "mean": mean, "sd": 0.0, "low": mean, "high": mean}
    low, high = stats.t.interval(level, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return {"n": n, "mean": mean, "sd": sd, "low": float(low), "high": float(high)}


def welch(a, b, level: float = LEVEL) -> dict[str, float]:
    """mean(a) - mean(b), its Welch confidence interval and the two-sided Welch p-value; the
    interval and p are NaN when either sample has fewer than two values or both have no spread."""
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = float(np.mean(a) - np.mean(b)) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return {"diff": diff, "low": math.nan, "high": math.nan, "p": math.nan}
    with warnings.catch_warnings():
        # scipy warns of lost precision when a sample's values (nearly) coincide, e.g. two seeds
        # with the same test accuracy; the statistic is still computed and reported
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        res = stats.ttest_ind(a, b, equal_var=False)
        ci = res.confidence_interval(level)
    return {"diff": diff, "low": float(ci.low), "high": float(ci.high), "p": float(res.pvalue)}


def load_results(out_dir: str | os.PathLike) -> tuple[dict, dict[str, list[dict]]]:
    """The experiment's description (``experiment.json``, or one inferred from the directories)
    and its results grouped by variant, in the experiment's order, seeds ascending.

    One result per (variant, seed): the file ``<variant>/seed<k>.json`` that ``compare`` writes,
    for the experiment's variants and seeds (without ``experiment.json``: every folder holding
    such files, every seed found), whose ``"variant"`` and ``"seed"`` are those of its path.
    Any other ``.json`` file in the variants' folders or beside them (a backup copy
    ``seed0_before_rerun.json``, a copied folder ``l2_backup/``, a file moved with a renamed
    folder, seeds no longer in the experiment) is left out, and its path listed in the
    description's ``"ignored"``; the report says so. Every file read is checked for what the
    report reads (``read_experiment``, ``read_result``): a broken one is a ``FileFormatError``
    naming it. A result whose configuration differs from the one ``experiment.json`` records for
    its variant (left by an earlier version of the experiment whose rerun was interrupted) is
    left out, and counted in the description's ``"stale"``. The description's ``"counts"``
    gives every variant's number of results (0 for a variant without any, which has no group)."""
    out_dir = os.fspath(out_dir)
    meta_path = os.path.join(out_dir, "experiment.json")
    meta = read_experiment(meta_path) if os.path.lexists(meta_path) else None
    found = sorted(os.path.relpath(p, out_dir) for p in glob.glob(os.path.join(out_dir, "*", "*.json")))
    if meta is None:
        names = sorted({os.path.dirname(p) for p in found if _seed_of(os.path.basename(p)) is not None})
        meta = {"name": "", "baseline": names[0] if names else "", "variants": names, "seeds": None}
    groups, configs, stale, counts, used = {}, meta.get("configs") or {}, 0, {}, set()
    for v in meta["variants"]:
        if meta.get("seeds") is not None:
            seeds = list(meta["seeds"])
        else:
            seeds = sorted(
                s
                for p in found
                if os.path.dirname(p) == v and (s := _seed_of(os.path.basename(p))) is not None
            )
        runs = []
        for s in seeds:
            rel = os.path.join(v, f"seed{s}.json")
            if not os.path.lexists(os.path.join(out_dir, rel)):
                continue  # not run yet; anything else at that path (a FIFO, a folder) read_result refuses
            r = read_result(os.path.join(out_dir, rel))
            if r["variant"] != v or r["seed"] != s:
                continue  # not this run's file (moved, renamed or copied): listed as ignored
            used.add(rel)
            if v in configs and r.get("config") != configs[v]:
                stale += 1
                continue
            runs.append(r)
        counts[v] = len(runs)
        if runs:
            groups[v] = sorted(runs, key=lambda r: r["seed"])
    ignored = [p for p in found if p not in used]  # stale files were read, and are counted apart
    if not groups:
        raise ValueError(f"{out_dir}: no result files (expected {out_dir}/<variant>/seed<k>.json)")
    return {**meta, "stale": stale, "ignored": ignored, "counts": counts}, groups


def _seed_of(name: str) -> int | None:
    """k for a file name ``seed<k>.json`` exactly as ``result_path`` writes it, else None."""
    m = re.fullmatch(r"seed(-?[0-9]+)\.json", name)
    return int(m.group(1)) if m and f"seed{int(m.group(1))}.json" == name else None


def read_experiment(path: str) -> dict:
    """``experiment.json`` as ``compare`` writes it, checked: a ``"variants"`` list of names, a
    ``"baseline"`` and ``"name"`` (strings), ``"seeds"`` (a list of integers, or null) and
    ``"configs"`` (variant -> object) where present. Else a ``FileFormatError`` naming it."""
    meta = read_json(path)
    if not isinstance(meta, dict) or not (
        isinstance(meta.get("variants"), list) and all(isinstance(v, str) for v in meta["variants"])
    ):
        raise FileFormatError(
            path, "not a glassnet experiment description: expected a 'variants' list of names"
        )
    checks = {
        "name": lambda x: isinstance(x, str),
        "baseline": lambda x: isinstance(x, str),
        "seeds": lambda x: x is None or (isinstance(x, list) and all(is_int(s) for s in x)),
        "configs": lambda x: isinstance(x, dict) and all(isinstance(c, dict) for c in x.values()),
    }
    expected = {"name": "a string", "baseline": "a string", "seeds": "a list of integers or null",
                "configs": "an object of variant configurations"}  # fmt: skip
    for key, ok in checks.items():
        if key in meta and not ok(meta[key]):
            raise FileFormatError(path, f"{key!r} must be {expected[key]}")
    return {"name": "", "baseline": meta["variants"][0] if meta["variants"] else "", **meta}


# what the report reads from a result file (run_one writes it): section -> its numeric fields
RESULT_NUMBERS = {
    "final": ("test_accuracy", "test_loss", "train_accuracy"),
    "best": ("test_accuracy", "test_loss"),
}
HISTORY = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy")


def read_result(path: str) -> dict:
    """One ``<variant>/seed<k>.json`` result file, checked for every field the report reads
    (see ``glassnet.experiments.run_one``); else a ``FileFormatError`` naming the file and the
    field."""

    r = read_json(path)
    if not isinstance(r, dict) or r.get("format") != RESULT_FORMAT:
        raise FileFormatError(path, f"not a glassnet result file (expected 'format': {RESULT_FORMAT!r})")

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise FileFormatError(path, f"expected {what}")

    need(
        isinstance(r.get("variant"), str) and is_int(r.get("seed")),
        "'variant' (a string), 'seed' (an integer)",
    )
    need(is_number(r.get("wall_seconds")), "'wall_seconds', a number")
    for section, fields in RESULT_NUMBERS.items():
        need(
            isinstance(r.get(section), dict) and all(is_number(r[section].get(f)) for f in fields),
            f"a {section!r} object with the numbers {', '.join(fields)}",
        )
    h = r.get("history")
    need(
        isinstance(h, dict)
        and all(isinstance(h.get(k), list) and all(is_number(v) for v in h[k]) for k in HISTORY)
        and len(h["epoch"]) > 0
        and len({len(h[k]) for k in HISTORY}) == 1,
        f"a 'history' object of number lists of one length, at least 1: {', '.join(HISTORY)}",
    )
    members = r.get("members")
    need(
        isinstance(members, list)
        and len(members) > 0
        and all(isinstance(m, dict) and is_number(m.get("test_accuracy")) for m in members),
        "a non-empty 'members' list of objects with a 'test_accuracy' number",
    )
    config = r.get("config")
    need(isinstance(config, dict), "a 'config' object")
    data = config.get("data", {})
    need(
        isinstance(data, dict) and is_int(data.get("holdout", 0)) and data.get("holdout", 0) >= 0,
        "'config'.'data' an object, its 'holdout' a count",
    )
    if len(members) > 1:
        train = config.get("train")
        need(
            isinstance(train, dict) and isinstance(train.get("ensemble_mode"), str),
            "'config'.'train'.'ensemble_mode' (a string) for an ensemble",
        )
    return r


def summarize(groups: dict[str, list[dict]], baseline: str) -> list[dict]:
    """One row per variant: each metric's ``mean_ci`` and the ``welch`` differences of final test
    accuracy and loss from ``baseline``."""
    base = groups.get(baseline)
    rows = []
    for v, runs in groups.items():
        row = {
            "variant": v,
            "n": len(runs),
            "holdout": _holdout_of(runs),
            **{m: mean_ci([get(r) for r in runs]) for m, get in METRICS.items()},
        }
        if base is not None and v != baseline:
            for m in ("final_acc", "final_loss"):
                row[f"diff_{m}"] = welch([METRICS[m](r) for r in runs], [METRICS[m](r) for r in base])
        members = [m["test_accuracy"] for r in runs for m in r["members"]]
        if any(len(r["members"]) > 1 for r in runs):
            row["members"] = mean_ci(members)
            row["ensemble_mode"] = runs[0]["config"]["train"]["ensemble_mode"]
        rows.append(row)
    return rows


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.2f}"


def _num(x: float, digits: int = 4) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def _p(p: float) -> str:
    return "n/a" if math.isnan(p) else (f"{p:.2g}" if p >= 1e-4 else "<1e-4")


def markdown(rows: list[dict], meta: dict) -> str:
    """The summary table and the statement of the statistics used."""
    baseline, k = meta["baseline"], sum("diff_final_acc" in r for r in rows)
    # the result files say "test" either way; the words come from the figure's source
    scored, note = _scored_on(max((r.get("holdout", 0) for r in rows), default=0))
    out = [f"# Experiment {meta.get('name') or ''}".rstrip(), ""]
    if note:
        out += [f"**{note}**", ""]
    corrected = (
        f"p-values are not corrected for multiple comparisons ({k} per metric, {2 * k} in the table): "
        f"Bonferroni's 5% family-wise level is p < {0.05 / k:.3g} within one metric, "
        f"p < {0.05 / (2 * k):.3g} over both. "
        if k
        else ""
    )
    counts, expected = meta.get("counts") or {}, len(meta.get("seeds") or ())
    have = {r["variant"]: r["n"] for r in rows}
    missing_base = baseline not in have
    out.append(
        (
            f"Baseline: `{baseline}` has no results, so no differences (Δ) or p-values are computed. "
            if missing_base
            else f"Baseline: `{baseline}`. "
        )
        + "Accuracy in %, mean ± standard deviation over seeds (n), with the "
        f"95% confidence interval of the mean (Student's t, n - 1 degrees of freedom). "
        f"Δ: difference of the final {scored} accuracy (percentage points) or loss from the baseline, with "
        f"its 95% confidence interval and the two-sided p-value of Welch's unequal-variance t-test "
        f"(scipy.stats.ttest_ind, equal_var=False). {corrected}"
        f'"Best" picks the epoch on the {scored} set itself, so it is optimistic; "train acc" is '
        "the final network on its training set in "
        "eval mode (for an ensemble, its members' mean)."
    )
    short = {v: counts.get(v, have.get(v, 0)) for v in meta.get("variants", have)}
    short = {v: n for v, n in short.items() if n == 0 or n < expected}
    if short:
        done = ", ".join(f"`{v}` {n}" + (f" of {expected}" if expected else "") for v, n in short.items())
        out += ["", f"**Incomplete: seeds finished per variant: {done}** (a variant with none has no "
                    "statistics and no curve; `glassnet compare` runs the missing seeds).",]  # fmt: skip
    if meta.get("stale"):
        out += ["", f"Left out: {meta['stale']} result files of an earlier configuration of their variant."]
    ignored = meta.get("ignored") or []
    if ignored:
        listed = ", ".join(f"`{p}`" for p in ignored[:10]) + (
            f" and {len(ignored) - 10} more" if len(ignored) > 10 else ""
        )
        out += ["", f"Left out: {len(ignored)} other files (the report reads only `<variant>/seed<k>.json` "
                    "of the experiment's variants and seeds, holding that variant and seed): "
                    f"{listed}."]  # fmt: skip
    out += [
        "",
        f"| variant | n | final {scored} acc | 95% CI | best {scored} acc | final {scored} loss "
        f"| best {scored} loss | Δ acc [95% CI] | p | Δ loss [95% CI] | p | train acc | s/run |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    by_name = {r["variant"]: r for r in rows}
    order = [v for v in meta.get("variants", []) if v in by_name or v in counts]
    order += [v for v in by_name if v not in order]
    for v in order:
        if v not in by_name:
            name = f"**{v}** (baseline)" if v == baseline else v
            out.append(
                f"| {name} | 0" + (f" of {expected}" if expected else "") + " | no results |" + " — |" * 10
            )
            continue
        r = by_name[v]
        fa, ba, fl, bl = r["final_acc"], r["best_acc"], r["final_loss"], r["best_loss"]
        da, dl = r.get("diff_final_acc"), r.get("diff_final_loss")
        acc_diff = (
            f"{100 * da['diff']:+.2f} [{100 * da['low']:+.2f}, {100 * da['high']:+.2f}]"
            if da and not math.isnan(da["low"])
            else ("—" if da is None else f"{100 * da['diff']:+.2f} [n/a]")
        )
        loss_diff = (
            f"{dl['diff']:+.4f} [{dl['low']:+.4f}, {dl['high']:+.4f}]"
            if dl and not math.isnan(dl["low"])
            else ("—" if dl is None else f"{dl['diff']:+.4f} [n/a]")
        )
        name = f"**{r['variant']}** (baseline)" if r["variant"] == baseline else r["variant"]
        cells = [
            name,
            str(r["n"]) + (f" of {expected}" if r["n"] < expected else ""),
            f"{_pct(fa['mean'])} ± {_pct(fa['sd'])}",
            f"[{_pct(fa['low'])}, {_pct(fa['high'])}]",
            f"{_pct(ba['mean'])} ± {_pct(ba['sd'])}",
            f"{_num(fl['mean'])} ± {_num(fl['sd'])}",
            _num(bl["mean"]),
            acc_diff,
            _p(da["p"]) if da else "—",
            loss_diff,
            _p(dl["p"]) if dl else "—",
            _pct(r["train_acc"]["mean"]),
            _num(r["wall"]["mean"], 1),
        ]
        out.append("| " + " | ".join(cells) + " |")
    ensembles = [r for r in rows if "members" in r]
    if ensembles:
        out += ["", f"Ensembles: the members' own final {scored} accuracy against the ensemble's.", "",
                "| variant | members | member acc (mean ± sd) | ensemble acc | combined by |",
                "| --- | ---: | ---: | ---: | --- |"]  # fmt: skip
        for r in ensembles:
            m = r["members"]
            out.append(
                f"| {r['variant']} | {m['n']} | {_pct(m['mean'])} ± {_pct(m['sd'])} "
                f"| {_pct(r['final_acc']['mean'])} | {r['ensemble_mode']} |"
            )
    return "\n".join(out) + "\n"


def _holdout_of(runs: list[dict]) -> int:
    """How many held-out training examples the runs were scored on (0: the test set)."""
    return max((r["config"].get("data", {}).get("holdout", 0) for r in runs), default=0)


def _scored_on(holdout: int) -> tuple[str, str]:
    """(word, note): what the report's table and the figure's axes call the set the runs were
    scored on, "test" or "held-out", and for held-out a sentence saying what it is. The result
    files call it "test" either way (``history["test_accuracy"]``); both outputs take their words
    from here, so the figure cannot say "test" where the table says "held-out"."""
    if not holdout:
        return "test", ""
    return "held-out", (
        f"Held-out: {holdout} training examples outside the training subset (`holdout`), not the test set."
    )


def curves_figure(groups: dict[str, list[dict]], title: str = ""):
    """The learning curves as a matplotlib ``Figure``: accuracy and loss on the set the runs
    were scored on (test, or held-out training examples) and training loss (penalty included)
    per epoch; each variant's mean over seeds with a band for the 95% confidence interval of
    the mean. The training loss is drawn on a log axis, so its line is the geometric mean over
    seeds and its band the t-interval of the mean of log(loss), taken back with exp: positive
    wherever every seed's loss is (an arithmetic interval goes below zero, off a log axis).
    Variants take tab10's colours in turn, then the next line style (solid, dashed, dotted,
    dash-dot, then dash patterns of their own), so no two share a colour and a style. Built
    without pyplot, so no backend is chosen and nothing needs closing: save it
    with ``fig.savefig(path)``, or show it in a notebook."""
    import matplotlib
    from matplotlib.figure import Figure

    scored, note = _scored_on(max(_holdout_of(runs) for runs in groups.values()))
    panels = [
        ("test_accuracy", f"{scored} accuracy"),
        ("test_loss", f"{scored} loss"),
        ("train_loss", "training loss (with penalty), geometric mean"),
    ]
    fig = Figure(figsize=(14, 4.6 if note else 4.2))
    axes = fig.subplots(1, 3)
    colors = matplotlib.colormaps["tab10"]
    means: list[list[np.ndarray]] = [[], [], []]
    for i, (v, runs) in enumerate(groups.items()):
        color, style = colors(i % 10), _line_style(i // 10)
        epochs = np.asarray(runs[0]["history"]["epoch"])
        for j, (ax, (key, label)) in enumerate(zip(axes, panels)):
            curves = np.array([r["history"][key] for r in runs if len(r["history"][key]) == len(epochs)])
            geometric = key == "train_loss"  # the log-scaled panel: statistics of log(loss)
            if geometric:
                with np.errstate(divide="ignore", invalid="ignore"):
                    curves = np.log(curves)
            cis = [mean_ci(col) for col in curves.T]
            mean, low, high = (np.array([c[k] for c in cis]) for k in ("mean", "low", "high"))
            if geometric:
                mean, low, high = np.exp(mean), np.exp(low), np.exp(high)
            means[j].append(mean[len(mean) // 5 :])
            ax.plot(epochs, mean, color=color, linestyle=style, lw=1.3, label=v)
            if len(curves) > 2:  # with two seeds t(0.975, 1) = 12.7: a band that says nothing
                ax.fill_between(epochs, low, high, color=color, alpha=0.18, lw=0)
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
    for ax, ms in zip(axes[:2], means[:2]):  # zoom on the means after the first fifth of training
        finite = np.concatenate(ms)
        finite = finite[np.isfinite(finite)]  # a diverged run's NaN loss is no axis limit
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            pad = 0.15 * (hi - lo) or 0.01
            ax.set_ylim(lo - pad, hi + pad)
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=7, ncol=2)
    heading = "\n".join(line for line in (title, note.replace("`", "")) if line)
    if heading:
        fig.suptitle(heading)
    fig.tight_layout()
    return fig


def _line_style(k: int):
    """The k-th line style: matplotlib's four named ones, then dash patterns, each its own."""
    named = ("-", "--", ":", "-.")
    return named[k] if k < len(named) else (0, (2 + k, 2, 1, 2))


def plot_curves(groups: dict[str, list[dict]], path: str, title: str = "") -> None:
    """``curves_figure`` written to ``path`` as a PNG, atomically."""
    buf = io.BytesIO()
    curves_figure(groups, title).savefig(buf, format="png", dpi=90)
    write_atomic(path, buf.getvalue())


def render(out_dir: str | os.PathLike, baseline: str | None = None) -> str:
    """Write ``report.md`` and ``curves.png`` into ``out_dir`` from its result files alone;
    returns the Markdown."""
    out_dir = os.fspath(out_dir)
    meta, groups = load_results(out_dir)
    if baseline is not None:
        # a variant of the experiment without results is reported as the default baseline is
        # (the report says it has none); a name that is no variant at all is a mistake
        if baseline not in groups and baseline not in meta["variants"]:
            raise ValueError(
                f"report: baseline {baseline!r} is not a variant of {out_dir} ({', '.join(meta['variants'])})"
            )
        meta = {**meta, "baseline": baseline}
    text = markdown(summarize(groups, meta["baseline"]), meta)
    try:
        plot_curves(groups, os.path.join(out_dir, "curves.png"), meta.get("name", ""))
        text += (
            "\n![learning curves: mean over seeds, bands = 95% CI of the mean; training loss: geometric "
            "mean, its band the CI of mean log(loss) taken back with exp](curves.png)\n"
        )
    except ImportError:
        text += "\n(No figure: matplotlib is not installed; pip install 'glassnet[plot]'.)\n"
    write_atomic(os.path.join(out_dir, "report.md"), text.encode())
    return text


__all__ = [
    "curves_figure",
    "load_results",
    "markdown",
    "mean_ci",
    "plot_curves",
    "read_experiment",
    "read_result",
    "render",
    "summarize",
    "welch",
]
