"""Attention beyond the case table's single-input rows: MultiheadAttention with three distinct
inputs (q, k, v; T != S) against PyTorch and finite differences, with every kind of mask;
Embedding's padding row and bad ids; the causal mask; dropout inside attention and the encoder
under frozen masks; a vision transformer and a small language model written as
``gn.Sequential``, trained a step and gradient-checked; save and load of the encoder."""

from __future__ import annotations

import re

import numpy as np
import pytest

import glassnet as gn
from glassnet.gradcheck import check_layer_gradients, directional_check, numeric_grad, relative_error
from glassnet.torch_reference import MHA_NAMES

TOL = 1e-6
TIGHT = dict(rtol=1e-10, atol=1e-12)
N, T, S, E, H = 2, 3, 5, 6, 2


def random_mha(rng, **kwargs) -> gn.MultiheadAttention:
    layer = gn.MultiheadAttention(E, H, rng=rng, **kwargs).to(np.float64)
    for p in layer.params:  # biases too (they start at zero)
        p.data[...] = rng.uniform(-0.8, 0.8, p.shape)
    return layer


def qkv(rng):
    return rng.standard_normal((N, T, E)), rng.standard_normal((N, S, E)), rng.standard_normal((N, S, E))


# (attn_mask, key_padding_mask) for T = 3 queries and S = 5 keys; every query keeps a key
BOOL_ATTN = np.array(
    [[False, True, False, True, False], [True, False, False, False, True], [False] * 4 + [True]]
)
PAD = np.array([[False] * 5, [False, False, False, True, True]])
MASKS = {
    "no mask": (None, None),
    "boolean (T, S) and key padding": (BOOL_ATTN, PAD),
    "additive (N H, T, S) and key padding": (
        # -inf at random, 0.7 elsewhere, and the last key never masked: no query without a key
        np.where((np.random.default_rng(5).random((N * H, T, S)) < 0.3) & (np.arange(S) < 4), -np.inf, 0.7),
        np.where(PAD, -np.inf, 0.0),
    ),
    "key padding only": (None, PAD),
}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("masks", MASKS, ids=str)
def test_cross_attention_matches_torch(masks, bias, torch):
    rng = np.random.default_rng(0)
    layer = random_mha(rng, bias=bias)
    q, k, v = qkv(rng)
    attn_mask, key_padding_mask = MASKS[masks]
    y = layer.forward(q, k, v, key_padding_mask=key_padding_mask, attn_mask=attn_mask)
    dy = rng.standard_normal(y.shape)
    dq, dk, dv = layer.backward(dy)

    module = torch.nn.MultiheadAttention(E, H, bias=bias, batch_first=True, dtype=torch.float64)
    tparams = dict(module.named_parameters())
    with torch.no_grad():
        for name, p in layer.named_parameters():
            tparams[MHA_NAMES[name]].copy_(torch.from_numpy(p.data))
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    masks_t = {
        "attn_mask": None if attn_mask is None else torch.from_numpy(attn_mask),
        "key_padding_mask": None if key_padding_mask is None else torch.from_numpy(key_padding_mask),
    }
    yt, weights = module(tq, tk, tv, **masks_t)
    yt.backward(torch.from_numpy(dy))

    np.testing.assert_allclose(y, yt.detach().numpy(), **TIGHT, err_msg="forward")
    for name, ours, theirs in (("dq", dq, tq), ("dk", dk, tk), ("dv", dv, tv)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), **TIGHT, err_msg=name)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, tparams[MHA_NAMES[name]].grad.numpy(), **TIGHT, err_msg=name)
    # the weights kept per head; PyTorch returns their mean over heads
    assert layer.attn_weights.shape == (N, H, T, S)
    np.testing.assert_allclose(layer.attn_weights.sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(layer.attn_weights.mean(axis=1), weights.detach().numpy(), **TIGHT)


def cross_attention_errors(layer, q, k, v, attn_mask=None, key_padding_mask=None, seed=1) -> dict:
    """Finite differences of f = sum(R * layer(q, k, v)) for dq, dk, dv and every parameter."""
    upstream = np.random.default_rng(seed).standard_normal((q.shape[0], q.shape[1], layer.embed_dim))

    def f() -> float:
        layer.set_rng(seed)  # the same dropout masks at every evaluation
        return float(np.vdot(upstream, layer.forward(q, k, v, key_padding_mask, attn_mask)))

    layer.zero_grad()
    f()
    grads = dict(zip(("q", "k", "v"), layer.backward(upstream)))
    errors = {name: relative_error(grads[name], numeric_grad(f, x)) for name, x in zip("qkv", (q, k, v))}
    for name, p in layer.named_parameters():
        errors[name] = relative_error(p.grad, numeric_grad(f, p.data))
    return errors


@pytest.mark.parametrize("masks", MASKS, ids=str)
def test_cross_attention_matches_finite_differences(masks):
    rng = np.random.default_rng(2)
    layer = random_mha(rng)
    errors = cross_attention_errors(layer, *qkv(rng), *MASKS[masks])
    assert set(errors) == {
        "q",
        "k",
        "v",
        "in_proj_weight",
        "in_proj_bias",
        "out_proj_weight",
        "out_proj_bias",
    }
    assert max(errors.values()) < TOL, errors


def test_cross_attention_with_dropout_matches_finite_differences_with_frozen_masks():
    rng = np.random.default_rng(3)
    layer = random_mha(rng, dropout=0.4, causal=True)
    q, k, v = qkv(rng)
    errors = cross_attention_errors(layer, q, k, v, key_padding_mask=PAD)
    assert max(errors.values()) < TOL, errors
    assert layer.drop is not None and (layer.drop == 0).any()  # some weights were dropped


def test_self_attention_gradient_is_the_sum_of_the_three_paths():
    """forward(x) (one input) returns dx = dq + dk + dv of forward(x, x, x) (three inputs)."""
    rng = np.random.default_rng(4)
    layer = random_mha(rng)
    x = rng.standard_normal((N, T, E))
    dy = rng.standard_normal((N, T, E))
    y_three = layer.forward(x, x, x, attn_mask=gn.causal_mask(T))
    grads = layer.backward(dy)
    assert isinstance(grads, tuple) and len(grads) == 3
    three = {name: p.grad.copy() for name, p in layer.named_parameters()}
    layer.zero_grad()
    y_one = layer.forward(x, attn_mask=gn.causal_mask(T))
    dx = layer.backward(dy)
    np.testing.assert_allclose(y_one, y_three, rtol=1e-13)
    np.testing.assert_allclose(dx, grads[0] + grads[1] + grads[2], rtol=1e-11, atol=1e-13)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, three[name], rtol=1e-11, atol=1e-13, err_msg=name)


