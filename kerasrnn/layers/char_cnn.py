import keras
from keras import ops

HIGHWAY_GATE_BIAS = -1.0  # a highway gate's starting bias: sigmoid(-1) = 0.27 of the transform, the rest carried


def highway_step(x, z):
    """One highway layer from its input x [..., n] and its Dense output z = x W + b [..., 2n] (transform, gate);
    the export graph runs the same function on TensorFlow tensors."""
    transform, gate = ops.split(z, 2, axis=-1)
    gate = ops.sigmoid(gate)
    return x + gate * (ops.relu(transform) - x)


@keras.saving.register_keras_serializable(package="kerasrnn")
class CharCNN(keras.layers.Layer):
    """Word features from the word's characters: character embedding, 1-D convolution, max over characters, then
    optional highway layers (Srivastava et al. 2015, as after ELMo's character CNN):
    x <- t * relu(x W_h + b_h) + (1 - t) * x with t = sigmoid(x W_t + b_t), b_t starting at -1 (mostly carry).

    Input: int char ids [batch, time, chars], 0 = padding. Output: float [batch, time, filters].
    Padded character positions never win the max; a word with no characters (a padded word) gives zeros.
    The layer produces no mask (the word-level mask comes from the token ids).

    Args:
        vocabulary_size: int. Number of character ids, including pad (0) and unknown (1).
        embedding_dim: int. Character embedding size. Defaults to 32.
        filters: int. Convolution filters = output size. Defaults to 64.
        kernel_size: int. Convolution width in characters. Defaults to 3.
        embeddings_initializer: initializer for the character embedding. Defaults to "glorot_uniform".
        kernel_initializer: initializer for the convolution kernel (and the highway kernels). Defaults to
            "glorot_uniform".
        highway_layers: int. Highway layers after the max. Defaults to 0.

    Example:
    >>> import numpy as np
    >>> CharCNN(vocabulary_size=50, filters=8)(np.ones((2, 5, 16), "int32")).shape
    (2, 5, 8)
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim=32,
        filters=64,
        kernel_size=3,
        embeddings_initializer="glorot_uniform",
        kernel_initializer="glorot_uniform",
        highway_layers=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.filters = filters
        self.kernel_size = kernel_size
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.highway_layers = highway_layers
        self.embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, embeddings_initializer=self.embeddings_initializer, name="char_embedding"
        )
        self.conv = keras.layers.Conv1D(
            filters, kernel_size, padding="same", activation="tanh", kernel_initializer=self.kernel_initializer,
            name="char_conv",
        )
        # one Dense per highway layer: its first `filters` outputs are the transform, the rest the gate
        self.highways = [keras.layers.Dense(2 * filters, kernel_initializer=self.kernel_initializer,
                                            name=f"char_highway_{i}") for i in range(highway_layers)]

    def build(self, input_shape):
        self.embedding.build(input_shape)
        self.conv.build((None, input_shape[-1], self.embedding_dim))
        for highway in self.highways:
            highway.build((None, self.filters))
            highway.bias.assign(ops.concatenate([ops.zeros((self.filters,)),
                                                 ops.full((self.filters,), HIGHWAY_GATE_BIAS)]))
        self.built = True

    def call(self, char_ids):
        shape = ops.shape(char_ids)
        flat = ops.reshape(char_ids, (-1, shape[-1]))
        x = self.conv(self.embedding(flat))
        valid = ops.expand_dims(ops.not_equal(flat, 0), -1)
        # tanh outputs lie in (-1, 1): -2 can never win the max, and rows without any character end at 0.
        x = ops.max(ops.where(valid, x, -2.0), axis=1)
        word = ops.any(valid, axis=1)
        x = ops.where(word, x, 0.0)
        for highway in self.highways:
            # zero again: no padded word reaches a highway's matmul with other than zeros, so it cannot widen an
            # int8 file's quantization range (what appending padding would otherwise change)
            x = ops.where(word, highway_step(x, highway(x)), 0.0)
        return ops.reshape(x, (shape[0], shape[1], self.filters))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            embedding_dim=self.embedding_dim,
            filters=self.filters,
            kernel_size=self.kernel_size,
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            highway_layers=self.highway_layers,
        )
        return config
