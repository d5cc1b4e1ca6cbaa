# %% [markdown]
# # Chapter 1: a network that classifies images
#
# The book's first network: 784 inputs (one per pixel), 30 sigmoid hidden neurons, 10 sigmoid
# outputs, weights and biases drawn from N(0, 1), the quadratic cost
# C = 1/(2n) sum_x ||y(x) - a||^2, and stochastic gradient descent with eta = 3.0 on
# mini-batches of 10. The book trains it on MNIST digits; here it learns Fashion-MNIST's
# clothes, on a subset of 10,000 training images so that it runs in seconds.
#
# **What you should see**: the accuracy on images the network never saw climbs from chance
# (10%) to about 80% within five epochs, and the confusions it makes are between garments
# that look alike (shirts, T-shirts, pullovers, coats).
#
# **At full size** (`glassnet train --model book`, 55,000 images, early stopping):
# 84.3% mean test accuracy over 3 seeds ([benchmarks](../benchmarks.md)).

# %%
import matplotlib.pyplot as plt
import numpy as np

import glassnet as gn

train, test = gn.datasets.load_fashion_mnist()
print(train)  # a Dataset: x (N, 1, 28, 28) float32 in [0, 1], y int64 labels
rng = np.random.default_rng(0)
train = train[rng.permutation(train.n)[:10_000]]  # indexing takes x and y together
test = test[:2_000]
print("training on", train.n, "images; testing on", test.n)

# %% [markdown]
# The book's `Network([784, 30, 10])`, layer by layer. glassnet's activations are layers of
# their own, so the book's layer l is a `Linear` followed by a `Sigmoid`. `init="standard_normal"`
# is the book's N(0, 1) initialisation; `QuadraticCost` is its cost, one-hot encoding the labels.

# %%
model = gn.Sequential(
    gn.Flatten(),
    gn.Linear(784, 30, init="standard_normal", rng=rng),
    gn.Sigmoid(),
    gn.Linear(30, 10, init="standard_normal", rng=rng),
    gn.Sigmoid(),
)
print(gn.summary(model, (1, 28, 28), batch_size=10))

# %%
cost = gn.QuadraticCost()
before = gn.evaluate(model, cost, test)["accuracy"]
opt = gn.optim.SGD(model.parameters(), lr=3.0)
history = gn.fit(model, cost, opt, train, epochs=5, batch_size=10, val_data=test, rng=rng, verbose=False)
for epoch, acc in zip(history.epoch, history.history["val_accuracy"]):
    print(f"epoch {epoch + 1}: {acc:.2%} of the test images right")

# %% [markdown]
# Which images does it get wrong? A confusion matrix counts, for each true class (row), what
# the network answered (column).

# %%
pred = gn.predict(model, test.x).argmax(axis=1)
names = gn.datasets.FASHION_MNIST_CLASSES
counts = np.zeros((10, 10), int)
np.add.at(counts, (test.y, pred), 1)
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.5))
ax0.imshow(counts, cmap="Blues")
ax0.set_xticks(range(10), names, rotation=90, fontsize=7)
ax0.set_yticks(range(10), names, fontsize=7)
ax0.set_xlabel("answer")
ax0.set_title("confusions on 2,000 test images")
wrong = np.flatnonzero(pred != test.y)[:8]
ax1.imshow(np.hstack([test.x[i, 0] for i in wrong]), cmap="gray_r")
ax1.set_title("wrong: " + ", ".join(f"{names[pred[i]]}?" for i in wrong[:4]) + " ...", fontsize=8)
ax1.axis("off")
plt.tight_layout()
plt.show()
off_diagonal = counts - np.diag(np.diag(counts))
top = np.unravel_index(off_diagonal.argmax(), counts.shape)
print(f"most frequent mistake: {names[top[0]]} taken for {names[top[1]]} ({off_diagonal.max()} times)")

# %% [markdown]
# The check: from chance to about 80% in five epochs, and the most frequent mistake is
# between two upper-body garments.

# %%
after = history.history["val_accuracy"][-1]
print(f"test accuracy: {before:.1%} before training, {after:.1%} after")
assert before < 0.2 and after > 0.77, (before, after)
upper_body = {"T-shirt/top", "Pullover", "Coat", "Shirt"}
assert {names[top[0]], names[top[1]]} <= upper_body, top
