"""What the speed benchmarks share: the epoch timer, the alternating-process rounds, and the
in-process alternation of ``bench_paths.py`` and ``bench_left_out.py``.

Each measurement runs in its own process (NumPy's and torch's BLAS thread pools starve each
other in one process), a glassnet process and a torch process per round, back to back, glassnet
first in one round and torch first in the next; a child process runs ``script --impl NAME ...``
and prints one JSON line whose ``"train"`` is seconds per epoch.

A ratio glassnet / torch is the median over rounds of each round's own ratio (``paired_ratio``):
the two processes of a round ran within seconds of each other, on the machine in one state. On
a shared VM the state changes by the tens of seconds (a phase that slows both libraries 1.5x,
then lifts); a ratio of the two libraries' medians can take glassnet's median from a slow phase
and torch's from a fast one, a round's own ratio does not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time


def epoch_timer():
    """A callback recording the seconds of each training epoch in ``.times`` (fit's one-time
    input validation not counted). glassnet is imported here, not at the top: a child process
    must set its BLAS thread count before NumPy is first imported."""
    import glassnet as gn

    class EpochTimer(gn.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_epoch_begin(self, epoch):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs):
            self.times.append(time.perf_counter() - self.start)

    return EpochTimer()


def same_allocator() -> None:
    """glassnet's ``tune_malloc()`` in a child process, whichever library it times: glassnet's
    CLI tunes glibc's allocator, and each library gets the same one (a process that maps and
    unmaps its large blocks afresh pays page faults the other does not)."""
    import glassnet as gn

    gn.tune_malloc()


def round_order(r: int) -> tuple[str, str]:
    """The order of round ``r``'s two processes: glassnet first in even rounds, torch first in odd
    ones, so that neither library always runs right after the other's process."""
    return ("glassnet", "torch") if r % 2 == 0 else ("torch", "glassnet")


def paired_ratio(g: list[float], t: list[float]) -> tuple[float, list[float]]:
    """The ratio the benchmarks report: the median over rounds of ``g[r] / t[r]``, each round's
    own ratio, and those ratios (in round order)."""
    pairs = [a / b for a, b in zip(g, t, strict=True)]
    return statistics.median(pairs), pairs


def alternate(
    script: str,
    rounds: int,
    args: list[str],
    env: dict[str, str] | None = None,
    launch: dict[str, list[str]] | None = None,
) -> dict[str, list[dict]]:
    """``rounds`` pairs of child processes, each running ``script`` with ``--impl NAME`` and
    ``args`` (in ``env``, if given), in ``round_order``; returns every child's JSON by library,
    in round order, and prints each round's epoch times where the children report one
    (``"train"``). ``launch``: as ``alternate_live``'s (the last line a child prints is its
    answer: under ``mpiexec`` rank 0 alone prints one)."""
    results: dict[str, list[dict]] = {"glassnet": [], "torch": []}
    for r in range(rounds):
        for impl in round_order(r):
            start = (launch or {}).get(impl, [])
            out = run_child([*start, sys.executable, script, "--impl", impl, *args], env=env)
            results[impl].append(json.loads(out.strip().splitlines()[-1]))
        if "train" in results["torch"][-1]:
            g, t = results["glassnet"][-1]["train"], results["torch"][-1]["train"]
            print(
                f"round {r + 1}: glassnet {g:.3f} s/epoch, torch {t:.3f} s/epoch, ratio {g / t:.2f}",
                flush=True,
            )
    return results


