"""No hidden effects: importing glassnet changes nothing global, reading an attribute writes
nothing, and what an optimizer does to ``p.data`` is what its documentation says."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import glassnet as gn

IMPORT_WITH_SPY = """
import ctypes, json
calls = []
real = ctypes.CDLL
class Spy:
    def __init__(self, *a, **k):
        self.lib = real(*a, **k)
    def __getattr__(self, name):
        calls.append(name)
        return getattr(self.lib, name)
ctypes.CDLL = Spy
import glassnet
before = list(calls)
glassnet.tune_malloc()
print(json.dumps([before, calls]))
"""


def test_importing_glassnet_leaves_the_allocator_alone_and_tune_malloc_is_explicit():
    out = subprocess.run([sys.executable, "-c", IMPORT_WITH_SPY], capture_output=True, text=True, check=True)
    at_import, after_call = json.loads(out.stdout.strip().splitlines()[-1])
    assert "mallopt" not in at_import
    if sys.platform.startswith("linux"):
        assert "mallopt" in after_call


MAPPED_BYTES = """
import ctypes, json, sys
import numpy as np
import glassnet
libc = ctypes.CDLL("libc.so.6")
class MallInfo(ctypes.Structure):  # glibc's struct mallinfo: ints
    _fields_ = [(f, ctypes.c_int) for f in
                "arena ordblks smblks hblks hblkd usmblks fsmblks uordblks fordblks keepcost".split()]
libc.mallinfo.restype = MallInfo
if sys.argv[1] == "tuned":
    glassnet.tune_malloc()
before = libc.mallinfo().hblkd
blocks = [np.ones(s, np.float32) for s in (1 << 20, 4 << 20, 16 << 20)]  # 4, 16 and 64 MB
print(json.dumps(libc.mallinfo().hblkd - before))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator: Linux only")
def test_tune_malloc_serves_blocks_above_the_32_mb_mmap_cap_from_the_heap():
    """Without it glibc maps every block of 128 KiB and more afresh (and every block above the
    32 MB cap on its threshold even with the threshold raised); after it, none."""

    def mapped(mode):
        out = subprocess.run(
            [sys.executable, "-c", MAPPED_BYTES, mode], capture_output=True, text=True, check=True
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    assert mapped("default") >= (4 + 16 + 64) << 20  # each array its own mapping
    assert mapped("tuned") == 0


def test_reading_grad_writes_nothing_and_zero_grad_zeroes():
    layer = gn.Linear(3, 2, rng=0)
    x, dy = np.ones((4, 3), np.float32), np.ones((4, 2), np.float32)
    layer.forward(x)
    layer.backward(dy)
    before = layer.W.grad.copy()
    held = layer.W.grad  # what a user or a tool kept: zero_grad writes its zeros there at once,
    layer.zero_grad()  # not on the next read of p.grad (the lazy zeroing of before 2026-12-03)
    assert not held.any()
    opt = gn.optim.SGD(layer.parameters(), lr=0.1)
    layer.backward(dy)
    vector = opt.grad  # the optimizer's flat vector, read without going through p.grad
    assert vector.any()
    opt.zero_grad()
    assert not vector.any()
    seen = layer.W.grad
    assert not seen.any()
    seen_again = layer.W.grad
    assert seen_again is seen  # the same buffer, not a fresh array per read
    layer.forward(x)
    layer.backward(dy)
    layer.backward(dy)  # backward adds: twice the one-pass gradient
    np.testing.assert_allclose(layer.W.grad, 2 * before)


def test_an_optimizer_over_a_subset_of_another_ones_parameters_sees_the_gradients_zeroed():
    model = gn.Sequential(gn.Linear(3, 4, rng=0), gn.ReLU(), gn.Linear(4, 2, rng=1))
    opt = gn.optim.SGD(model.parameters(), lr=0.1)
    head = gn.optim.SGD(model[2].parameters(), lr=0.1)  # updates parameter by parameter
    for p in model.parameters():
        p.grad[...] = 1.0
    head.zero_grad()
    assert not any(p.grad.any() for p in model[2].parameters())
    assert all(p.grad.all() for p in model[0].parameters())
    opt.zero_grad()
    assert not any(p.grad.any() for p in model.parameters())


def test_an_optimizer_makes_each_p_data_a_view_of_its_flat_vector_as_documented():
    model = gn.Sequential(gn.Linear(3, 4, rng=0), gn.ReLU(), gn.Linear(4, 2, rng=1))
    values = {name: p.data.copy() for name, p in model.named_parameters()}
    opt = gn.optim.Adam(model.parameters(), lr=1e-3)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, values[name])  # values kept
        assert np.shares_memory(p.data, opt.data) and np.shares_memory(p.grad, opt.grad)
    assert model[0].W.data.flags.f_contiguous  # a column-major W stays column-major