def test_causal_mask_is_torchs_square_subsequent_mask(torch):
    for size in (1, 2, 5):
        additive = torch.nn.Transformer.generate_square_subsequent_mask(size).numpy()
        np.testing.assert_array_equal(gn.causal_mask(size), np.isneginf(additive))
    # both forms, and causal=True, give the same attention
    rng = np.random.default_rng(6)
    layer = random_mha(rng)
    x = rng.standard_normal((N, 4, E))
    boolean = layer.forward(x, attn_mask=gn.causal_mask(4))
    additive = layer.forward(x, attn_mask=np.where(gn.causal_mask(4), -np.inf, 0.0))
    layer.causal = True
    np.testing.assert_allclose(boolean, additive, rtol=1e-14)
    np.testing.assert_allclose(layer.forward(x), boolean, rtol=1e-14)
    # the first position sees only itself: its output ignores every later token
    x2 = x.copy()
    x2[:, 1:] += 1.0
    np.testing.assert_allclose(layer.forward(x2)[:, 0], boolean[:, 0], rtol=1e-14)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, x: m.forward(x, x), "give k and v both"),
        (lambda m, x: m.forward(x[..., :4]), "expects q of shape (N, L, 6)"),
        (
            lambda m, x: m.forward(x, attn_mask=np.zeros((4, 4), bool)),
            "attn_mask must be (3, 3) or (4, 3, 3)",
        ),
        (
            lambda m, x: m.forward(x, key_padding_mask=np.zeros((2, 4), bool)),
            "key_padding_mask must be (2, 3)",
        ),
        (lambda m, x: m.forward(x, attn_mask=np.zeros((3, 3), int)), "attn_mask must be boolean or float"),
    ],
)
def test_bad_attention_input_is_named(call, message):
    layer = gn.MultiheadAttention(E, H)
    with pytest.raises((ValueError, TypeError)) as info:
        call(layer, np.zeros((N, T, E), np.float32))
    assert message in str(info.value)


