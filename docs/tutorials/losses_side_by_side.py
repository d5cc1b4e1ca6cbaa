# %% [markdown]
# # Losses side by side: MSE, cross-entropy, hinge, Huber
#
# A loss says what "wrong" means, and its derivative, BP1's grad_a C, says how hard each wrong
# answer pushes back. Four losses on the same data and the same network:
#
# | loss | C for one example | dC/d(output) |
# | --- | --- | --- |
# | `MSELoss` | mean (a - y)^2 over the one-hot target | 2 (a - y) / n: proportional to the error |
# | `CrossEntropyLoss` | -log softmax(z)_y | softmax(z) - onehot(y): bounded, never zero |
# | `HingeLoss` | sum_{j != y} max(0, 1 - z_y + z_j) / C | +-1 where a margin is violated, else 0 |
# | `HuberLoss` | 0.5 r^2 near 0, delta (\|r\| - delta/2) beyond | clip(r, -delta, delta): bounded push |
#
# **What you should see**: on 8x8 digits all four train a classifier to over 90% test
# accuracy; their gradients against the margin have the shapes in the table (the hinge stops
# pushing once the margin is met, cross-entropy never quite stops); and on a regression with
# outliers Huber recovers the true slope where MSE is dragged away.
#
# **At full size**: the presets train with cross-entropy (`mlp`, `cnn`: 89.5% and 90.4% on
# Fashion-MNIST, [benchmarks](../benchmarks.md)); the book's chapter 1 net with the quadratic
# cost (`book`: 84.3%).

# %%
import matplotlib.pyplot as plt
import numpy as np

import glassnet as gn

train, test = gn.datasets.load_digits()
LOSSES = {
    "MSE": gn.MSELoss(),
    "cross-entropy": gn.CrossEntropyLoss(),
    "hinge": gn.HingeLoss(margin=1.0),
    "Huber": gn.HuberLoss(delta=1.0),
}

# %% [markdown]
# ## The same network, four losses
#
# MSE and Huber one-hot encode the integer labels; cross-entropy and hinge take the logits and
# the labels as they are. The network outputs 10 numbers in every case and predicts the largest.

# %%
accuracy = {}
for name, loss in LOSSES.items():
    rng = np.random.default_rng(0)
    model = gn.Sequential(
        gn.Flatten(), gn.Linear(64, 64, init="he_normal", rng=rng), gn.ReLU(), gn.Linear(64, 10, rng=rng)
    )
    opt = gn.optim.Adam(model.parameters(), lr=3e-3)
    gn.fit(model, loss, opt, train, epochs=20, batch_size=32, rng=rng, verbose=False)
    pred = gn.predict(model, test.x).argmax(axis=1)
    accuracy[name] = float(np.mean(pred == test.y))
    print(f"{name:>13}: test accuracy {accuracy[name]:.1%}")

# %% [markdown]
# ## How hard each loss pushes
#
# Take two classes and let m = z_y - z_other be the margin by which the right class wins. Each
# loss's gradient on the right logit, as a function of m (computed by the losses' own
# `backward`, BP1):

# %%
margins = np.linspace(-4, 4, 161)
grads = {}
for name, loss in LOSSES.items():
    g = []
    for m in margins:
        z = np.array([[m, 0.0]])
        loss.forward(z, np.array([0]))
        g.append(-loss.backward()[0, 0])  # how hard it pushes the right logit up
    grads[name] = np.array(g)
fig, ax = plt.subplots(figsize=(6, 3.2))
for name, g in grads.items():
    ax.plot(margins, g / np.abs(g).max(), label=name)
ax.axvline(1, color="gray", lw=0.6, ls=":")
ax.set_xlabel("margin m = z_right - z_wrong")
ax.set_ylabel("push on z_right (scaled)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Outliers: MSE against Huber
#
# Fit a straight line y = 2x + 1 to 200 points, 10 of which are wild outliers. MSE's gradient
# grows with the error, so the outliers dominate it; Huber's is clipped at delta.

# %%
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (200, 1)).astype(np.float32)
y = (2 * x + 1 + 0.1 * rng.standard_normal((200, 1))).astype(np.float32)
y[:10] += 30  # outliers
fits = {}
for name, loss in (("MSE", gn.MSELoss()), ("Huber", gn.HuberLoss(delta=1.0))):
    line = gn.Sequential(gn.Linear(1, 1, rng=0))
    opt = gn.optim.Adam(line.parameters(), lr=0.05)
    gn.fit(line, loss, opt, (x, y), epochs=200, batch_size=200, rng=0, verbose=False)
    fits[name] = (float(line.children[0].W.data[0, 0]), float(line.children[0].b.data[0]))
    print(f"{name:>5}: y = {fits[name][0]:.2f} x + {fits[name][1]:.2f}   (true: y = 2.00 x + 1.00)")

# %% [markdown]
# The checks.

# %%
assert min(accuracy.values()) > 0.9, accuracy
assert (
    grads["hinge"][margins > 1.01].max() == 0 and grads["hinge"][margins < 0.99].min() > 0
)  # stops at the margin
assert grads["cross-entropy"].min() > 0  # never stops pushing
assert np.all(np.diff(grads["cross-entropy"]) < 0)  # the more wrong, the harder
huber_error = abs(fits["Huber"][0] - 2) + abs(fits["Huber"][1] - 1)
mse_error = abs(fits["MSE"][0] - 2) + abs(fits["MSE"][1] - 1)
assert huber_error < 0.3 < mse_error, fits
