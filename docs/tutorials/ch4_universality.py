# %% [markdown]
# # Chapter 4: a visual proof that neural nets can compute any function
#
# The chapter's argument, built rather than drawn: a sigmoid neuron with a huge weight w is a
# step at s = -b/w; two such steps, one added and one subtracted, make a *bump* of height h
# between s_1 and s_2; enough bumps side by side approximate any continuous function of one
# variable. So one hidden layer suffices, given enough neurons. We set the weights of a
# `Linear -> Sigmoid -> Linear` network by hand, then let gradient descent find its own.
#
# **What you should see**: the hand-built network's error falls as bumps are added (roughly
# in proportion to their width), and a trained network of 30 sigmoids fits the same curve far
# better than a constant does.
#
# **At full size** ([chapter 4, measured](../chapter4.md), `examples/chapter4_universality.py`):
# the same construction and trained networks of up to 100 hidden units, the error falling as
# units are added.

# %%
import matplotlib.pyplot as plt
import numpy as np

import glassnet as gn


def f(x):
    return 0.2 + 0.4 * x**2 + 0.3 * x * np.sin(15 * x) + 0.05 * np.cos(50 * x)


grid = np.linspace(0, 1, 2001, dtype=np.float64)[:, None]


def bumps(n, w=2000.0):
    """One hidden layer of 2n sigmoids: bump i rises at i/n, falls at (i + 1)/n, height f(centre)."""
    model = gn.Sequential(gn.Linear(1, 2 * n), gn.Sigmoid(), gn.Linear(2 * n, 1)).to(np.float64)
    hidden, out = model.children[0], model.children[2]
    edges = np.linspace(0, 1, n + 1)
    steps = np.repeat(edges, 2)[1:-1]  # s_1, s_2 of each bump: rise at the left edge, fall at the right
    hidden.W.data[...] = w
    hidden.b.data[...] = -w * steps  # the step of neuron j sits at s_j = -b_j / w
    heights = f((edges[:-1] + edges[1:]) / 2)
    out.W.data[:, 0] = np.ravel(np.column_stack([heights, -heights]))
    out.b.data[...] = 0.0
    return model


rms = {}
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(grid, f(grid), "k", lw=2, label="f(x)")
for n in (5, 20, 100):
    approx = bumps(n).forward(grid)
    rms[n] = float(np.sqrt(np.mean((approx - f(grid)) ** 2)))
    ax.plot(grid, approx, lw=1, label=f"{n} bumps ({2 * n} neurons): rms error {rms[n]:.3f}")
ax.legend(fontsize=7)
plt.show()
print(rms)

# %% [markdown]
# ## Learned instead of built
#
# Gradient descent does not build bumps, but a hidden layer of 30 sigmoids trained with Adam
# on 1,000 points finds a fit of its own. Its first layer starts as the chapter's steps do:
# steep weights (|w| up to 60) with the step positions -b/w spread over [0, 1]; PyTorch's
# default init (|w| <= 1) would make every sigmoid nearly linear on [0, 1].

# %%
rng = np.random.default_rng(0)
x = np.linspace(0, 1, 1000, dtype=np.float32)[:, None]
y = f(x).astype(np.float32)
model = gn.Sequential(gn.Linear(1, 30, rng=rng), gn.Sigmoid(), gn.Linear(30, 1, rng=rng))
model.children[0].W.data[...] = rng.uniform(-60, 60, (1, 30))  # steep enough for the ripples
model.children[0].b.data[...] = -model.children[0].W.data[0] * rng.uniform(0, 1, 30)
opt = gn.optim.Adam(model.parameters(), lr=1e-2)
gn.fit(model, gn.MSELoss(), opt, (x, y), epochs=300, batch_size=100, rng=rng, verbose=False)
fit = gn.predict(model, x)
rms_trained = float(np.sqrt(np.mean((fit - y) ** 2)))
rms_constant = float(np.std(y))
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(x, y, "k", lw=2, label="f(x)")
ax.plot(x, fit, label=f"30 trained sigmoids: rms error {rms_trained:.3f}")
ax.legend(fontsize=8)
plt.show()
print(f"rms error: trained {rms_trained:.4f}, the best constant {rms_constant:.4f}")

# %% [markdown]
# The checks.

# %%
assert rms[100] < rms[20] < rms[5], rms
assert rms[100] < 0.02, rms
assert rms_trained < rms_constant / 3, (rms_trained, rms_constant)