def test_bad_attention_arguments():
    with pytest.raises(ValueError, match="embed_dim must be divisible by num_heads"):
        gn.MultiheadAttention(6, 4)
    with pytest.raises(ValueError, match="dropout must be"):
        gn.MultiheadAttention(4, 2, dropout=1.0)
    with pytest.raises(ValueError, match="activation must be 'relu' or 'gelu'"):
        gn.TransformerEncoderLayer(4, 2, activation="tanh")


# --- Embedding ------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch_including_the_padding_row(padding_idx, torch):
    rng = np.random.default_rng(7)
    layer = gn.Embedding(6, 3, padding_idx=padding_idx, rng=rng).to(np.float64)
    if padding_idx is not None:
        assert not layer.weight.data[padding_idx].any()  # starts at zero, as PyTorch
        layer.weight.data[padding_idx] = 5.0  # a user's non-zero padding vector is used, and frozen
    ids = np.array([[2, 5, 2, 0], [5, 5, 1, 2]])
    y = layer.forward(ids)
    dy = rng.standard_normal(y.shape)
    assert layer.backward(dy) is None  # integer ids have no gradient

    module = torch.nn.Embedding(6, 3, padding_idx=padding_idx, dtype=torch.float64)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(layer.weight.data))
    yt = module(torch.from_numpy(ids))
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(layer.weight.grad, module.weight.grad.numpy(), **TIGHT)
    if padding_idx is not None:
        assert not layer.weight.grad[padding_idx].any()
        assert layer.padding_idx == padding_idx % 6
    if layer.padding_idx != 5:  # repeated ids add up: id 5 appears three times
        np.testing.assert_allclose(layer.weight.grad[5], dy[0, 1] + dy[1, 0] + dy[1, 1], rtol=1e-14)


def test_embedding_ids_checked():
    layer = gn.Embedding(4, 2)
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 4\), got values in \[0, 4\]"):
        layer.forward(np.array([[0, 4]]))
    with pytest.raises(ValueError, match="holding non-integer values"):
        layer.forward(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="padding_idx must be in"):
        gn.Embedding(4, 2, padding_idx=4)
    # whole-number floats (what train_step's cast to the model's dtype gives) are ids
    np.testing.assert_array_equal(
        layer.forward(np.array([[3.0, 1.0]], np.float32)), layer.weight.data[[[3, 1]]]
    )


# --- dropout inside the encoder, frozen --------------------------------------------------------------


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_with_dropout_matches_finite_differences_with_frozen_masks(norm_first):
    rng = np.random.default_rng(8)
    layer = gn.TransformerEncoderLayer(
        4, 2, dim_feedforward=6, dropout=0.3, activation="gelu", norm_first=norm_first, rng=rng
    )
    for p in layer.parameters():
        p.data[...] = rng.uniform(-0.8, 0.8, p.shape)
    x = rng.standard_normal((2, 3, 4))
    errors = check_layer_gradients(layer, x)
    assert max(errors.values()) < TOL, errors
    assert layer.self_attn.drop is not None and layer.dropout.mask is not None  # dropout was on


def test_encoder_eval_is_deterministic_and_differs_from_training():
    rng = np.random.default_rng(9)
    layer = gn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.5, rng=rng)
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    train = layer.forward(x)
    layer.eval()
    np.testing.assert_array_equal(layer.forward(x), layer.forward(x))
    assert not np.allclose(layer.forward(x), train)


# --- whole models: a vision transformer and a small language model ----------------------------------


