import keras
import numpy as np
import pytest

from kerasrnn.layers import ELMo
from kerasrnn.models import BiLanguageModel, ContextualEncoder, SequenceTagger, TextClassifier
from tests.test_case import assert_all_close

LM_WORDS, LM_CHARS, WORDS, CHARS, WIDTH = 20, 8, 30, 11, 4


def tiny_lm(**kwargs):
    keras.utils.set_random_seed(2)
    lm = BiLanguageModel(LM_WORDS, embedding_dim=5, units=4, num_layers=2, char_vocabulary_size=LM_CHARS,
                         char_filters=3, max_word_chars=WIDTH, **kwargs)
    lm.build()
    return lm


def rows(tokens):
    tokens = np.asarray(tokens, "int32")
    chars = np.where(tokens[..., None] != 0, (tokens[..., None] + np.arange(WIDTH)) % (CHARS - 1) + 1, 0)
    return {"token_ids": tokens, "char_ids": chars.astype("int32")}


def test_features_are_the_scalar_mix_of_the_language_model_layers_and_unknown_ids_read_as_unknown():
    lm = tiny_lm()
    elmo = ELMo(lm)
    x = rows([[3, 25, 7, 0], [19, 2, 0, 0]])  # 25 is a task word the language model lacks; char ids up to 10
    elmo(x)  # builds the mix
    elmo.mix.set_weights([np.array([0.0, 1.0, 2.0], "float32"), np.array(1.5, "float32")])
    out = np.asarray(elmo(x))
    clamped = {"token_ids": np.where(x["token_ids"] < LM_WORDS, x["token_ids"], 1),
               "char_ids": np.where(x["char_ids"] < LM_CHARS, x["char_ids"], 1)}
    layers = [np.asarray(h) for h in lm(clamped)]
    w = 1.5 * np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    width = max(h.shape[-1] for h in layers)
    expected = sum(wj * np.pad(h, [(0, 0), (0, 0), (0, width - h.shape[-1])]) for wj, h in zip(w, layers, strict=True))
    assert out.shape == (2, 4, 8) and width == 8  # word features 5 + 3 chars, layers 2 x 4
    assert_all_close(out, expected, atol=1e-5)


def test_appended_padding_changes_no_valid_feature():
    elmo = ELMo(tiny_lm(residual=True))
    short = rows([[3, 9, 7, 0], [19, 2, 0, 0]])
    long = rows(np.pad(short["token_ids"], [(0, 0), (0, 5)]))
    valid = short["token_ids"] != 0
    assert_all_close(np.asarray(elmo(long))[:, :4][valid], np.asarray(elmo(short))[valid], atol=1e-6)


@pytest.mark.parametrize("task", ["tagging", "classification"])
def test_training_moves_the_mix_and_never_the_language_model(task, tmp_path):
    lm = tiny_lm()
    frozen = [w.copy() for w in lm.get_weights()]
    encoder = ContextualEncoder(WORDS, embedding_dim=6, units=5, output_dim=4, char_vocabulary_size=CHARS,
                                char_filters=3, max_word_chars=WIDTH, elmo=ELMo(lm, name="elmo"))
    model = (SequenceTagger if task == "tagging" else TextClassifier)(encoder, 3)
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, WORDS, (32, 6)).astype("int32")
    tokens[::2, 4:] = 0
    x = rows(tokens)
    y = tokens % 3 if task == "tagging" else tokens[:, 0] % 3
    model.compile(optimizer=keras.optimizers.Adam(0.02),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=20, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0) < first / 2
    for before, after in zip(frozen, lm.get_weights(), strict=True):
        assert np.array_equal(before, after)
    s, gamma = encoder.elmo.mix.get_weights()
    assert np.abs(s).max() > 1e-3 and abs(gamma - 1.0) > 1e-3
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert_all_close(loaded(x), model(x), atol=1e-5)
    assert loaded.encoder.elmo.bilm.trainable is False and loaded.encoder.get_config()["elmo"] is not None
    # the loaded model trains what the saved one trained (a resumed run must not start moving the language model)
    assert len(loaded.trainable_weights) == len(model.trainable_weights)


def test_a_language_model_reading_characters_needs_them_in_the_encoder():
    with pytest.raises(ValueError, match="characters per word"):
        ContextualEncoder(WORDS, char_vocabulary_size=0, elmo=ELMo(tiny_lm()))
    with pytest.raises(ValueError, match="characters per word"):
        ContextualEncoder(WORDS, char_vocabulary_size=CHARS, max_word_chars=WIDTH + 1, elmo=ELMo(tiny_lm()))
