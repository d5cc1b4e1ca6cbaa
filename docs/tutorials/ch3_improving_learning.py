# %% [markdown]
# # Chapter 3: improving the way networks learn
#
# The chapter's toolbox, one experiment each, on scikit-learn's 8x8 digits (1,438 training and
# 359 test images) so that everything runs in seconds: the cross-entropy cost against the
# quadratic one, weight initialisation, L2 and L1 regularisation, dropout and Gaussian dropout,
# and the learning-rate range test that picks eta.
#
# **What you should see**: (1) a saturated sigmoid neuron learns slowly under the quadratic
# cost and fast under cross-entropy; (2) N(0, 1) weights start about one hidden sigmoid in eight
# saturated, N(0, 1/n_in) weights none; (3) L2 shrinks the weights and L1 sets many
# to nearly zero; (4) dropout and Gaussian dropout keep each activation's mean and differ only
# in the shape of the noise; (5) the range test finds a learning rate between too cold and too
# hot.
#
# **At full size**: the book's chapter 3 net (`glassnet train --model book-ch3`: cross-entropy,
# N(0, 1/n_in) init, L2) on Fashion-MNIST, and the [dropout study](../experiments.md): on
# 5,000 Fashion-MNIST images a 784-512-512-10 net's final test loss falls from 0.536 to about
# 0.42 with dropout, L2, L1 or elastic net (5 seeds each).

# %%
import matplotlib.pyplot as plt
import numpy as np

import glassnet as gn

train, test = gn.datasets.load_digits()
print(train.n, "training and", test.n, "test images of shape", train.x.shape[1:])

# %% [markdown]
# ## 1. Cross-entropy against the quadratic cost: the learning slowdown
#
# The book's single neuron: input 1, target 0, weight and bias starting at 2 (output
# sigma(4) = 0.98, badly wrong), eta = 0.15. Under the quadratic cost dC/dz = (a - y) sigma'(z),
# and sigma'(4) is tiny, so it barely moves; under cross-entropy dC/dz = a - y (BP1 with the
# sigma' cancelled), so the worse the neuron is, the faster it learns.


# %%
def neuron_outputs(loss, steps=300):
    model = (
        gn.Sequential(gn.Linear(1, 1))
        if loss == "cross-entropy"
        else gn.Sequential(gn.Linear(1, 1), gn.Sigmoid())
    )
    model.children[0].W.data[...] = 2.0
    model.children[0].b.data[...] = 2.0
    cost = gn.BCEWithLogitsLoss() if loss == "cross-entropy" else gn.QuadraticCost()
    opt = gn.optim.SGD(model.parameters(), lr=0.15)
    x, y = np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32)
    out = []
    for _ in range(steps):
        gn.train_step(model, cost, opt, x, y)
        z = model.children[0].forward(x)[0, 0]
        out.append(1 / (1 + np.exp(-z)))
    return np.array(out)


quad, xent = neuron_outputs("quadratic"), neuron_outputs("cross-entropy")
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(quad, label="quadratic cost")
ax.plot(xent, label="cross-entropy")
ax.set_xlabel("step")
ax.set_ylabel("output a (target 0)")
ax.legend()
plt.show()
print(f"output after 50 steps: quadratic {quad[49]:.3f}, cross-entropy {xent[49]:.3f}")

# %% [markdown]
# ## 2. Weight initialisation
#
# With N(0, 1) weights, z = sum_j w_j x_j + b has a standard deviation of about the norm of x
# (several units for a digit), so many hidden sigmoids start saturated, where sigma' is nearly
# zero (on 28x28 images, with 784 inputs, far more). The book's fix, N(0, 1/n_in)
# (`init="book_normal"`), keeps z near 1. `gn.diagnostics.report` counts saturated units
# (sigma'(z) below 1% of its peak).


# %%
def saturated(init):
    model = gn.Sequential(
        gn.Flatten(), gn.Linear(64, 30, init=init, rng=0), gn.Sigmoid(), gn.Linear(30, 10, rng=0)
    )
    rep = gn.diagnostics.report(model, gn.CrossEntropyLoss(), train.x[:500], train.y[:500])
    return rep.layers[0]


for init in ("standard_normal", "book_normal"):
    row = saturated(init)
    print(f"{init:>16}: hidden activations' std {row['a_std']:.3f}, saturated {row['saturated']:.0%}")
sat_wide, sat_narrow = saturated("standard_normal")["saturated"], saturated("book_normal")["saturated"]

# %% [markdown]
# ## 3. L2 and L1 regularisation
#
# On 300 training images a 64-100-10 net can memorise; L2 (`gn.L2(lam)`, lam/2 sum w^2) pulls
# every weight towards zero in proportion to its size, L1 (`gn.L1(lam)`, lam sum |w|) by a
# constant step, which drives the unimportant ones to zero.

# %%
small = train[:300]


