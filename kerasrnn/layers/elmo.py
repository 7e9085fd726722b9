import keras
from keras import ops

from kerasrnn.layers.scalar_mix import ScalarMix
from kerasrnn.text.vocabulary import UNK_ID


@keras.saving.register_keras_serializable(package="kerasrnn")
class ELMo(keras.layers.Layer):
    """ELMo task features: the layers of a frozen `BiLanguageModel`, mixed by a trainable `ScalarMix`.

    The task's ids are the language model's ids extended (`Vocabulary.extended`: the model's words keep their ids,
    the task appends its own), so ids the model lacks read as its unknown word (characters likewise). The model's
    weights never train and its dropout never runs; only the mix's weights and scale do.

    Inputs: `{"token_ids": int32 [batch, time]}` plus `"char_ids"` [batch, time, max_word_chars] when the language
    model reads characters; right-padded with 0. Output: float32 [batch, time, widest layer], the mask passed on.

    Args:
        bilm: BiLanguageModel (or its serialized config). The pre-trained model; it is frozen here.

    Example:
    >>> import numpy as np
    >>> from kerasrnn.models import BiLanguageModel
    >>> elmo = ELMo(BiLanguageModel(vocabulary_size=20, embedding_dim=4, units=3))
    >>> elmo({"token_ids": np.array([[5, 25, 0]], "int32")}).shape
    (1, 3, 6)
    """

    def __init__(self, bilm, **kwargs):
        super().__init__(**kwargs)
        if isinstance(bilm, dict):
            bilm = keras.saving.deserialize_keras_object(bilm)
        if getattr(bilm, "compiled", False):
            # A run's model.keras comes compiled: inside a task model its loss tracker (named "loss") replaced the
            # task's loss in fit's logs and history, and its optimizer travelled into the task's file. An
            # uncompiled copy of its weights brings neither.
            copy = bilm.__class__.from_config(bilm.get_config())
            copy.build()
            copy.set_weights(bilm.get_weights())
            bilm = copy
        self.bilm = bilm  # frozen in build(), once its variables exist
        self.mix = ScalarMix(name="scalar_mix")
        self.supports_masking = True

    @property
    def output_dim(self) -> int:
        return max(self.bilm.layer_dims)

    def build(self, input_shape=None):
        if not self.bilm.built:
            self.bilm.build()
        # Each variable too: a model loaded from a file builds the language model's layers after __init__ froze it,
        # and Keras' trainable setter reaches only the variables that existed then (measured: the loaded model
        # listed the language model's kernels as trainable).
        self.bilm.trainable = False
        for variable in self.bilm.weights:
            variable.trainable = False
        self.mix.build([(None, None, dim) for dim in self.bilm.layer_dims])
        self.built = True

    def call(self, inputs, mask=None):
        return self.mix(self.bilm(self.language_model_inputs(inputs), training=False))

    def language_model_inputs(self, inputs) -> dict:
        """The language model's inputs from the task's: ids it lacks (beyond its vocabularies) as its unknown id."""
        feed = {"token_ids": ops.where(inputs["token_ids"] < self.bilm.vocabulary_size, inputs["token_ids"], UNK_ID)}
        if self.bilm.char_cnn is not None:
            chars = inputs["char_ids"]
            feed["char_ids"] = ops.where(chars < self.bilm.char_vocabulary_size, chars, UNK_ID)
        return feed

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs["token_ids"], 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape["token_ids"], self.output_dim)

    def get_config(self):
        return {**super().get_config(), "bilm": keras.saving.serialize_keras_object(self.bilm)}
