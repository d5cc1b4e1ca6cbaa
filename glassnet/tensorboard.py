"""A callback writing TensorBoard event files: per-epoch scalars and histograms.

tensorboardX is an optional extra (``pip install 'glassnet[tensorboard]'``), imported when
training begins. View with ``tensorboard --logdir DIR``.
"""

from __future__ import annotations

from .callbacks import Callback


class TensorBoard(Callback):
    """After every epoch: each logged metric as a scalar (``loss``, ``val_accuracy``, ``lr``, ...),
    and with ``histograms=True`` a histogram of every parameter (``weights/1.W``) and of its
    gradient from the epoch's last step (``gradients/1.W``). Given a ``GradientFlow`` callback
    (placed before this one in ``callbacks``), also each weight layer's speed of learning
    (``speed/layer_1``) and the dead and saturated fractions it measured. Steps are epochs,
    counted from 1."""

    def __init__(self, log_dir: str, histograms: bool = True, gradient_flow=None) -> None:
        self.log_dir, self.histograms, self.flow = str(log_dir), histograms, gradient_flow
        self.writer = None

    def on_train_begin(self, logs):
        try:
            from tensorboardX import SummaryWriter
        except ModuleNotFoundError as e:
            if e.name != "tensorboardX":  # installed but broken: the real cause, not "pip install"
                raise
            raise ImportError(
                "the TensorBoard callback needs tensorboardX: pip install 'glassnet[tensorboard]'"
            ) from None
        self.writer = SummaryWriter(logdir=self.log_dir)

    def on_epoch_end(self, epoch, logs):
        step, w = epoch + 1, self.writer
        for k, v in logs.items():
            w.add_scalar(k, float(v), step)
        if self.histograms:
            for name, p in self.model.named_parameters():
                w.add_histogram(f"weights/{name}", p.data, step)
                w.add_histogram(f"gradients/{name}", p.grad, step)
        if self.flow is not None and self.flow.history:
            for r in self.flow.history[-1]["layers"]:
                tag = f"layer_{r['layer']}"
                w.add_scalar(f"speed/{tag}", r["speed"], step)
                for key in ("dead", "saturated"):
                    if key in r:
                        w.add_scalar(f"{key}/{tag}", r[key], step)
        w.flush()

    def on_train_end(self, logs):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


__all__ = ["TensorBoard"]
