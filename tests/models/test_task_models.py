import keras
import numpy as np
import pytest

from kerasrnn.models import ContextualEncoder, SequenceTagger, TextClassifier
from tests.test_case import (
    assert_all_close,
    assert_config_round_trip,
    assert_save_load_round_trip,
    loss_after_steps,
    pad_right,
)


def tiny_encoder(**kwargs):
    keras.utils.set_random_seed(1)
    return ContextualEncoder(vocabulary_size=30, embedding_dim=8, units=8, output_dim=8, **kwargs)


def batch(rng, chars=False):
    tokens = rng.integers(2, 30, size=(4, 6)).astype("int32")
    tokens[1, 3:] = 0
    tokens[3, 2:] = 0
    inputs = {"token_ids": tokens}
    if chars:
        c = rng.integers(1, 12, size=(4, 6, 4)).astype("int32")
        c[tokens == 0] = 0
        inputs["char_ids"] = c
    return inputs


@pytest.mark.parametrize("chars", [False, True])
def test_tagger_padding_invariance_and_round_trip(tmp_path, chars):
    encoder = tiny_encoder(char_vocabulary_size=12 if chars else 0, max_word_chars=4, num_layers=2)
    tagger = SequenceTagger(encoder, num_tags=5, dropout=0.1)
    inputs = batch(np.random.default_rng(0), chars)
    valid = inputs["token_ids"] != 0
    out = keras.ops.convert_to_numpy(tagger(inputs))
    padded = keras.ops.convert_to_numpy(tagger(pad_right(inputs, 5)))
    assert out.shape == (4, 6, 5)
    assert_all_close(padded[:, :6][valid], out[valid])
    assert_config_round_trip(tagger)
    assert_save_load_round_trip(tagger, inputs, tmp_path)


@pytest.mark.parametrize("cell", ["lstm", "gru", "sru"])
def test_classifier_pooled_output_ignores_padding_and_round_trips(tmp_path, cell):
    classifier = TextClassifier(tiny_encoder(cell=cell), num_labels=3)
    inputs = batch(np.random.default_rng(1))
    out = keras.ops.convert_to_numpy(classifier(inputs))
    assert out.shape == (4, 3)
    assert_all_close(keras.ops.convert_to_numpy(classifier(pad_right(inputs, 7))), out)
    assert_config_round_trip(classifier)
    assert_save_load_round_trip(classifier, inputs, tmp_path)


def test_labels_at_padded_positions_do_not_change_the_loss():
    tagger = SequenceTagger(tiny_encoder(), num_tags=4)
    tagger.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    inputs = batch(np.random.default_rng(2))
    targets = np.random.default_rng(3).integers(0, 4, size=(4, 6)).astype("int32")
    other = targets.copy()
    other[inputs["token_ids"] == 0] = (other[inputs["token_ids"] == 0] + 1) % 4
    a = float(tagger.evaluate(inputs, targets, verbose=0))
    b = float(tagger.evaluate(inputs, other, verbose=0))
    assert a == pytest.approx(b, abs=1e-6)


def test_tagger_loss_falls_by_half_on_a_fixed_batch():
    tagger = SequenceTagger(tiny_encoder(), num_tags=4)
    inputs = batch(np.random.default_rng(4))
    targets = (inputs["token_ids"] % 4).astype("int32")
    first, last = loss_after_steps(tagger, inputs, targets)
    assert last < 0.5 * first


def test_classifier_loss_falls_by_half_on_a_fixed_batch():
    classifier = TextClassifier(tiny_encoder(), num_labels=3)
    inputs = batch(np.random.default_rng(5))
    targets = np.array([0, 1, 2, 1], "int32")
    first, last = loss_after_steps(classifier, inputs, targets)
    assert last < 0.5 * first


def test_safe_mode_loads_without_unsafe_deserialization(tmp_path):
    tagger = SequenceTagger(tiny_encoder(), num_tags=3)
    tagger.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded.encoder, ContextualEncoder)
    assert loaded.num_tags == 3