def vit(rng, image=8, patch=4, dim=8, classes=3) -> gn.Sequential:
    """Patches (a strided convolution) -> tokens -> class token and positions -> 2 pre-norm
    encoder layers -> the class token's output -> a linear head: the example of
    docs/recurrent-and-attention.md, small."""
    tokens = (image // patch) ** 2
    return gn.Sequential(
        gn.Conv2d(1, dim, patch, stride=patch, rng=rng),  # (N, E, H/p, W/p)
        gn.Reshape((dim, tokens)),
        gn.Permute((0, 2, 1)),  # (N, tokens, E)
        gn.ClassToken(dim),
        gn.PositionalEmbedding(tokens + 1, dim, rng=rng),
        gn.TransformerEncoderLayer(dim, 2, dim_feedforward=16, dropout=0.1, norm_first=True, rng=rng),
        gn.TransformerEncoderLayer(dim, 2, dim_feedforward=16, dropout=0.1, norm_first=True, rng=rng),
        gn.LayerNorm(dim),
        gn.Token(0),
        gn.Linear(dim, classes, rng=rng),
    )


def tiny_lm(rng, vocab=7, length=5, dim=8) -> gn.Sequential:
    """Token ids -> embeddings and positions -> a causal encoder layer -> next-token logits at
    every position, (N, vocab, T) as PyTorch's CrossEntropyLoss takes them: the example of
    docs/recurrent-and-attention.md."""
    return gn.Sequential(
        gn.Embedding(vocab, dim, rng=rng),
        gn.PositionalEmbedding(length, dim, rng=rng),
        gn.TransformerEncoderLayer(dim, 2, dim_feedforward=16, dropout=0.1, causal=True, rng=rng),
        gn.LayerNorm(dim),
        gn.Linear(dim, vocab, rng=rng),
        gn.Permute((0, 2, 1)),
    )


def test_vit_trains_a_step_and_passes_the_gradient_check():
    rng = np.random.default_rng(10)
    model = vit(rng)
    x, y = rng.standard_normal((4, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, size=4)
    model.set_rng(0)
    opt = gn.optim.Adam(model.parameters(), lr=1e-2)
    before = gn.train_step(model, gn.CrossEntropyLoss(), opt, x, y)
    for _ in range(20):
        gn.train_step(model, gn.CrossEntropyLoss(), opt, x, y)
    with gn.evaluating(model):
        assert gn.CrossEntropyLoss().forward(model.forward(x), y) < before
    errors = gn.check_gradients(model, gn.CrossEntropyLoss(), x, y, max_entries=12)
    assert max(errors.values()) < TOL, errors


def test_language_model_trains_a_step_and_its_gradients_pass_the_checks():
    rng = np.random.default_rng(11)
    model = tiny_lm(rng)
    ids = rng.integers(0, 7, size=(4, 6))
    x, y = ids[:, :-1], ids[:, 1:]  # predict the next token at every position
    loss = gn.CrossEntropyLoss()
    opt = gn.optim.Adam(model.parameters(), lr=1e-2)
    model.set_rng(0)
    first = gn.train_step(model, loss, opt, x, y)
    for _ in range(20):
        gn.train_step(model, loss, opt, x, y)
    with gn.evaluating(model):
        assert loss.forward(model.forward(x), y) < first
    # token ids have no gradient: the full network's backward returns None, and the checks are
    # on the parameters (every entry of every one, and one random direction through all)
    model.to(np.float64)
    assert directional_check(model, loss, x, y) < TOL

    def f() -> float:
        model.set_rng(0)
        return loss.forward(model.forward(x), y)

    model.zero_grad()
    f()
    assert model.backward(loss.backward()) is None
    for name, p in model.named_parameters():
        assert relative_error(p.grad, numeric_grad(f, p.data)) < TOL, name


@pytest.mark.parametrize("as_floats", [False, True])
def test_check_gradients_takes_a_model_starting_with_an_embedding(as_floats):
    """Token ids are not perturbed (integers, or floats whose gradient the Embedding says is
    None): no "input" entry, and every parameter is checked."""
    rng = np.random.default_rng(16)
    model = tiny_lm(rng)
    ids = rng.integers(0, 7, size=(3, 6))
    x, y = ids[:, :-1], ids[:, 1:]
    errors = gn.check_gradients(model, gn.CrossEntropyLoss(), x.astype(np.float64) if as_floats else x, y,
                                max_entries=6)  # fmt: skip
    assert set(errors) == {name for name, _ in model.named_parameters()}
    assert max(errors.values()) < TOL, errors
    assert model.parameters()[0].data.dtype == np.float32  # put back as it was


def test_language_model_is_causal():
    """Changing a later token changes no earlier position's output."""
    model = tiny_lm(np.random.default_rng(12)).eval()
    ids = np.array([[1, 2, 3, 4, 5]])
    changed = ids.copy()
    changed[0, 3] = 6
    a, b = model.forward(ids), model.forward(changed)
    np.testing.assert_array_equal(a[..., :3], b[..., :3])
    assert not np.allclose(a[..., 3:], b[..., 3:])


def counting_task(rng, vocab=7, length=5, n=48) -> tuple[np.ndarray, np.ndarray]:
    """Sequences that count up modulo ``vocab`` from a random start: inputs (n, length) and
    their next tokens (n, length), integer ids both."""
    ids = (rng.integers(0, vocab, size=(n, 1)) + np.arange(length + 1)) % vocab
    return ids[:, :-1], ids[:, 1:]


def test_fit_evaluate_and_predict_take_a_language_model():
    """Integer ids (N, T) in, (N, vocab, T) logits against (N, T) integer targets: fit trains
    it, its loss falls, and accuracy is over every token."""
    rng = np.random.default_rng(13)
    model, (x, y) = tiny_lm(rng), counting_task(rng)
    loss = gn.CrossEntropyLoss()
    opt = gn.optim.Adam(model.parameters(), lr=1e-2)
    history = gn.fit(model, loss, opt, (x, y), epochs=4, batch_size=16, val_data=(x[:8], y[:8]),
                     rng=0, verbose=False)  # fmt: skip
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses
    assert 0.0 <= min(history.history["accuracy"]) <= max(history.history["accuracy"]) <= 1.0
    assert x.dtype.kind == "i"  # fit kept the ids as integers (nothing was cast in place)
    out = gn.predict(model, x, batch_size=10)
    assert out.shape == (len(x), 7, 5)
    metrics = gn.evaluate(model, loss, (x, y), batch_size=10)
    with gn.evaluating(model):
        assert metrics["loss"] == pytest.approx(loss.forward(model.forward(x), y), rel=1e-5)
    assert metrics["accuracy"] == pytest.approx(np.mean(out.argmax(axis=1) == y))  # over all tokens
    assert metrics["accuracy"] > 0.5


def test_a_language_model_run_resumes_from_a_mid_epoch_checkpoint(tmp_path):
    """A mid-epoch checkpoint holds the epoch's count of correct tokens, up to N T, more than the
    N examples: the bound checked on resume is the number of labels."""
    rng = np.random.default_rng(15)
    x, y = counting_task(rng, n=16)

    class Crash(gn.callbacks.Callback):
        def on_epoch_begin(self, epoch):
            self.epoch = epoch

        def on_batch_end(self, batch, logs):
            if self.epoch == 5 and batch == 1:  # after the checkpoint of the epoch's first batch
                raise KeyboardInterrupt

    def run(epochs: int, callbacks=(), **kwargs) -> gn.callbacks.History:
        model = tiny_lm(np.random.default_rng(1))
        opt = gn.optim.Adam(model.parameters(), lr=3e-2)
        return gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), epochs=epochs, batch_size=8, rng=0,
                      shuffle=False, verbose=False, callbacks=list(callbacks), **kwargs)  # fmt: skip

    whole = run(7)
    assert whole.history["accuracy"][5] > 0.5  # the first batch's 40 tokens: over 16 correct
    with pytest.raises(KeyboardInterrupt):
        run(7, [Crash()], checkpoint=tmp_path, checkpoint_every=1)
    resumed = run(7, resume_from=tmp_path)
    assert resumed.history["loss"] == whole.history["loss"]


