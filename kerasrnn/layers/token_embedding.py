import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="kerasrnn")
class TokenEmbedding(keras.layers.Embedding):
    """`keras.layers.Embedding` whose rows from `trainable_rows` on are held in a non-trainable variable.

    A run's vocabulary can hold rows that no training input ever reads: the pre-trained vectors' words that the
    training text lacks (pos_ewt: 36,943 of 52,339 rows). Their gradient is zero at every step, so Adam leaves them
    where they started (both moments stay zero, and so does the step); a trainable table still costs a pass over
    them each step, and the fused Adam update of the whole table was the largest single cost of a pos_ewt step.
    Holding them apart gives the same model and the same training, at the cost of the rows that train.

    The layer reads and writes as one table: `get_weights()` / `set_weights()` take the full [input_dim,
    output_dim] table, `embeddings` is the full table, and a saved layer holds it as one variable. The initial
    values are those of the full table under `embeddings_initializer`. Without `trainable_rows` (or with
    `trainable_rows >= input_dim`) it is a plain Embedding.

    Args:
        input_dim, output_dim: as `keras.layers.Embedding`.
        trainable_rows: int or None. Ids below it train; ids from it on read fixed rows. Defaults to None (all
            rows train).
        **kwargs: those of `keras.layers.Embedding` (LoRA and quantization only without `trainable_rows`).

    Example:
    >>> layer = TokenEmbedding(10, 4, trainable_rows=6)
    >>> layer.build()
    >>> [tuple(w.shape) for w in layer.trainable_weights], [tuple(w.shape) for w in layer.non_trainable_weights]
    ([(6, 4)], [(4, 4)])
    >>> layer.get_weights()[0].shape
    (10, 4)
    """

    def __init__(self, input_dim, output_dim, trainable_rows=None, **kwargs):
        super().__init__(input_dim, output_dim, **kwargs)
        if trainable_rows is not None and trainable_rows < 1:
            raise ValueError(f"trainable_rows must be at least 1 (or None for all rows), got {trainable_rows}")
        self.trainable_rows = None if trainable_rows is None or trainable_rows >= input_dim else int(trainable_rows)
        if self.trainable_rows is not None and (self.lora_rank or self.quantization_mode):
            raise ValueError("TokenEmbedding with trainable_rows supports neither LoRA nor quantization")

    @property
    def split(self) -> bool:
        return self.trainable_rows is not None

    def build(self, input_shape=None):
        if self.built:
            return
        if not self.split:
            return super().build(input_shape)
        # the full table's initial values (an initializer's scale can depend on the shape), cut in two
        full = ops.convert_to_numpy(self.embeddings_initializer((self.input_dim, self.output_dim), dtype=self.dtype))
        n = self.trainable_rows
        self._embeddings = self.add_weight(
            shape=(n, self.output_dim), initializer=lambda shape, dtype=None: full[:n], name="embeddings",
            regularizer=self.embeddings_regularizer, constraint=self.embeddings_constraint, trainable=True)
        self._fixed_embeddings = self.add_weight(
            shape=(self.input_dim - n, self.output_dim), initializer=lambda shape, dtype=None: full[n:],
            name="fixed_embeddings", trainable=False)
        self.built = True

    @property
    def embeddings(self):
        if not self.built:
            raise AttributeError("You must build the layer before accessing `embeddings`.")
        if not self.split:
            return super().embeddings
        return ops.concatenate([self._embeddings, self._fixed_embeddings], axis=0)

    def call(self, inputs):
        if not self.split:
            return super().call(inputs)
        ids = ops.cast(inputs, "int32")
        n = self.trainable_rows
        # Two gathers and a choice: the trainable table's gradient stays a few rows (IndexedSlices); a concatenated
        # table would copy every row each step and hand all of them a gradient.
        trained = ops.take(self._embeddings, ops.minimum(ids, n - 1), axis=0)
        fixed = ops.take(self._fixed_embeddings, ops.maximum(ids - n, 0), axis=0)
        outputs = ops.where((ids < n)[..., None], trained, fixed)
        return ops.cast(outputs, dtype=self.compute_dtype)

    def get_weights(self):
        if not self.split:
            return super().get_weights()
        return [np.concatenate([ops.convert_to_numpy(self._embeddings),
                                ops.convert_to_numpy(self._fixed_embeddings)], axis=0)]

    def set_weights(self, weights):
        if not self.split:
            return super().set_weights(weights)
        if len(weights) != 1 or tuple(np.shape(weights[0])) != (self.input_dim, self.output_dim):
            raise ValueError(f"layer {self.name!r} takes one table of shape {(self.input_dim, self.output_dim)}, got "
                             f"{[tuple(np.shape(w)) for w in weights]}")
        table = np.asarray(weights[0])
        self._embeddings.assign(table[: self.trainable_rows])
        self._fixed_embeddings.assign(table[self.trainable_rows:])

    def save_own_variables(self, store):
        if not self.split:
            return super().save_own_variables(store)
        if self.built:
            store["0"] = self.get_weights()[0]

    def load_own_variables(self, store):
        if not self.split:
            return super().load_own_variables(store)
        if len(store.keys()) != 1:
            raise ValueError(f"layer {self.name!r} expects one saved table, the file holds {len(store.keys())} "
                             "variables")
        self.set_weights([store["0"]])

    def get_config(self):
        return {**super().get_config(), "trainable_rows": self.trainable_rows}