def fit_with(regularizer):
    rng = np.random.default_rng(0)
    model = gn.Sequential(
        gn.Flatten(),
        gn.Linear(64, 100, init="book_normal", rng=rng),
        gn.Sigmoid(),
        gn.Linear(100, 10, init="book_normal", rng=rng),
    )
    opt = gn.optim.SGD(model.parameters(), lr=0.5)
    gn.fit(
        model,
        gn.CrossEntropyLoss(),
        opt,
        small,
        epochs=60,
        batch_size=10,
        rng=rng,
        regularizer=regularizer,
        verbose=False,
    )
    W = model.children[1].W.data
    acc = gn.evaluate(model, gn.CrossEntropyLoss(), test)["accuracy"]
    return W, acc


results = {name: fit_with(reg) for name, reg in [("none", None), ("L2", gn.L2(1e-3)), ("L1", gn.L1(1e-4))]}
fig, axes = plt.subplots(1, 3, figsize=(10, 2.8), sharey=True)
for ax, (name, (W, acc)) in zip(axes, results.items()):
    ax.hist(W.ravel(), bins=80, range=(-1.5, 1.5))
    ax.set_title(f"{name}: test {acc:.1%}", fontsize=9)
    ax.set_yscale("log")
plt.suptitle("first-layer weights after 60 epochs on 300 images", fontsize=10)
plt.show()
for name, (W, acc) in results.items():
    small_share = np.mean(np.abs(W) < 0.01)
    print(f"{name:>4}: |W| = {np.linalg.norm(W):6.2f}, |w| < 0.01: {small_share:5.1%}, test {acc:.1%}")

# %% [markdown]
# ## 4. Dropout and Gaussian dropout
#
# `gn.Dropout(p)` zeroes each activation with probability p (PyTorch's p: the probability of
# *dropping*) and scales the survivors by 1/(1 - p); `gn.GaussianDropout(p)` multiplies by
# N(1, p/(1 - p)) noise instead. Both keep every activation's mean and add the same variance;
# both are the identity in evaluation mode.

# %%
h = np.full((20_000, 50), 2.0, np.float32)
for layer in (gn.Dropout(0.5, rng=0), gn.GaussianDropout(0.5, rng=0)):
    out = layer.forward(h)
    layer.eval()
    print(
        f"{type(layer).__name__:>15}: train mean {out.mean():.3f}, var {out.var():.3f} "
        f"(theory {4 * 0.5 / 0.5:.1f}); zeros {np.mean(out == 0):.0%}; eval identity: "
        f"{np.array_equal(layer.forward(h), h)}"
    )
drop, gauss = gn.Dropout(0.5, rng=1).forward(h), gn.GaussianDropout(0.5, rng=1).forward(h)

# %% [markdown]
# ## 5. The learning-rate range test
#
# The notes' Goldilocks principle as a tool: train for a few hundred steps while eta grows
# geometrically; the loss first barely moves (too cold), then falls fast, then blows up (too
# hot). `gn.experiments.lr_find` suggests the range where it falls fastest.

# %%
rng = np.random.default_rng(0)
model = gn.Sequential(
    gn.Flatten(),
    gn.Linear(64, 100, init="book_normal", rng=rng),
    gn.Sigmoid(),
    gn.Linear(100, 10, init="book_normal", rng=rng),
)
opt = gn.optim.SGD(model.parameters(), lr=0.1)
found = gn.experiments.lr_find(
    model, gn.CrossEntropyLoss(), opt, train, start=1e-4, end=1e3, steps=300, batch_size=10, rng=0
)
low, high = found.suggestion
fig, ax = plt.subplots(figsize=(6, 3))
ax.semilogx(found.lrs, found.raw_losses, alpha=0.3, label="loss of each step")
ax.semilogx(found.lrs, found.losses, label="smoothed")
ax.axvspan(low, high, color="green", alpha=0.15, label="suggested range")
ax.set_xlabel("learning rate eta")
ax.set_ylim(0, 2 * found.losses[0])
ax.legend(fontsize=8)
plt.show()
print(f"suggested eta: {low:.2g} to {high:.2g}; diverged: {found.diverged}")

# %% [markdown]
# The checks, one per section.

# %%
assert xent[49] < 0.2 < quad[49], (quad[49], xent[49])  # cross-entropy escapes, quadratic is stuck
assert sat_wide > 0.08 and sat_narrow < 0.01, (sat_wide, sat_narrow)
(W0, _), (W2, _), (W1, _) = results["none"], results["L2"], results["L1"]
assert np.linalg.norm(W2) < 0.8 * np.linalg.norm(W0)
assert np.mean(np.abs(W1) < 0.01) > 2 * np.mean(np.abs(W0) < 0.01)
for out in (drop, gauss):
    assert abs(out.mean() - 2.0) < 0.02 and abs(out.var() - 4.0) < 0.1
assert np.mean(drop == 0) > 0.45 and np.mean(gauss == 0) < 1e-3  # Gaussian noise drops nothing
assert found.diverged and 1e-5 < low < high < 1e2, found.suggestion
