import keras

from kerasrnn.layers.masked_mean_max_pooling import MaskedMeanMaxPooling
from kerasrnn.models.task import Task


@keras.saving.register_keras_serializable(package="kerasrnn")
class TextClassifier(Task):
    """Sentence label logits: a `ContextualEncoder`, masked mean+max pooling over valid tokens, a linear layer.

    Inputs: the encoder's inputs. Output: float32 logits [batch, num_labels]; padding changes neither
    the pooled vector nor the logits. Use `from_logits=True` losses.

    Args:
        encoder: ContextualEncoder. The backbone.
        num_labels: int. Number of classes.
        dropout: float. Dropout on the pooled vector. Defaults to 0.0.

    Example:
    >>> import numpy as np
    >>> from kerasrnn.models import ContextualEncoder
    >>> classifier = TextClassifier(ContextualEncoder(vocabulary_size=100, units=8, output_dim=4), num_labels=5)
    >>> classifier({"token_ids": np.array([[5, 6, 0]], "int32")}).shape
    (1, 5)
    """

    head_name = "label_logits"
    size_name = "num_labels"

    def __init__(self, encoder, num_labels, dropout=0.0, **kwargs):
        super().__init__(encoder, num_labels, dropout=dropout, **kwargs)

    @staticmethod
    def features(x):
        return MaskedMeanMaxPooling(name="pooling")(x)
