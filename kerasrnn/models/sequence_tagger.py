import keras
from keras import ops

from kerasrnn.layers.crf import CRF
from kerasrnn.models.task import Task


@keras.saving.register_keras_serializable(package="kerasrnn")
class SequenceTagger(Task):
    """Per-token tag logits on top of a `ContextualEncoder` (POS tagging, BIO named entities).

    Inputs: the encoder's inputs. Output: float32 logits [batch, time, num_tags] with the encoder's mask,
    so Keras losses and metrics skip padded positions. Use `from_logits=True` losses.

    With `crf=True` the logits are a linear-chain CRF's emission scores: the model trains on the CRF's negative
    log-likelihood (per sentence, averaged over the batch; the compiled loss and per-token sample weights are not
    used) and its tags are the Viterbi path under `crf_decoding()` (`kerasrnn.text.bio.decode_tags`). The output is
    the same logits, so export and runtimes do not change.

    Args:
        encoder: ContextualEncoder. The backbone.
        num_tags: int. Number of tags.
        dropout: float. Dropout before the output layer. Defaults to 0.0.
        crf: bool. A CRF output layer. Defaults to False.

    Example:
    >>> import numpy as np
    >>> from kerasrnn.models import ContextualEncoder
    >>> tagger = SequenceTagger(ContextualEncoder(vocabulary_size=100, units=8, output_dim=4), num_tags=3)
    >>> tagger({"token_ids": np.array([[5, 6, 0]], "int32")}).shape
    (1, 3, 3)
    """

    head_name = "tag_logits"
    size_name = "num_tags"

    def __init__(self, encoder, num_tags, dropout=0.0, crf=False, **kwargs):
        super().__init__(encoder, num_tags, dropout=dropout, output_layer=CRF(num_tags, name="crf") if crf else None,
                         **kwargs)
        self.crf = crf

    @property
    def crf_layer(self):
        return self.get_layer("crf") if self.crf else None

    def crf_decoding(self) -> dict | None:
        """The CRF's transition, start and end scores (NumPy), or None without a CRF."""
        return self.crf_layer.decoding() if self.crf else None

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not self.crf:
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        mask = ops.not_equal(x["token_ids"], 0)
        loss = -ops.mean(self.crf_layer.log_likelihood(y_pred, y, mask))
        for extra in self.losses:
            loss = loss + extra
        return loss

    def get_config(self):
        return {**super().get_config(), "crf": self.crf}


def crf_decoding(model) -> dict | None:
    """A CRF tagger's learned scores for Viterbi decoding (`SequenceTagger.crf_decoding()`); None for any other
    model (its tags are decoded without them)."""
    return model.crf_decoding() if isinstance(model, SequenceTagger) else None
