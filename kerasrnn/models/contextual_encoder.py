import keras

from kerasrnn.layers.char_cnn import CharCNN
from kerasrnn.layers.recurrent import GRU, LSTM
from kerasrnn.layers.sru import SRU
from kerasrnn.layers.token_embedding import TokenEmbedding

# LSTM and GRU: Keras' own, with a mask-free training loop, the LSTM's fused (kerasrnn.layers.recurrent)
CELLS = {"lstm": LSTM, "gru": GRU, "sru": SRU}


@keras.saving.register_keras_serializable(package="kerasrnn")
class ContextualEncoder(keras.Model):
    """The backbone: token ids (and optional character ids) in, one contextual vector per token out.

    Embedding(mask_zero=True) -> [concat CharCNN features] -> [concat ELMo features] -> dropout -> N x
    (Bidirectional) LSTM/GRU/SRU with dropout between layers -> Dense projection. Kernels use Glorot (Xavier)
    uniform initialisation, recurrent kernels orthogonal.

    Inputs: `{"token_ids": int32 [batch, time]}` plus `"char_ids": int32 [batch, time, max_word_chars]`
    when `char_vocabulary_size > 0`. Rows are right-padded with id 0.
    Output: float32 [batch, time, output_dim], with a Keras mask (token_ids != 0). Values at padded
    positions are not zero and mean nothing: mask them. Appending padding changes no valid output.

    Args:
        vocabulary_size: int. Number of token ids, including pad (0) and unknown (1).
        embedding_dim: int. Token embedding size. Defaults to 100.
        cell: str. "lstm", "gru" or "sru" (`kerasrnn.layers.SRU`). Defaults to "lstm".
        num_layers: int. Number of stacked recurrent layers. Defaults to 1.
        units: int. Units per direction of each recurrent layer. Defaults to 128.
        bidirectional: bool. Run each layer both ways and concatenate. Defaults to True.
        output_dim: int. Size of the projected output vectors. Defaults to 128.
        dropout: float. Dropout on the word features and after each recurrent layer. Defaults to 0.0.
        char_vocabulary_size: int. Number of character ids; 0 turns the character features off. Defaults to 0.
        char_embedding_dim: int. Character embedding size. Defaults to 32.
        char_filters: int. Character CNN filters (feature size per word). Defaults to 64.
        char_kernel_size: int. Character CNN width. Defaults to 3.
        char_highway_layers: int. Highway layers after the character CNN (`CharCNN`). Defaults to 0.
        max_word_chars: int. Characters per word in `char_ids`. Defaults to 16.
        kernel_initializer: initializer of input kernels and the projection. Defaults to "glorot_uniform".
        recurrent_initializer: initializer of recurrent kernels (an SRU has none). Defaults to "orthogonal".
        embeddings_initializer: initializer of the embeddings. Defaults to "glorot_uniform".
        token_embedding_trainable: bool. False keeps the token embedding fixed (pre-trained vectors). Defaults to
            True.
        token_embedding_trainable_rows: int or None. Only ids below it train (`kerasrnn.layers.TokenEmbedding`):
            the trainers pass one more than the largest id their training inputs hold, so the rows no input reads
            (a pre-trained vocabulary's extra words) cost no optimizer work. None: every row trains. Defaults to
            None.
        elmo: `kerasrnn.layers.ELMo` (or its serialized config) or None. A frozen language model whose
            scalar-mixed layers join the word features (its inputs are this encoder's; with characters it needs
            `char_vocabulary_size` > 0 and the same `max_word_chars`). Defaults to None.

    Example:
    >>> import numpy as np
    >>> encoder = ContextualEncoder(vocabulary_size=100, units=8, output_dim=4)
    >>> encoder({"token_ids": np.array([[5, 6, 0]], "int32")}).shape
    (1, 3, 4)
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim=100,
        cell="lstm",
        num_layers=1,
        units=128,
        bidirectional=True,
        output_dim=128,
        dropout=0.0,
        char_vocabulary_size=0,
        char_embedding_dim=32,
        char_filters=64,
        char_kernel_size=3,
        char_highway_layers=0,
        max_word_chars=16,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        embeddings_initializer="glorot_uniform",
        token_embedding_trainable=True,
        token_embedding_trainable_rows=None,
        elmo=None,
        **kwargs,
    ):
        if isinstance(elmo, dict):
            elmo = keras.saving.deserialize_keras_object(elmo)
        if elmo is not None and elmo.bilm.char_cnn is not None and (
                not char_vocabulary_size or elmo.bilm.max_word_chars != max_word_chars):
            raise ValueError(f"the ELMo language model reads {elmo.bilm.max_word_chars} characters per word; give the "
                             f"encoder character ids of that width (char_vocabulary_size {char_vocabulary_size}, "
                             f"max_word_chars {max_word_chars})")
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        kernel_init = keras.initializers.get(kernel_initializer)
        recurrent_init = keras.initializers.get(recurrent_initializer)
        embeddings_init = keras.initializers.get(embeddings_initializer)

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        inputs = {"token_ids": token_ids}
        embedding_options = {}
        if token_embedding_trainable_rows is not None and token_embedding_trainable_rows < vocabulary_size:
            embedding, embedding_options = TokenEmbedding, {"trainable_rows": token_embedding_trainable_rows}
        else:
            embedding, token_embedding_trainable_rows = keras.layers.Embedding, None
        x = embedding(
            vocabulary_size, embedding_dim, mask_zero=True, embeddings_initializer=embeddings_init,
            trainable=token_embedding_trainable, name="token_embedding", **embedding_options,
        )(token_ids)
        if char_vocabulary_size:
            char_ids = keras.Input(shape=(None, max_word_chars), dtype="int32", name="char_ids")
            inputs["char_ids"] = char_ids
            chars = CharCNN(
                char_vocabulary_size, char_embedding_dim, char_filters, char_kernel_size,
                embeddings_initializer=embeddings_init, kernel_initializer=kernel_init,
                highway_layers=char_highway_layers, name="char_cnn",
            )(char_ids)
            x = keras.layers.Concatenate(name="word_features")([x, chars])
        if elmo is not None:
            feed = {"token_ids": token_ids}
            if elmo.bilm.char_cnn is not None:
                feed["char_ids"] = inputs["char_ids"]
            x = keras.layers.Concatenate(name="elmo_features")([x, elmo(feed)])
        # Concatenate ORs the masks of its inputs and the character features have none, so the token mask
        # is handed to the first recurrent layer explicitly; later layers inherit it.
        mask = keras.ops.not_equal(token_ids, 0)
        x = keras.layers.Dropout(dropout, name="word_dropout")(x)
        for i in range(num_layers):
            options = {} if cell == "sru" else {"recurrent_initializer": recurrent_init}
            rnn = CELLS[cell](units, return_sequences=True, kernel_initializer=kernel_init, name=f"{cell}_{i}",
                              **options)
            if bidirectional:
                rnn = keras.layers.Bidirectional(rnn, name=f"bi{cell}_{i}")
            x = rnn(x, mask=mask if i == 0 else None)
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
        outputs = keras.layers.Dense(output_dim, kernel_initializer=kernel_init, name="projection")(x)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.cell = cell
        self.num_layers = num_layers
        self.units = units
        self.bidirectional = bidirectional
        self.output_dim = output_dim
        self.dropout = dropout
        self.char_vocabulary_size = char_vocabulary_size
        self.char_embedding_dim = char_embedding_dim
        self.char_filters = char_filters
        self.char_kernel_size = char_kernel_size
        self.char_highway_layers = char_highway_layers
        self.max_word_chars = max_word_chars
        self.kernel_initializer = kernel_init
        self.recurrent_initializer = recurrent_init
        self.embeddings_initializer = embeddings_init
        self.token_embedding_trainable = token_embedding_trainable
        self.token_embedding_trainable_rows = token_embedding_trainable_rows
        self.elmo = elmo

    # Accessors: how other rooms (export, transfer, the Embedder) reach the layers, never by their names.
    @property
    def token_embedding(self):
        return self.get_layer("token_embedding")

    @property
    def char_cnn(self):
        """The CharCNN layer, or None without character features."""
        return self.get_layer("char_cnn") if self.char_vocabulary_size else None

    @property
    def word_features(self):
        """The layer whose output is the static word representation (embedding, plus char features)."""
        return self.get_layer("word_features" if self.char_vocabulary_size else "token_embedding")

    @property
    def recurrent_layers(self) -> list:
        """The recurrent layers, bottom first: `Bidirectional` wrappers, or LSTM/GRU layers when unidirectional."""
        prefix = f"bi{self.cell}" if self.bidirectional else self.cell
        return [self.get_layer(f"{prefix}_{i}") for i in range(self.num_layers)]

    @property
    def recurrent_directions(self) -> list[tuple]:
        """(forward layer, backward layer or None) of each recurrent layer, bottom first."""
        if self.bidirectional:
            return [(bi.forward_layer, bi.backward_layer) for bi in self.recurrent_layers]
        return [(rnn, None) for rnn in self.recurrent_layers]

    @property
    def projection(self):
        return self.get_layer("projection")

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "cell": self.cell,
            "num_layers": self.num_layers,
            "units": self.units,
            "bidirectional": self.bidirectional,
            "output_dim": self.output_dim,
            "dropout": self.dropout,
            "char_vocabulary_size": self.char_vocabulary_size,
            "char_embedding_dim": self.char_embedding_dim,
            "char_filters": self.char_filters,
            "char_kernel_size": self.char_kernel_size,
            "char_highway_layers": self.char_highway_layers,
            "max_word_chars": self.max_word_chars,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            "token_embedding_trainable": self.token_embedding_trainable,
            "token_embedding_trainable_rows": self.token_embedding_trainable_rows,
            "elmo": None if self.elmo is None else keras.saving.serialize_keras_object(self.elmo),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
