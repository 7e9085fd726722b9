import keras

from kerasrnn.layers.masked_mean_max_pooling import MaskedMeanMaxPooling
from kerasrnn.models.task_model import deserialize_encoder, encoder_inputs, serialize_encoder


@keras.saving.register_keras_serializable(package="kerasrnn")
class TextClassifier(keras.Model):
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

    def __init__(self, encoder, num_labels, dropout=0.0, **kwargs):
        encoder = deserialize_encoder(encoder)
        inputs = encoder_inputs(encoder)
        x = encoder(inputs)
        x = MaskedMeanMaxPooling(name="pooling")(x)
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
        logits = keras.layers.Dense(num_labels, name="label_logits")(x)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.encoder = encoder
        self.num_labels = num_labels
        self.dropout = dropout

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": serialize_encoder(self.encoder),
            "num_labels": self.num_labels,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
