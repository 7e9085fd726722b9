import keras

from kerasrnn.models.task import Task


@keras.saving.register_keras_serializable(package="kerasrnn")
class SequenceTagger(Task):
    """Per-token tag logits on top of a `ContextualEncoder` (POS tagging, BIO named entities).

    Inputs: the encoder's inputs. Output: float32 logits [batch, time, num_tags] with the encoder's mask,
    so Keras losses and metrics skip padded positions. Use `from_logits=True` losses.

    Args:
        encoder: ContextualEncoder. The backbone.
        num_tags: int. Number of tags.
        dropout: float. Dropout before the output layer. Defaults to 0.0.

    Example:
    >>> import numpy as np
    >>> from kerasrnn.models import ContextualEncoder
    >>> tagger = SequenceTagger(ContextualEncoder(vocabulary_size=100, units=8, output_dim=4), num_tags=3)
    >>> tagger({"token_ids": np.array([[5, 6, 0]], "int32")}).shape
    (1, 3, 3)
    """

    head_name = "tag_logits"
    size_name = "num_tags"

    def __init__(self, encoder, num_tags, dropout=0.0, **kwargs):
        super().__init__(encoder, num_tags, dropout=dropout, **kwargs)