def test_fit_refuses_integer_inputs_and_position_labels_where_they_mean_nothing():
    rng = np.random.default_rng(14)
    x, y = counting_task(rng)
    mlp = gn.Sequential(gn.Linear(5, 5, rng=0))
    with pytest.raises(ValueError, match="train_data: x must be a float array .* got dtype int64"):
        gn.fit(mlp, gn.MSELoss(), gn.optim.SGD(mlp.parameters(), lr=0.1), (x, y), verbose=False)
    with pytest.raises(
        ValueError, match=r"train_data: integer labels y of shape \(5,\) per example .* MSELoss"
    ):
        gn.fit(mlp, gn.MSELoss(), gn.optim.SGD(mlp.parameters(), lr=0.1), (x / 7.0, y), verbose=False)
    lm = tiny_lm(rng)
    with pytest.raises(ValueError, match="train_data: label 7 out of range for the model's 7 outputs"):
        gn.fit(lm, gn.CrossEntropyLoss(), gn.optim.SGD(lm.parameters(), lr=0.1), (x, y + 1), verbose=False)


def test_encoder_and_vit_save_and_load(tmp_path):
    rng = np.random.default_rng(13)
    model = vit(rng).eval()
    x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    gn.save(model, tmp_path / "vit.safetensors")
    loaded = gn.load(tmp_path / "vit.safetensors").eval()
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    assert repr(loaded) == repr(model)
    lm = tiny_lm(rng).eval()
    gn.save(lm, tmp_path / "lm.safetensors")
    ids = np.array([[1, 0, 6, 2, 2]])
    np.testing.assert_array_equal(gn.load(tmp_path / "lm.safetensors").eval().forward(ids), lm.forward(ids))


