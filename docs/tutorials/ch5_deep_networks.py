# %% [markdown]
# # Chapter 5: why deep networks are hard to train, and the cure
#
# The book measures the *speed of learning* of each hidden layer, |delta^l|, and finds that in a
# deep sigmoid network the early layers learn far more slowly than the later ones: the
# **vanishing gradient**. BP2 multiplies the error by W^T and by sigma'(z) <= 1/4 at every
# layer on its way down, so it shrinks geometrically. With large weights the same product can
# grow instead: the **exploding gradient**. Here we see both with `gn.GradientFlow`, which
# measures every layer's speed on a fixed probe batch before training and after every epoch,
# and then the cure: normalisation and residual connections.
#
# **What you should see**: in a 6-hidden-layer sigmoid net on 8x8 digits the first hidden layer
# learns thousands of times slower than the last, `gn.diagnostics` says "vanishing gradients"
# and the net learns nothing in 8 epochs;
# a ReLU net with weights twice too large gets "exploding gradients"; with batch norm or
# residual connections the first layer keeps pace with the last.
#
# **At full size** ([chapter 5, measured](../chapter5.md), Fashion-MNIST): the first hidden layer
# of the book's [784, 30, 30, 30, 30, 10] learns 104x slower than the fourth; at depth 20 a plain
# sigmoid net stays at 10.00% test accuracy while residual connections reach 82.84% and batch
# norm 79.40%.

# %%
import matplotlib.pyplot as plt
import numpy as np

import glassnet as gn

train, test = gn.datasets.load_digits()
DEPTH, WIDTH = 6, 30


def deep_net(kind, rng):
    """64 -> DEPTH hidden layers of WIDTH -> 10; the hidden block depends on ``kind``."""
    layers = [gn.Flatten(), gn.Linear(64, WIDTH, init="book_normal", rng=rng), gn.Sigmoid()]
    for _ in range(DEPTH - 1):
        lin = gn.Linear(WIDTH, WIDTH, init="book_normal", rng=rng)
        if kind == "plain":
            layers += [lin, gn.Sigmoid()]
        elif kind == "batch norm":
            layers += [lin, gn.BatchNorm1d(WIDTH), gn.Sigmoid()]
        elif kind == "residual":  # a^l = a^{l-1} + sigmoid(z^l): an identity path for delta
            layers += [gn.Residual(gn.Sequential(lin, gn.Sigmoid()))]
    return gn.Sequential(*layers, gn.Linear(WIDTH, 10, init="book_normal", rng=rng))


def train_and_measure(model, epochs=8, lr=0.5, rng=0):
    flow = gn.GradientFlow(probe_size=500)
    opt = gn.optim.SGD(model.parameters(), lr=lr)
    gn.fit(
        model,
        gn.CrossEntropyLoss(),
        opt,
        train,
        epochs=epochs,
        batch_size=10,
        callbacks=[flow],
        rng=rng,
        verbose=False,
    )
    weight_layers = [r["layer"] for r in flow.history[0]["layers"] if r["type"] == "Linear"]
    speeds = flow.speeds()
    return flow, np.array([speeds[f"layer {k}"] for k in weight_layers[:-1]])  # hidden layers only


# %% [markdown]
# ## The vanishing gradient
#
# `gn.diagnostics.report` prints the chapter's numbers for every layer at once: |delta|, the
# gradients' norms, the speed, and the verdicts.

# %%
plain = deep_net("plain", np.random.default_rng(0))
print(gn.diagnostics.report(plain, gn.CrossEntropyLoss(), train.x[:500], train.y[:500]))

# %%
flow, speeds = train_and_measure(plain)
fig, ax = plt.subplots(figsize=(6, 3.5))
for l, s in enumerate(speeds, start=1):
    ax.semilogy(s, marker="o", label=f"hidden layer {l}")
ax.set_xlabel("epoch")
ax.set_ylabel("speed of learning (rms delta)")
ax.set_title("plain sigmoid net, 6 hidden layers")
ax.legend(fontsize=7)
plt.show()
ratio_plain = speeds[-1, 0] / speeds[0, 0]
print(f"at initialisation the last hidden layer learns {ratio_plain:.0f}x faster than the first")
vanishing = [
    v
    for v in gn.diagnostics.report(
        deep_net("plain", np.random.default_rng(0)), gn.CrossEntropyLoss(), train.x[:500], train.y[:500]
    ).verdicts
    if v.startswith("vanishing")
]
print(vanishing)

# %% [markdown]
# ## The exploding gradient
#
# ReLU passes the gradient unchanged where it is active, so a ReLU net's delta scales with its
# weights: He initialisation (std sqrt(2/n_in)) keeps it steady, twice that doubles it at every
# layer on the way down.


# %%
def relu_net(scale, rng):
    layers = [gn.Flatten()]
    sizes = [64] + [WIDTH] * DEPTH
    for n_in, n_out in zip(sizes, sizes[1:]):
        lin = gn.Linear(n_in, n_out, init="he_normal", rng=rng)
        lin.W.data *= scale
        layers += [lin, gn.ReLU()]
    return gn.Sequential(*layers, gn.Linear(WIDTH, 10, init="he_normal", rng=rng))


for scale in (1.0, 2.0):
    rep = gn.diagnostics.report(
        relu_net(scale, np.random.default_rng(0)), gn.CrossEntropyLoss(), train.x[:500], train.y[:500]
    )
    hidden = [r["speed"] for r in rep.layers[:-1]]
    print(
        f"He init x {scale}: speeds first..last hidden {hidden[0]:.1e} .. {hidden[-1]:.1e}; "
        f"depth verdicts: {[v for v in rep.verdicts if 'gradients' in v]}"
    )
exploding = gn.diagnostics.report(
    relu_net(2.0, np.random.default_rng(0)), gn.CrossEntropyLoss(), train.x[:500], train.y[:500]
).verdicts

# %% [markdown]
# ## The cure: normalisation and residual connections
#
# Batch norm rescales each z to unit variance, so sigma' stays near its peak; a residual
# connection a^l = a^{l-1} + f(z^l) gives delta a path back that multiplies by nothing.

# %%
results = {}
for kind in ("plain", "batch norm", "residual"):
    model = deep_net(kind, np.random.default_rng(0))
    flow, speeds = train_and_measure(model)
    acc = gn.evaluate(model, gn.CrossEntropyLoss(), test)["accuracy"]
    results[kind] = (speeds[0, 0] / speeds[-1, 0], acc)
    print(
        f"{kind:>10}: first / last hidden layer's speed at initialisation {results[kind][0]:.1e}, "
        f"test accuracy after 8 epochs {acc:.1%}"
    )

fig, ax = plt.subplots(figsize=(6, 3))
ax.bar(list(results), [r[0] for r in results.values()])
ax.set_yscale("log")
ax.set_ylabel("first / last hidden speed")
ax.axhline(1, color="gray", lw=0.8)
plt.show()

# %% [markdown]
# The checks: the plain net's first layer lags by more than 10x and the diagnostics say so; the
# oversized ReLU net is called exploding; batch norm and residual connections bring the first
# layer to within 10x of the last, and both then learn where the plain net does not.

# %%
assert ratio_plain > 10 and vanishing, (ratio_plain, vanishing)
assert any(v.startswith("exploding") for v in exploding), exploding
assert results["plain"][0] < 0.1
assert results["batch norm"][0] > 0.1 and results["residual"][0] > 0.1, results
assert results["plain"][1] < 0.3 < min(results["batch norm"][1], results["residual"][1]), results