def alternate_live(
    script: str,
    rounds: int,
    args: list[str],
    env: dict[str, str] | None = None,
    pause: float = 0.3,
    launch: dict[str, list[str]] | None = None,
) -> dict[str, list[dict]]:
    """``alternate``'s rounds with the two children started once: each runs ``script --impl NAME
    --serve`` and answers every line it reads on stdin with one JSON line of timings (``serve``).
    ``launch``: a command that starts a library's child, by library (``["mpiexec", "-n", "2"]``:
    its ranks, rank 0 answering, ``serve_ranks``).
    A round asks the two in ``round_order``, one after the other, so its two measurements are
    well under a second apart, where a round of fresh processes spends seconds importing torch
    between them, long enough for this VM's cores to change placement (docs/speed.md, "When the
    two cores share no cache") and split the pair. ``pause`` seconds of quiet come before each
    measurement, so that the other library's threads, spinning after their last call, have gone
    to sleep. Returns what ``alternate`` returns."""
    import tempfile

    procs, errs, cmds = {}, {}, {}
    try:
        for impl in ("glassnet", "torch"):
            errs[impl] = tempfile.TemporaryFile(mode="w+")
            start = (launch or {}).get(impl, [])
            cmds[impl] = [*start, sys.executable, script, "--impl", impl, "--serve", *args]
            procs[impl] = subprocess.Popen(
                cmds[impl],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errs[impl],
                text=True,
                env=env,
            )
        results: dict[str, list[dict]] = {"glassnet": [], "torch": []}
        for r in range(rounds):
            for impl in round_order(r):
                time.sleep(pause)
                proc = procs[impl]
                proc.stdin.write("go\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:  # the child died: its traceback is in its stderr
                    proc.wait()
                    errs[impl].seek(0)
                    raise child_failed(cmds[impl], proc.returncode, errs[impl].read())
                results[impl].append(json.loads(line))
        return results
    finally:
        for proc in procs.values():
            if proc.stdin and not proc.stdin.closed:
                proc.stdin.close()
            proc.wait()
        for f in errs.values():
            f.close()


def serve(measure) -> None:
    """A child of ``alternate_live``: ``measure()`` (a dict of timings) once for every line read
    on stdin, each answered with one JSON line; returns at end of input."""
    for _ in sys.stdin:
        print(json.dumps(measure()), flush=True)


def mpiexec(script: str) -> str:
    """The launcher of the MPICH wheel (``pip install 'glassnet[mpi]'``): beside this Python's
    executable in a virtual environment, else on PATH; ``script``'s usage error without one."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")
    if found is None:
        raise SystemExit(f"{script}: --ranks needs mpiexec: pip install 'glassnet[mpi]' (mpi4py, MPICH)")
    return found


def refuse_more_ranks_than_threads(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--ranks`` K runs glassnet on K processes of ``--threads`` / K BLAS threads each against
    PyTorch's one process on ``--threads``: more ranks than threads would give glassnet more
    cores than PyTorch, a usage error."""
    if args.ranks > args.threads:
        ap.error(f"--ranks {args.ranks} needs --threads {args.ranks} or more: each rank runs on a thread of "
                 f"its own, and PyTorch gets as many (got --threads {args.threads})")  # fmt: skip


def serve_ranks(measure, comm) -> None:
    """``serve`` for a child started on several MPI ranks (``alternate_live``'s ``launch``): MPICH's
    launcher hands stdin to rank 0 alone, so rank 0 reads each line and tells every rank (a
    broadcast) to run ``measure()``, whose collectives need them all; rank 0 answers. At end of
    input every rank returns. The ranks wait for the broadcast asleep, looking every 5 ms: MPI's
    own blocking wait spins a core, which took one of the other library's two threads' cores
    while it measured (PyTorch's LSTM epoch: 28 s instead of 0.18)."""
    import numpy as np

    go = np.zeros(1, np.int8)
    lines = iter(sys.stdin) if comm.rank == 0 else None
    while True:
        if lines is not None:
            go[0] = next(lines, None) is not None
        request = comm.Ibcast(go, root=0)
        while not request.Test():
            time.sleep(0.005)
        if not go[0]:
            return
        timings = measure()
        if comm.rank == 0:
            print(json.dumps(timings), flush=True)


def answer(args: argparse.Namespace, measure, ranks: int = 1) -> None:
    """A child's side of the rounds (``--impl``): its BLAS and OpenMP pools set to ``--threads``
    before ``measure()`` first imports NumPy, then ``measure()``'s timings as one JSON line, or,
    under ``--serve`` (``alternate_live``), once for every line read on stdin; on ``ranks`` > 1
    MPI ranks (``mpiexec``), ``serve_ranks``."""
    os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    if ranks > 1:
        from mpi4py import MPI

        serve_ranks(measure, MPI.COMM_WORLD)
    elif args.serve:
        serve(measure)
    else:
        print(json.dumps(measure()))


def layer_table(results: dict[str, list[dict]], names, title: str, as_json: bool, threads: int) -> None:
    """Print the per-layer medians of ``alternate``'s results, in ms, with their ratios
    (``paired_ratio``, and each round's): one JSON line (``as_json``, what run_all.py reads) or a
    Markdown table headed ``title``. A layer a glassnet child reports as None (absent from that
    version) has no row."""
    rows = {}
    for name in names:
        rounds = zip(results["glassnet"], results["torch"])
        pairs = [(g[name], t[name]) for g, t in rounds if g[name] is not None]
        if pairs:
            g, t = [a for a, _ in pairs], [b for _, b in pairs]
            ratio, each = paired_ratio(g, t)
            rows[name] = {
                "glassnet_ms": round(statistics.median(g) * 1e3, 3),
                "torch_ms": round(statistics.median(t) * 1e3, 3),
                "ratio": round(ratio, 3),
                "pair_ratios": [round(p, 3) for p in each],
            }
    if as_json:
        print(json.dumps({"threads": threads, "rows": rows}))
        return
    print(f"| {title} | glassnet ms | torch ms | ratio | each round |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        each = ", ".join(f"{p:.2f}" for p in r["pair_ratios"])
        print(f"| {name} | {r['glassnet_ms']:.2f} | {r['torch_ms']:.2f} | {r['ratio']:.2f} | {each} |")


def positive_int(text: str) -> int:
    """argparse's ``type=`` for counts (rounds, repeats, epochs, threads, sizes): an integer >= 1,
    else argparse's one-line usage error, worded as ``glassnet.runs.positive_int``'s. Not that one
    itself: importing glassnet loads NumPy, and a child process must set its BLAS thread count
    before that."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


positive_int.__name__ = "an integer >= 1"  # what argparse names the type in its messages


def thread_env(threads: int) -> dict[str, str]:
    """This process's environment with the BLAS and OpenMP pools set to ``threads``."""
    return dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))


