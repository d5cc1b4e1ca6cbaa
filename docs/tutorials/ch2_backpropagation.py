# %% [markdown]
# # Chapter 2: backpropagation, by hand, by `trace`, by finite differences
#
# The book's chapter 2 ends in four equations. For a network whose layer l computes
# z^l = a^{l-1} W^l + b^l and a^l = sigma(z^l) (glassnet stores W as (in, out), so a row of
# examples times W), with cost C:
#
# - **BP1** delta^L = grad_a C (Hadamard) sigma'(z^L), the error at the output
# - **BP2** delta^l = (delta^{l+1} (W^{l+1})^T) (Hadamard) sigma'(z^l), the error one layer down
# - **BP3** dC/db^l = delta^l
# - **BP4** dC/dW^l = (a^{l-1})^T delta^l, an outer product
#
# We compute all four with NumPy for one 8x8 digit going through a 64-16-10 sigmoid network,
# then ask glassnet: `gn.trace` prints the same quantities, the layers' own `backward` fills
# the same gradients, and finite differences of the cost, which know nothing of
# backpropagation, agree with both.
#
# **What you should see**: the hand-computed delta^l, dC/db^l and dC/dW^l equal glassnet's to
# about 1e-15 (float64 rounding), and the finite-difference derivative of every weight and
# bias agrees with them to about 1e-9.
#
# **At full size** the same check runs on every built-in layer and loss in CI
# (`glassnet gradcheck`, `tests/test_gradients.py`): every backward agrees with finite
# differences and with PyTorch ([tests](../testing.md)).

# %%
import numpy as np

import glassnet as gn

train, _ = gn.datasets.load_digits()
x, label = train.x[0].reshape(64).astype(np.float64), int(train.y[0])  # one example, no batch axis
y = np.eye(10)[label]  # the book's one-hot target
rng = np.random.default_rng(2)
model = gn.Sequential(
    gn.Linear(64, 16, init="standard_normal", rng=rng),
    gn.Sigmoid(),
    gn.Linear(16, 10, init="standard_normal", rng=rng),
    gn.Sigmoid(),
).to(np.float64)
cost = gn.QuadraticCost()  # C = 1/2 ||a^L - y||^2 for one example
W1, b1, W2, b2 = (p.data for p in model.parameters())
print("label", label, "| W1", W1.shape, "b1", b1.shape, "W2", W2.shape, "b2", b2.shape)

# %% [markdown]
# ## By hand
#
# The forward pass keeps every z and a; the backward pass is the four equations, nothing else.


# %%
def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


a0 = x
z1 = a0 @ W1 + b1
a1 = sigmoid(z1)
z2 = a1 @ W2 + b2
a2 = sigmoid(z2)
C = 0.5 * np.sum((a2 - y) ** 2)

delta2 = (a2 - y) * sigmoid_prime(z2)  # BP1: grad_a C = a - y for the quadratic cost
delta1 = (delta2 @ W2.T) * sigmoid_prime(z1)  # BP2
db2, db1 = delta2, delta1  # BP3
dW2, dW1 = np.outer(a1, delta2), np.outer(a0, delta1)  # BP4
print(f"C = {C:.6f}")
print("delta^2 =", np.round(delta2, 4))
print("|delta^1| =", f"{np.linalg.norm(delta1):.4e}", " |dC/dW^1| =", f"{np.linalg.norm(dW1):.4e}")

# %% [markdown]
# ## By `gn.trace`
#
# `trace` takes one example through the network and records, per layer, exactly these
# quantities, with the equation each comes from.

# %%
t = gn.trace(model, cost, x, y)
print(t)

# %%
hand = {1: (z1, a1, delta1, db1, dW1), 2: (z2, a2, delta2, db2, dW2)}
worst = 0.0
for layer in t.layers:
    for name, mine, theirs in zip(
        ("z", "a", "delta", "db", "dW"), hand[layer.l], (layer.z, layer.a, layer.delta, layer.db, layer.dW)
    ):
        diff = np.max(np.abs(mine - theirs))
        worst = max(worst, diff)
        print(f"layer {layer.l} {name:>5}: max |hand - trace| = {diff:.1e}")

# %% [markdown]
# ## By the layers' own backward
#
# Training does not use `trace`: it calls each layer's `backward`. For a batch of one, the
# gradients it accumulates in `p.grad` must be the same numbers.

# %%
model.zero_grad()
model.forward(x[None])  # a batch of one
cost.forward(model.children[-1].y, y[None])
model.backward(cost.backward())
grads = [p.grad for p in model.parameters()]
backward_gap = max(np.max(np.abs(g - h)) for g, h in zip(grads, (dW1, db1, dW2, db2)))
print(f"max |hand - backward| over W1, b1, W2, b2: {backward_gap:.1e}")

# %% [markdown]
# ## By finite differences
#
# dC/dw is approximately (C(w + eps) - C(w - eps)) / (2 eps): the definition of a derivative,
# with no chain rule in sight. We nudge every one of the 1,210 weights and biases in turn.


# %%
def cost_of(params):
    W1, b1, W2, b2 = params
    a2 = sigmoid(sigmoid(x @ W1 + b1) @ W2 + b2)
    return 0.5 * np.sum((a2 - y) ** 2)


eps = 1e-6
params = [W1.copy(), b1.copy(), W2.copy(), b2.copy()]
numeric = []
for p in params:
    g = np.zeros_like(p)
    for i in np.ndindex(p.shape):
        keep = p[i]
        p[i] = keep + eps
        up = cost_of(params)
        p[i] = keep - eps
        down = cost_of(params)
        p[i] = keep
        g[i] = (up - down) / (2 * eps)
    numeric.append(g)
rel = [np.max(np.abs(n - h)) / np.max(np.abs(h)) for n, h in zip(numeric, (dW1, db1, dW2, db2))]
for name, r in zip(("dW1", "db1", "dW2", "db2"), rel):
    print(f"{name}: max |numeric - hand| / max |hand| = {r:.1e}")

# %% [markdown]
# `gn.check_gradients` does this for a whole model (every parameter and the input, any layer),
# and `gn.gradcheck.check_layer_gradients` for one layer: the tool to use for a layer of your
# own ([how-to](../howto/own-layer.md)).

# %%
errors = gn.check_gradients(model, cost, x[None], y[None])
print({k: f"{v:.1e}" for k, v in errors.items()})

# %% [markdown]
# The checks: hand, `trace` and `backward` agree to rounding; finite differences agree to
# the accuracy a central difference can reach.

# %%
assert worst < 1e-12, worst
assert backward_gap < 1e-12, backward_gap
assert max(rel) < 1e-7, rel
assert max(errors.values()) < 1e-7, errors
