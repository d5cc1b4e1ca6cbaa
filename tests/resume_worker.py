"""A small training run for the crash-and-resume tests, importable and runnable as a subprocess.

    python tests/resume_worker.py RUN_DIR [--resume] [--slow SECONDS] [--kill-during-write N]

Trains a small CNN (convolution, batch norm, dropout, Adam, a cosine schedule, shifts and flips,
early stopping that restores the best weights, a CSV log) on 8x8 synthetic images, writing a
checkpoint to RUN_DIR every few steps, then saves the final model as RUN_DIR/final.safetensors.
``--slow`` sleeps after every batch (a stateless callback), so that a kill from outside lands
mid-run; ``--kill-during-write N`` makes the process SIGKILL itself halfway through writing
the Nth checkpoint's temporary file.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time

import numpy as np

import glassnet as gn

EPOCHS, BATCH, EVERY = 4, 10, 3  # 8 batches an epoch: checkpoints mid-epoch and at its end


def data():
    rng = np.random.default_rng(0)
    x = rng.random((100, 1, 8, 8), dtype=np.float32)
    y = (x[:, 0, :, :4].mean(axis=(1, 2)) > x[:, 0, :, 4:].mean(axis=(1, 2))).astype(np.int64)
    return (x[:80], y[:80]), (x[80:], y[80:])


def build(run_dir: str):
    rng = np.random.default_rng(1)
    model = gn.Sequential(
        gn.Conv2d(1, 4, 3, rng=rng), gn.BatchNorm2d(4), gn.ReLU(), gn.MaxPool2d(2),
        gn.Flatten(), gn.Dropout(0.3), gn.Linear(36, 2, rng=rng),
    )  # fmt: skip
    opt = gn.optim.Adam(model.parameters(), lr=0.01)
    schedule = gn.schedules.CosineAnnealingLR(opt, EPOCHS)
    callbacks = [
        gn.EarlyStopping(patience=EPOCHS, restore_best=True),
        gn.CSVLogger(os.path.join(run_dir, "metrics.csv")),
    ]
    return model, opt, schedule, callbacks


def train(run_dir: str, resume: bool = False, checkpoint: bool = True, extra=()) -> gn.Sequential:
    model, opt, schedule, callbacks = build(run_dir)
    train_data, val_data = data()
    gn.fit(
        model, gn.CrossEntropyLoss(), opt, train_data, epochs=EPOCHS, batch_size=BATCH,
        val_data=val_data, callbacks=[*callbacks, *extra], rng=np.random.default_rng(2),
        scheduler=schedule, augment=gn.data.Augment(shift=1, flip=True), verbose=False,
        checkpoint=run_dir if checkpoint else None, checkpoint_every=EVERY if checkpoint else None,
        resume_from=run_dir if resume else None,
    )  # fmt: skip
    return model


class Slow(gn.Callback):
    """Sleep after each batch; no state, so a resumed run need not have it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_batch_end(self, batch, logs):
        time.sleep(self.seconds)


def kill_during_write(n: int) -> None:
    """SIGKILL this process halfway through writing the temporary file of the nth checkpoint."""
    real = tempfile.NamedTemporaryFile
    count = 0

    def named_temporary_file(*args, **kwargs):
        nonlocal count
        f = real(*args, **kwargs)
        if kwargs.get("prefix", "").startswith(".checkpoint.safetensors."):
            count += 1
            if count == n:

                def write(data):
                    f.file.write(data[: len(data) // 2])
                    f.file.flush()
                    os.kill(os.getpid(), signal.SIGKILL)

                f.write = write
        return f

    tempfile.NamedTemporaryFile = named_temporary_file


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--slow", type=float, default=0.0)
    p.add_argument("--kill-during-write", type=int, default=0)
    args = p.parse_args(argv)
    if args.kill_during_write:
        kill_during_write(args.kill_during_write)
    extra = [Slow(args.slow)] if args.slow else []
    model = train(args.run_dir, resume=args.resume, extra=extra)
    gn.save(model, os.path.join(args.run_dir, "final.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1:])
