# %% [markdown]
# # Softmax in the middle of a network
#
# Softmax is usually the last thing a classifier does, folded into the cross-entropy loss. As a
# layer of its own, `gn.Softmax(axis=-1)`, it can sit anywhere: its outputs are positive and sum
# to one, so the layer after it reads a *mixture*, here of 16 learned prototypes, as attention
# does with its weights. Its backward is the softmax Jacobian, J = diag(s) - s s^T, applied
# without ever forming the matrix: dz = s (Hadamard) (ds - sum(ds s)).
#
# **What you should see**: the layer's backward equals the explicit Jacobian product and passes
# the finite-difference check; a network with a softmax hidden layer learns the 8x8 digits
# (over 85% test accuracy), each hidden row sums to one, and the mixture weights of most
# examples concentrate on a few prototypes.
#
# **At full size**: the same softmax backward runs inside every attention layer
# (`MultiheadAttention`, `TransformerEncoderLayer`; the `vit` preset, [design](../design.md))
# and is compared with PyTorch in the tests.

# %%
import matplotlib.pyplot as plt
import numpy as np

import glassnet as gn

# %% [markdown]
# ## The backward, three ways

# %%
rng = np.random.default_rng(0)
z = rng.standard_normal((1, 5))
ds = rng.standard_normal((1, 5))
layer = gn.Softmax(axis=-1).to(np.float64)
s = layer.forward(z)
dz_layer = layer.backward(ds)
J = np.diag(s[0]) - np.outer(s[0], s[0])  # ds_i / dz_j
dz_jacobian = ds @ J  # J is symmetric
print("s =", np.round(s, 3), " sum", s.sum())
print("dz (layer)    =", np.round(dz_layer, 5))
print("dz (Jacobian) =", np.round(dz_jacobian, 5))
errors = gn.gradcheck.check_layer_gradients(gn.Softmax(axis=-1), rng.standard_normal((4, 5)))
print("finite differences:", errors)

# %% [markdown]
# ## A softmax hidden layer
#
# 64 pixels -> 16 scores -> softmax -> a mixture of 16 prototypes (the rows of the last
# `Linear`'s weight) -> class scores.

# %%
train, test = gn.datasets.load_digits()
model = gn.Sequential(
    gn.Flatten(),
    gn.Linear(64, 16, rng=rng),
    gn.Softmax(axis=-1),  # mid-network: (N, 16), each row a distribution
    gn.Linear(16, 10, rng=rng),
)
opt = gn.optim.Adam(model.parameters(), lr=1e-2)
gn.fit(model, gn.CrossEntropyLoss(), opt, train, epochs=40, batch_size=32, rng=rng, verbose=False)
accuracy = gn.evaluate(model, gn.CrossEntropyLoss(), test)["accuracy"]
print(f"test accuracy {accuracy:.1%}")

# %%
hidden = gn.Sequential(*model.children[:3]).forward(test.x)  # the mixture weights
top3 = np.sort(hidden, axis=1)[:, -3:].sum(axis=1)
order = np.argsort(test.y)
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.2))
ax0.imshow(hidden[order].T, aspect="auto", cmap="viridis")
ax0.set_xlabel("test examples, sorted by class")
ax0.set_ylabel("prototype")
ax0.set_title("softmax weights", fontsize=9)
ax1.hist(top3, bins=30)
ax1.set_xlabel("weight on the 3 largest prototypes")
plt.show()
print(f"median weight on the 3 largest of 16 prototypes: {np.median(top3):.2f}")

# %% [markdown]
# The checks.

# %%
assert np.allclose(dz_layer, dz_jacobian, atol=1e-12)
assert max(errors.values()) < 1e-6, errors
assert accuracy > 0.85, accuracy
assert np.allclose(hidden.sum(axis=1), 1, atol=1e-5)
assert np.median(top3) > 0.5, np.median(top3)  # uniform weights would put 3/16 there