def test_summary_and_diagnostics_see_inside_the_encoder():
    rng = np.random.default_rng(14)
    model = vit(rng)
    x, y = rng.standard_normal((8, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, size=8)
    text = gn.summary(model, (1, 8, 8))
    assert "5.0  MultiheadAttention" in text and "5.3  LayerNorm" in text
    assert f"total parameters: {sum(p.data.size for p in model.parameters()):,}" in text
    report = gn.diagnostics.report(model, gn.CrossEntropyLoss(), x, y)
    assert "MultiheadAttention" in str(report) and "PositionalEmbedding" in str(report)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: gn.Permute((1, 0, 2)), "Permute: dims must be a permutation of 0..k-1 starting with 0"),
        (lambda: gn.Permute((0, 1, 1)), "Permute: dims must be"),
        (lambda: gn.Token(1.5), "Token: index must be an integer"),
        (lambda: gn.LayerNorm(0), "LayerNorm: normalized_shape must be an integer in"),
        (lambda: gn.LayerNorm([]), "LayerNorm: normalized_shape must be an int or a tuple of ints"),
        (lambda: gn.LayerNorm(4, eps=0.0), "LayerNorm: eps must be a number > 0"),
        (lambda: gn.Embedding(0, 3), "Embedding: num_embeddings must be an integer in"),
        (lambda: gn.PositionalEmbedding(4, -1), "PositionalEmbedding: embedding_dim must be an integer in"),
        (lambda: gn.causal_mask(0), "causal_mask: size must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_refused_naming_them(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (gn.Permute((0, 2, 1)), (2, 3), "Permute([0, 2, 1]) expects 3 axes"),
        (gn.Token(3), (2, 3, 4), "Token(3) expects a sequence (N, T, E) with T > 3"),
        (gn.TokenMean(), (2, 4), "TokenMean expects a sequence (N, T, E)"),
        (gn.LayerNorm((3, 4)), (2, 4, 3), "LayerNorm expects input (*, 3, 4)"),
        (gn.PositionalEmbedding(3, 4), (2, 5, 4), "PositionalEmbedding expects (N, T, 4) with T <= 3"),
        (gn.ClassToken(4), (2, 5, 3), "ClassToken expects (N, T, 4)"),
    ],
)
def test_wrong_input_shapes_are_named(layer, shape, message):
    with pytest.raises(gn.ShapeError) as info:
        layer.forward(np.zeros(shape, np.float32))
    assert str(info.value).startswith(message), str(info.value)


def test_the_table_covers_cross_attention_with_masks():
    """The case table (so `glassnet gradcheck` and every table test) has MultiheadAttention rows
    with three distinct inputs, T != S, unmasked and with each kind of mask."""
    from glassnet.cases import CASES, WithMasks

    masks = set()
    for case in CASES:
        if case.cls is not gn.MultiheadAttention:
            continue
        layer, xs = case.build()
        if not (isinstance(xs, tuple) and len(xs) == 3 and xs[0].shape[1] != xs[1].shape[1]):
            continue
        if isinstance(layer, WithMasks):
            masks |= {
                (name, m.dtype.kind)
                for name, m in (("attn", layer.attn_mask), ("pad", layer.key_padding_mask))
            }
        else:
            masks.add("none")
    assert masks == {"none", ("attn", "b"), ("pad", "b"), ("attn", "f"), ("pad", "f")}, masks


