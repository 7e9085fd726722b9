import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="kerasrnn")
class CRF(keras.layers.Layer):
    """A linear-chain conditional random field over per-token tag scores (Lafferty et al. 2001; Lample et al. 2016).

    The layer passes its input (emission scores, [batch, time, num_tags]) through unchanged, so a model with a CRF
    exports and runs like one without: the learned scores are its weights, `transitions[i, j]` (tag i then tag j),
    `start[j]` (j first) and `end[i]` (i last), read by `decoding()` for Viterbi decoding outside the graph
    (`kerasrnn.text.bio.viterbi`). `log_likelihood` is the training objective: the gold path's score minus the log
    of the sum over all paths (forward algorithm), over the valid positions of right-padded rows.

    Args:
        num_tags: int. Number of tags.

    Example:
    >>> import numpy as np
    >>> crf = CRF(num_tags=3)
    >>> scores = np.zeros((1, 2, 3), "float32")
    >>> round(float(crf.log_likelihood(scores, np.array([[0, 1]]), np.array([[True, True]]))[0]), 4)  # ln(1/9)
    -2.1972
    """

    def __init__(self, num_tags, **kwargs):
        super().__init__(**kwargs)
        self.num_tags = num_tags
        self.supports_masking = True

    def build(self, input_shape=None):
        n = self.num_tags
        self.transitions = self.add_weight(shape=(n, n), initializer="zeros", name="transitions")
        self.start = self.add_weight(shape=(n,), initializer="zeros", name="start")
        self.end = self.add_weight(shape=(n,), initializer="zeros", name="end")
        self.built = True

    def call(self, inputs, mask=None):
        return inputs

    def compute_mask(self, inputs, mask=None):
        return mask

    def log_likelihood(self, scores, tags, mask):
        """Log-probability [batch] of each row's gold tags `tags` [batch, time] (int) under the CRF, given emission
        scores [batch, time, num_tags] and `mask` [batch, time] (right-padded: True on the valid positions)."""
        if not self.built:
            self.build()
        scores = ops.cast(scores, "float32")
        tags = ops.cast(tags, "int32")
        m = ops.cast(mask, "float32")
        n = self.num_tags
        # the gold path's score
        emitted = ops.squeeze(ops.take_along_axis(scores, tags[..., None], axis=-1), -1)
        pairs = tags[:, :-1] * n + tags[:, 1:]
        moved = ops.take(ops.reshape(self.transitions, (-1,)), pairs)
        lengths = ops.cast(ops.sum(m, axis=1), "int32")
        last = ops.squeeze(ops.take_along_axis(tags, ops.maximum(lengths - 1, 0)[:, None], axis=1), -1)
        gold = (ops.sum(emitted * m, axis=1) + ops.sum(moved * m[:, 1:], axis=1) + ops.take(self.start, tags[:, 0])
                + ops.take(self.end, last))
        # the log of the sum over all paths; padded steps keep the previous alpha
        alpha = self.start[None, :] + scores[:, 0]

        steps_first, mask_first = ops.transpose(scores, (1, 0, 2)), ops.transpose(m)

        def step(t, alpha):
            m_t = ops.take(mask_first, t, axis=0)[:, None]
            nxt = ops.logsumexp(alpha[:, :, None] + self.transitions[None], axis=1) + ops.take(steps_first, t, axis=0)
            return m_t * nxt + (1.0 - m_t) * alpha

        alpha = ops.fori_loop(1, ops.shape(scores)[1], step, alpha)
        log_z = ops.logsumexp(alpha + self.end[None, :], axis=1)
        return gold - log_z

    def decoding(self) -> dict:
        """The learned scores as NumPy float64 arrays: {"transitions": [n, n], "start": [n], "end": [n]}."""
        return {k: np.asarray(getattr(self, k), dtype=np.float64) for k in ("transitions", "start", "end")}

    def get_config(self):
        return {**super().get_config(), "num_tags": self.num_tags}
