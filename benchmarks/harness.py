"""What the speed benchmarks share: the epoch timer and the alternating-process rounds.

Each measurement runs in its own process (NumPy's and torch's BLAS thread pools starve each
other in one process), alternating glassnet, torch, glassnet, torch, ...; a child process runs
``script --impl NAME ...`` and prints one JSON line whose ``"train"`` is seconds per epoch.
"""

from __future__ import annotations

import json
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


def alternate(script: str, rounds: int, args: list[str]) -> dict[str, list[dict]]:
    """``rounds`` pairs of child processes, glassnet then torch, each running ``script`` with
    ``--impl NAME`` and ``args``; prints each round's times and returns every child's JSON."""
    results: dict[str, list[dict]] = {"glassnet": [], "torch": []}
    for r in range(rounds):
        for impl in ("glassnet", "torch"):
            out = run_child([sys.executable, script, "--impl", impl, *args])
            results[impl].append(json.loads(out.strip().splitlines()[-1]))
        g, t = results["glassnet"][-1]["train"], results["torch"][-1]["train"]
        print(
            f"round {r + 1}: glassnet {g:.3f} s/epoch, torch {t:.3f} s/epoch, ratio {g / t:.2f}", flush=True
        )
    return results


def run_child(cmd: list[str], env: dict[str, str] | None = None) -> str:
    """Run one measuring child process and return its stdout; if it fails, raise with the
    last lines of its stderr (its traceback), which ``check=True`` alone would swallow."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(cmd[1:])} exited with {proc.returncode}:\n{tail}")
    return proc.stdout


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