def test_softmax_rows_is_the_softmax():
    """exp of the scores as they are, and the rows out of float's range done again shifted by
    their max: both kinds of row give the shifted formula's weights, every row's weights depend
    on that row alone, and Z is left as it was."""
    from glassnet.layers.attention import _softmax_rows

    rng = np.random.default_rng(0)
    for s in (1, 7, 16, 17, 64, 100):
        Z = (rng.standard_normal((3, 2, 5, s)) * 30).astype(np.float32)  # scores past 88: overflow
        Z[0, 0, 0, :] = -np.inf
        Z[0, 0, 0, s // 2] = 0.0  # one key left by a mask
        Z[1, 1, 2] -= 1e4  # a row far below: exp underflows to 0 unshifted
        Z[2, 1] = rng.standard_normal((5, s)).astype(np.float32)  # ordinary rows: no shift
        want = np.exp(Z.astype(np.float64) - Z.max(axis=-1, keepdims=True))
        want /= want.sum(axis=-1, keepdims=True)
        before = Z.copy()
        A = _softmax_rows(Z)
        assert A.dtype == np.float32 and A.shape == Z.shape
        np.testing.assert_array_equal(Z, before)
        np.testing.assert_allclose(A, want, rtol=2e-6, atol=1e-7)
        # one row's weights are the same bits whether or not another row had to be shifted
        calm = Z.copy()
        calm[:2] = rng.standard_normal(calm[:2].shape).astype(np.float32)
        np.testing.assert_array_equal(_softmax_rows(calm)[2], A[2])
    Z = np.zeros((2, 1, 3, 5), np.float32)
    Z[1, 0, 1] = -np.inf  # every key masked: weights 0, as PyTorch's SDPA (no NaN, no warning)
    A = _softmax_rows(Z)
    assert (A[1, 0, 1] == 0).all() and np.allclose(np.delete(A.reshape(6, 5), 4, axis=0), 0.2)
    Z[0, 0, 0, 1] = np.nan  # a NaN score makes its own row NaN and no other
    A = _softmax_rows(Z)
    assert np.isnan(A[0, 0, 0]).all() and not np.isnan(np.delete(A.reshape(6, 5), 0, axis=0)).any()


def test_row_and_column_sums_are_numpys():
    """The two reductions written for short rows and tall columns give NumPy's own answers."""
    from glassnet.module import column_sums, row_sums

    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 7))
    np.testing.assert_allclose(row_sums(x), x.sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(column_sums(x), x.sum(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(column_sums(x[:10]), x[:10].sum(axis=0))  # a few rows: NumPy's
    assert column_sums(np.zeros((0, 3), np.float32)).tolist() == [0.0, 0.0, 0.0]
    y = rng.standard_normal((4, 3, 2))  # not a matrix: NumPy's own sum
    np.testing.assert_array_equal(column_sums(y), y.sum(axis=0))


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_under_no_grad_keeps_nothing_and_computes_the_same(activation):
    rng = np.random.default_rng(0)
    layer = gn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=activation, norm_first=True, rng=rng)
    x = rng.standard_normal((3, 5, 8)).astype(np.float32)
    y = layer.forward(x)
    with gn.no_grad():
        y_no_grad = layer.forward(x)
    np.testing.assert_array_equal(y_no_grad, y)
    assert layer.self_attn.saved is None
    with pytest.raises(RuntimeError, match="forward pass ran under no_grad"):
        layer.backward(np.ones_like(y))
    layer.forward(x)  # outside no_grad, backward works again
    assert layer.backward(np.ones_like(y)).shape == x.shape


@pytest.mark.parametrize("kdim", [None, 3])
def test_a_batch_of_zero_sequences_goes_through_attention(kdim):
    """N = 0, self- and cross-attention (the cross-attention backward used to crash on the
    reshape that put the heads back together): empty outputs and input gradients, zero
    parameter gradients, as PyTorch."""
    layer = gn.MultiheadAttention(4, 2, kdim=kdim, vdim=kdim, rng=0)
    q = np.zeros((0, 3, 4), np.float32)
    k = v = np.zeros((0, 5, kdim or 4), np.float32)
    if kdim is None:
        y = layer.forward(q)
        assert y.shape == (0, 3, 4) and layer.backward(np.zeros_like(y)).shape == (0, 3, 4)
    y = layer.forward(q, k, v)
    dq, dk, dv = layer.backward(np.zeros_like(y))
    assert y.shape == (0, 3, 4) and dq.shape == (0, 3, 4) and dk.shape == dv.shape == (0, 5, kdim or 4)
    assert all(not p.grad.any() for p in layer.params)


def test_a_language_model_without_its_permute_is_told_where_the_class_axis_goes():
    """(N, T, vocab) logits, the classes last, against (N, T) labels: the refusals named the
    shapes PyTorch's convention expects, not the missing Permute; now they say it."""
    rng = np.random.default_rng(14)
    hint = "the class axis is 1, as in PyTorch, so end the model with gn.Permute((0, 2, 1))"
    x, y = counting_task(rng, vocab=7, length=5)
    no_permute = gn.Sequential(*list(tiny_lm(rng, vocab=7, length=5))[:-1])  # (N, T, vocab)
    opt = gn.optim.Adam(no_permute.parameters(), lr=1e-2)
    with pytest.raises(ValueError, match=re.escape(hint)) as e:  # fit reads axis 1 (T = 5) as 5 classes
        gn.fit(no_permute, gn.CrossEntropyLoss(), opt, (x, y), epochs=1, verbose=False)
    assert "train_data: label 6 out of range for the model's 5 outputs (0..4)" in str(e.value)
    logits = no_permute.forward(x[:3])
    with pytest.raises(gn.ShapeError, match=re.escape(hint)):
        gn.CrossEntropyLoss().forward(logits, y[:3])
    with pytest.raises(gn.ShapeError) as e:  # labels of another shape: no hint
        gn.CrossEntropyLoss().forward(logits, y[:3, :2])
    assert "Permute" not in str(e.value)


def test_a_fully_masked_query_attends_to_nothing_as_pytorch_trains(torch):
    """Every key of one sequence padded. glassnet gave NaN (and NumPy's "invalid value" warning);
    PyTorch 2.13's MultiheadAttention gives weights 0 on the path it trains on (need_weights=False,
    scaled_dot_product_attention): the output is the projection's bias and no gradient flows
    through the query. glassnet now does the same; forward and every gradient against PyTorch."""
    rng = np.random.default_rng(15)
    q = rng.standard_normal((2, 4, 8))
    pad = np.zeros((2, 4), bool)
    pad[1] = True
    causal_and_padded = np.triu(np.ones((4, 4), bool), k=1)
    causal_and_padded[:, 0] = True  # query 0 sees no key; the others see keys 1..t
    layer = gn.MultiheadAttention(8, 2, rng=rng).to(np.float64)
    layer.in_proj_bias.data[...] = rng.standard_normal(24)
    layer.out_proj_bias.data[...] = rng.standard_normal(8)
    ref = torch.nn.MultiheadAttention(8, 2, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for name in ("in_proj_weight", "in_proj_bias"):
            getattr(ref, name).copy_(torch.from_numpy(getattr(layer, name).data))
        ref.out_proj.weight.copy_(torch.from_numpy(layer.out_proj_weight.data))
        ref.out_proj.bias.copy_(torch.from_numpy(layer.out_proj_bias.data))
    dy = rng.standard_normal((2, 4, 8))
    for masks in ({"key_padding_mask": pad}, {"attn_mask": causal_and_padded}):
        layer.zero_grad()
        ref.zero_grad()
        y = layer.forward(q, **masks)
        dx = layer.backward(dy)
        qt = torch.from_numpy(q).requires_grad_()
        want, _ = ref(qt, qt, qt, need_weights=False, **{k: torch.from_numpy(v) for k, v in masks.items()})
        want.backward(torch.from_numpy(dy))
        np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, qt.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(
            layer.in_proj_weight.grad, ref.in_proj_weight.grad.numpy(), rtol=1e-10, atol=1e-12
        )
        assert np.isfinite(y).all() and np.isfinite(dx).all()