def run_child(cmd: list[str], env: dict[str, str] | None = None) -> str:
    """Run one measuring child process and return its stdout; if it fails, raise with the
    last lines of its stderr (its traceback), which ``check=True`` alone would swallow."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise child_failed(cmd, proc.returncode, proc.stderr)
    return proc.stdout


def child_failed(cmd: list[str], returncode: int, stderr: str) -> RuntimeError:
    """The error for a measuring child that exited with ``returncode``: its command and the last
    lines of its stderr (its traceback)."""
    tail = "\n".join(stderr.strip().splitlines()[-5:])
    return RuntimeError(f"{' '.join(cmd[1:])} exited with {returncode}:\n{tail}")


@contextlib.contextmanager
def windows_only():
    """Every convolution by windows inside the block (``SPECTRAL_MAX_COST = 0``: none through the
    DFT), for the rows that measure the windows' machinery; the layer's rule comes back after."""
    from glassnet.layers import conv

    saved = conv.SPECTRAL_MAX_COST
    conv.SPECTRAL_MAX_COST = 0
    try:
        yield
    finally:
        conv.SPECTRAL_MAX_COST = saved


def median_time(once, repeats: int) -> float:
    """Median seconds of ``once()`` over ``repeats`` calls, after three warm-up calls."""
    for _ in range(3):
        once()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def alternating_ms(sides: dict, rounds: int, repeats: int) -> dict[str, float]:
    """Sides timed in turn in this one process (``bench_paths.py``, ``bench_left_out.py``):
    ``sides`` maps a name to ``(setup, work)``; each round, each side runs ``setup()`` (a switch,
    or None), one untimed ``work()``, then ``repeats`` timed ones, of which the best counts. Per
    side: the median over ``rounds`` of those bests, in ms."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, (setup, work) in sides.items():
            if setup is not None:
                setup()
            work()  # one untimed call on this side
            best = []
            for _ in range(repeats):
                t = time.perf_counter()
                work()
                best.append(time.perf_counter() - t)
            times[name].append(min(best))
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def alternating_parser(
    doc: str, rounds: int, repeats: int | None = None, as_json: bool = True
) -> argparse.ArgumentParser:
    """The options every script of ``alternate``'s rounds takes: ``--rounds``, ``--repeats`` (with
    a default: timed calls per process), ``--threads``, ``--json`` (``as_json``) and the hidden
    ``--impl`` that marks a child; a script adds its own."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=positive_int, default=rounds,
                    help="rounds: a glassnet and a torch process each, back to back")  # fmt: skip
    if repeats is not None:
        ap.add_argument("--repeats", type=positive_int, default=repeats, help="timed calls per process")
    ap.add_argument("--threads", type=positive_int, default=2)
    if as_json:
        ap.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    ap.add_argument("--impl", choices=["glassnet", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # alternate_live's child
    return ap


def in_process_parser(doc: str, rounds_help: str, repeats: int) -> argparse.ArgumentParser:
    """The options of an in-process comparison script: ``--rounds``, ``--repeats``, ``--threads``
    and ``--json``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=positive_int, default=8, help=rounds_help)
    ap.add_argument("--repeats", type=positive_int, default=repeats,
                    help="timed calls per side and round (best taken)")  # fmt: skip
    ap.add_argument("--threads", type=positive_int, default=2)
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    return ap


def in_process_main(parser: argparse.ArgumentParser, measure, header: tuple[str, str, str, str],
                    keys: tuple[str, str]) -> None:  # fmt: skip
    """An in-process comparison script's main: set the BLAS threads before ``measure(rounds,
    repeats)`` imports NumPy, then print its rows as one JSON line (``--json``) or as a markdown
    table (name, the two sides' ms under ``keys``, their ratio; ``header`` names the columns)."""
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    rows = measure(args.rounds, args.repeats)
    if args.json:
        print(json.dumps({"threads": args.threads, "rows": rows}))
        return
    print("| " + " | ".join(header) + " |\n| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['name']} | {r[keys[0]]:.2f} | {r[keys[1]]:.2f} | **{r['ratio']:.2f}** |")
