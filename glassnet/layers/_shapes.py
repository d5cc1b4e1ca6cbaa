"""The bounds that ``state_shapes`` puts on the sizes in a layer's config.

``state_shapes`` runs on configs read from files, before anything is built: its own work must
stay small whatever a file says. The bounds are far beyond any model glassnet can train.
"""

from __future__ import annotations

from ..module import check_arg

MAX_SIZE = 2**31 - 1  # features, channels, kernel taps: one axis of one tensor
MAX_LAYERS = 1000  # stacked recurrent layers: the shape table has 4 entries per layer and direction


def size(owner: str, name: str, value, high: int = MAX_SIZE) -> int:
    """``value`` as an int, if it is an integer in [1, high]; else ``ValueError`` naming it."""
    return int(check_arg(owner, name, value, lambda v: 1 <= v <= high, f"an integer in [1, {high}]", int))
