import keras
import numpy as np
from keras import ops

from kerasrnn.layers.char_cnn import CharCNN
from kerasrnn.layers.lstmp import LSTMP
from kerasrnn.models.contextual_encoder import CELLS


@keras.saving.register_keras_serializable(package="kerasrnn")
class BiLanguageModel(keras.Model):
    """A bidirectional language model in the manner of ELMo: a forward and a backward stack of LSTM/GRU layers
    over one shared token (and character) embedding and one shared output softmax.

    The forward stack at position t has read tokens 0..t and predicts token t+1; the backward stack at position t
    has read tokens t..T-1 (right to left) and predicts token t-1. Neither stack ever reads the token it predicts:
    the stacks meet only in the loss, never in a layer. Layer 0 of the two stacks has the same shape as layer 0
    of a `ContextualEncoder` (`Bidirectional` forward and backward layers), so it transfers to task encoders.

    Training uses a sampled softmax (`num_sampled` negatives drawn log-uniformly from the frequency-sorted
    vocabulary); evaluation (`evaluate`, `token_log_probs`) uses the full softmax.

    Inputs: `{"token_ids": int32 [batch, time]}` (plus `"char_ids"` [batch, time, max_word_chars] with character
    features), right-padded with 0. Output: a list of `num_layers + 1` float32 tensors, the ELMo layers:
    layer 0 is the static word features [batch, time, embedding_dim (+ char_filters)], layer i the concatenated
    forward and backward states of recurrent layer i [batch, time, 2 * units] (2 * projection with a projection).
    Padded positions mean nothing.

    Args:
        vocabulary_size: int. Number of token ids, including pad (0) and unknown (1); ids sorted by frequency.
        embedding_dim: int. Token embedding size. Defaults to 128.
        cell: str. "lstm", "gru" or "sru". Defaults to "lstm".
        num_layers: int. Recurrent layers per direction. Defaults to 1.
        units: int. Units of each recurrent layer and direction. Defaults to 128.
        dropout: float. Dropout on the word features and after each recurrent layer. Defaults to 0.1.
        char_vocabulary_size: int. Number of character ids; 0 turns the character features off. Defaults to 0.
        char_embedding_dim: int. Defaults to 32.
        char_filters: int. Defaults to 128.
        char_kernel_size: int. Defaults to 3.
        char_highway_layers: int. Highway layers after the character CNN (`CharCNN`). Defaults to 0.
        max_word_chars: int. Defaults to 16.
        num_sampled: int. Negative classes of the sampled softmax in training. Defaults to 1024.
        token_embedding_trainable: bool. False keeps the token embedding fixed (pre-trained vectors). Defaults to
            True.
        residual: bool. Each recurrent layer after the first adds its input to its output (ELMo's residual
            connection; layer i of `call`'s list is then that sum). Defaults to False.
        projection: int. With cell "lstm", each layer's output (and the state its gates read) is projected to
            this width (`kerasrnn.layers.LSTMP`, ELMo's LSTMP: `units` cells, a `projection`-wide output that the
            softmax and the next layer read); 0: none. Defaults to 0.

    Example:
    >>> import numpy as np
    >>> lm = BiLanguageModel(vocabulary_size=50, embedding_dim=8, units=4)
    >>> [tuple(x.shape) for x in lm({"token_ids": np.array([[5, 6, 0]], "int32")})]
    [(1, 3, 8), (1, 3, 8)]
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim=128,
        cell="lstm",
        num_layers=1,
        units=128,
        dropout=0.1,
        char_vocabulary_size=0,
        char_embedding_dim=32,
        char_filters=128,
        char_kernel_size=3,
        max_word_chars=16,
        num_sampled=1024,
        token_embedding_trainable=True,
        residual=False,
        char_highway_layers=0,
        projection=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if projection and cell != "lstm":
            raise ValueError(f"a projection needs cell 'lstm' (LSTMP), got {cell!r}")
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.cell = cell
        self.num_layers = num_layers
        self.units = units
        self.dropout = dropout
        self.char_vocabulary_size = char_vocabulary_size
        self.char_embedding_dim = char_embedding_dim
        self.char_filters = char_filters
        self.char_kernel_size = char_kernel_size
        self.max_word_chars = max_word_chars
        self.num_sampled = num_sampled
        self.token_embedding_trainable = token_embedding_trainable
        self.residual = residual
        self.char_highway_layers = char_highway_layers
        self.projection = projection

        self.token_embedding = keras.layers.Embedding(vocabulary_size, embedding_dim,
                                                      trainable=token_embedding_trainable, name="token_embedding")
        self.char_cnn = (
            CharCNN(char_vocabulary_size, char_embedding_dim, char_filters, char_kernel_size,
                    highway_layers=char_highway_layers, name="char_cnn")
            if char_vocabulary_size else None
        )
        self.word_dropout = keras.layers.Dropout(dropout, name="word_dropout")
        self.forward_layers, self.backward_layers, self.dropouts = [], [], []
        for i in range(num_layers):
            if projection:
                self.forward_layers.append(LSTMP(units, projection, name=f"lstmp_forward_{i}"))
                self.backward_layers.append(LSTMP(units, projection, go_backwards=True, name=f"lstmp_backward_{i}"))
            else:
                self.forward_layers.append(CELLS[cell](units, return_sequences=True, name=f"{cell}_forward_{i}"))
                self.backward_layers.append(
                    CELLS[cell](units, return_sequences=True, go_backwards=True, name=f"{cell}_backward_{i}")
                )
            self.dropouts.append(keras.layers.Dropout(dropout, name=f"dropout_{i}"))
        self.softmax_kernel = self.add_weight(
            shape=(vocabulary_size, self.state_dim), initializer="glorot_uniform", name="softmax_kernel"
        )
        self.softmax_bias = self.add_weight(shape=(vocabulary_size,), initializer="zeros", name="softmax_bias")

    @property
    def state_dim(self) -> int:
        """What each direction of a recurrent layer outputs: the projection's width, or the units."""
        return self.projection or self.units

    @property
    def layer_dims(self) -> list[int]:
        return [self.embedding_dim + (self.char_filters if self.char_vocabulary_size else 0)] + [
            2 * self.state_dim
        ] * self.num_layers

    def build(self, input_shape=None):
        self.token_embedding.build((None, None))
        if self.char_cnn is not None:
            self.char_cnn.build((None, None, self.max_word_chars))
        dim = self.layer_dims[0]
        for fw, bw in zip(self.forward_layers, self.backward_layers, strict=True):
            fw.build((None, None, dim))
            bw.build((None, None, dim))
            dim = self.state_dim
        self.built = True

    def call(self, inputs, training=False):
        token_ids = inputs["token_ids"]
        mask = ops.not_equal(token_ids, 0)
        x = self.token_embedding(token_ids)
        if self.char_cnn is not None:
            x = ops.concatenate([x, self.char_cnn(inputs["char_ids"])], axis=-1)
        layers = [x]
        fw = bw = self.word_dropout(x, training=training)
        for i, (fw_rnn, bw_rnn) in enumerate(zip(self.forward_layers, self.backward_layers, strict=True)):
            if i:
                fw, bw = self.dropouts[i - 1](fw, training=training), self.dropouts[i - 1](bw, training=training)
            fw_in, bw_in = fw, bw
            fw = fw_rnn(fw, mask=mask, training=training)
            bw = ops.flip(bw_rnn(bw, mask=mask, training=training), axis=1)
            if self.residual and i:
                fw, bw = fw + fw_in, bw + bw_in
            layers.append(ops.concatenate([fw, bw], axis=-1))
        return layers

    def _directions(self, layers, training):
        top = self.dropouts[-1](layers[-1], training=training)
        return top[..., : self.state_dim], top[..., self.state_dim :]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Mean negative log-likelihood per predicted token over both directions (sampled softmax when training).

        `y` is the clean token ids (the inputs may carry word dropout); it defaults to `x["token_ids"]`."""
        targets = x["token_ids"] if y is None else y
        if y_pred is None:
            y_pred = self(x, training=training)
        fw, bw = self._directions(y_pred, training)
        nll_fw, n_fw = self._nll(fw, *_shift(targets, +1), training)
        nll_bw, n_bw = self._nll(bw, *_shift(targets, -1), training)
        return (nll_fw + nll_bw) / ops.cast(ops.maximum(n_fw + n_bw, 1), "float32")

    def _nll(self, states, targets, valid, training):
        import tensorflow as tf

        h = tf.boolean_mask(states, valid)
        t = tf.boolean_mask(targets, valid)
        n = tf.shape(t)[0]
        if training and self.num_sampled < self.vocabulary_size:
            labels = tf.cast(t[:, None], tf.int64)
            sampler = tf.random.log_uniform_candidate_sampler(
                labels, num_true=1, num_sampled=self.num_sampled, unique=True, range_max=self.vocabulary_size,
            )
            loss = tf.nn.sampled_softmax_loss(
                self.softmax_kernel, self.softmax_bias, labels, h, self.num_sampled, self.vocabulary_size,
                sampled_values=sampler,
            )
        else:
            logits = tf.matmul(h, self.softmax_kernel, transpose_b=True) + self.softmax_bias
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=t, logits=logits)
        return tf.reduce_sum(loss), n

    def token_log_probs(self, inputs, numpy=True):
        """Full-softmax log-probabilities of the valid tokens under each direction: (forward, backward), NumPy
        [batch, time]; forward[b, t] = log p(token t | tokens before t), backward[b, t] = log p(token t | tokens
        after t), 0 where that direction makes no prediction (first / last token, padding). `numpy=False` returns
        tensors (for use inside a tf.function)."""
        import tensorflow as tf

        fw, bw = self._directions(self(inputs, training=False), training=False)
        token_ids = tf.convert_to_tensor(inputs["token_ids"])
        out = []
        for states, shift in ((fw, +1), (bw, -1)):
            targets, valid = _shift(token_ids, shift)
            logits = tf.einsum("btd,vd->btv", states, self.softmax_kernel) + self.softmax_bias
            logp = -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
            logp = tf.where(valid, logp, 0.0)
            # Move each log-probability to the position of the token it predicts.
            out.append(tf.roll(logp, shift=shift, axis=1))
        return tuple(np.asarray(x) for x in out) if numpy else tuple(out)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "cell": self.cell,
            "num_layers": self.num_layers,
            "units": self.units,
            "dropout": self.dropout,
            "char_vocabulary_size": self.char_vocabulary_size,
            "char_embedding_dim": self.char_embedding_dim,
            "char_filters": self.char_filters,
            "char_kernel_size": self.char_kernel_size,
            "max_word_chars": self.max_word_chars,
            "num_sampled": self.num_sampled,
            "token_embedding_trainable": self.token_embedding_trainable,
            "residual": self.residual,
            "char_highway_layers": self.char_highway_layers,
            "projection": self.projection,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _shift(token_ids, direction: int):
    """Targets for the states at each position: the next token (direction +1) or the previous one (-1), and
    where such a target exists (a valid position whose neighbour is valid)."""
    if direction > 0:
        targets = ops.pad(token_ids[:, 1:], [[0, 0], [0, 1]])
    else:
        targets = ops.pad(token_ids[:, :-1], [[0, 0], [1, 0]])
    valid = ops.logical_and(ops.not_equal(token_ids, 0), ops.not_equal(targets, 0))
    return targets, valid
