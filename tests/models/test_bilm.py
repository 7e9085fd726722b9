import keras
import numpy as np
import pytest

from kerasrnn.models import BiLanguageModel
from tests.test_case import assert_all_close, assert_config_round_trip

RNG = np.random.default_rng(0)
TOKENS = RNG.integers(2, 40, size=(3, 9)).astype("int32")
TOKENS[1, 6:] = 0
TOKENS[2, 4:] = 0


def tiny_lm(**kwargs):
    settings = dict(vocabulary_size=40, embedding_dim=6, units=5, num_layers=2, char_vocabulary_size=12,
                    char_filters=4, char_embedding_dim=3, max_word_chars=4, num_sampled=8, dropout=0.0)
    keras.utils.set_random_seed(3)
    return BiLanguageModel(**{**settings, **kwargs})


def inputs(tokens):
    chars = (tokens[..., None] % 11 + 1) * (tokens[..., None] != 0)
    return {"token_ids": tokens, "char_ids": np.repeat(chars, 4, axis=-1).astype("int32")}


def halves(lm, tokens):
    top = np.asarray(lm(inputs(tokens))[-1])
    return top[..., : lm.units], top[..., lm.units :]


@pytest.mark.parametrize("cell", ["lstm", "gru", "sru"])
def test_neither_direction_sees_the_token_it_predicts(cell):
    lm = tiny_lm(cell=cell)
    fw, bw = halves(lm, TOKENS)
    length = 9
    for p in range(1, length - 1):
        changed = TOKENS.copy()
        changed[0, p + 1] = (changed[0, p + 1] + 7) % 38 + 2  # the token the forward state at p predicts
        fw2, _ = halves(lm, changed)
        assert_all_close(fw2[0, : p + 1], fw[0, : p + 1], atol=1e-6)
        assert np.abs(fw2[0, p + 1] - fw[0, p + 1]).max() > 1e-4  # the change is visible once read
        changed = TOKENS.copy()
        changed[0, p - 1] = (changed[0, p - 1] + 7) % 38 + 2  # the token the backward state at p predicts
        _, bw2 = halves(lm, changed)
        assert_all_close(bw2[0, p:], bw[0, p:], atol=1e-6)
        assert np.abs(bw2[0, p - 1] - bw[0, p - 1]).max() > 1e-4


def test_layers_and_log_probs_ignore_appended_padding():
    lm = tiny_lm()
    padded = np.pad(TOKENS, [(0, 0), (0, 5)])
    for a, b in zip(lm(inputs(TOKENS)), lm(inputs(padded)), strict=True):
        valid = TOKENS != 0
        assert_all_close(np.asarray(b)[:, :9][valid], np.asarray(a)[valid], atol=1e-6)
    for a, b in zip(lm.token_log_probs(inputs(TOKENS)), lm.token_log_probs(inputs(padded)), strict=True):
        assert_all_close(b[:, :9], a, atol=1e-5)
        assert np.all(b[:, 9:] == 0)


def test_log_probs_sit_on_the_predicted_token_and_match_the_full_softmax():
    lm = tiny_lm(num_layers=1)
    fw_lp, bw_lp = lm.token_log_probs(inputs(TOKENS))
    top = np.asarray(lm(inputs(TOKENS))[-1])
    kernel, bias = lm.softmax_kernel.numpy(), lm.softmax_bias.numpy()

    def log_softmax(h):
        z = h @ kernel.T + bias
        return z - np.log(np.exp(z - z.max()).sum()) - z.max()

    # token 3 of row 0 is predicted by the forward state at 2 and the backward state at 4
    assert fw_lp[0, 3] == pytest.approx(log_softmax(top[0, 2, :5])[TOKENS[0, 3]], abs=1e-5)
    assert bw_lp[0, 3] == pytest.approx(log_softmax(top[0, 4, 5:])[TOKENS[0, 3]], abs=1e-5)
    assert fw_lp[0, 0] == 0 and bw_lp[0, 8] == 0 and bw_lp[2, 3] == 0 and fw_lp[2, 4] == 0


def test_evaluate_loss_is_the_mean_full_softmax_nll_of_both_directions():
    lm = tiny_lm()
    lm.compile(optimizer="adam")
    loss = lm.evaluate(inputs(TOKENS), TOKENS, batch_size=3, verbose=0)
    fw_lp, bw_lp = lm.token_log_probs(inputs(TOKENS))
    n = 2 * ((TOKENS != 0).sum(1) - 1).sum()
    assert loss == pytest.approx(-(fw_lp.sum() + bw_lp.sum()) / n, rel=1e-5)


def test_sampled_softmax_training_halves_the_loss_on_a_predictable_text():
    lm = tiny_lm(num_sampled=10, units=16, num_layers=1)
    tokens = (np.arange(12)[None, :] + np.arange(32)[:, None]) % 30 + 2  # each token fixes its neighbours
    data = inputs(tokens.astype("int32"))
    lm.compile(optimizer=keras.optimizers.Adam(0.03))
    first = lm.evaluate(data, tokens, verbose=0)
    lm.fit(data, tokens, epochs=60, batch_size=32, verbose=0, shuffle=False)
    assert lm.evaluate(data, tokens, verbose=0) < first / 2


def test_keras_round_trip_and_config(tmp_path):
    lm = tiny_lm()
    assert_config_round_trip(lm)
    before = [np.asarray(x) for x in lm(inputs(TOKENS))]
    lm.save(tmp_path / "bilm.keras")
    loaded = keras.saving.load_model(tmp_path / "bilm.keras", safe_mode=True)
    assert isinstance(loaded, BiLanguageModel)
    for a, b in zip(before, loaded(inputs(TOKENS)), strict=True):
        assert_all_close(np.asarray(b), a, atol=1e-6)
    assert_all_close(loaded.token_log_probs(inputs(TOKENS))[1], lm.token_log_probs(inputs(TOKENS))[1], atol=1e-6)


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="cell must be one of"):
        BiLanguageModel(vocabulary_size=10, cell="rnn")
    with pytest.raises(ValueError, match="num_layers must be at least 1"):
        BiLanguageModel(vocabulary_size=10, num_layers=0)


def test_residual_layers_add_their_input_and_keep_the_directions_apart():
    plain, residual = tiny_lm(), tiny_lm(residual=True)
    residual.set_weights(plain.get_weights())
    a, b = plain(inputs(TOKENS)), residual(inputs(TOKENS))
    valid = TOKENS != 0
    assert_all_close(np.asarray(b[1]), np.asarray(a[1]), atol=1e-6)  # the first layer has no residual
    # same weights, same layer 1: layer 2 is the plain model's RNN output plus its input, in both directions
    assert_all_close(np.asarray(b[2])[valid], (np.asarray(a[2]) + np.asarray(a[1]))[valid], atol=1e-5)
    fw, bw = halves(residual, TOKENS)
    changed = TOKENS.copy()
    changed[0, 5] = (changed[0, 5] + 7) % 38 + 2
    fw2, bw2 = halves(residual, changed)
    assert_all_close(fw2[0, :5], fw[0, :5], atol=1e-6)
    assert_all_close(bw2[0, 6:], bw[0, 6:], atol=1e-6)
    assert np.abs(fw2[0, 5:] - fw[0, 5:]).max() > 1e-4
    assert assert_config_round_trip(residual).residual is True
