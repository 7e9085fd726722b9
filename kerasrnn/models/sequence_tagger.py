import keras

from kerasrnn.models.task_model import deserialize_encoder, encoder_inputs, serialize_encoder


@keras.saving.register_keras_serializable(package="kerasrnn")
class SequenceTagger(keras.Model):
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

    def __init__(self, encoder, num_tags, dropout=0.0, **kwargs):
        encoder = deserialize_encoder(encoder)
        inputs = encoder_inputs(encoder)
        x = encoder(inputs)
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
        logits = keras.layers.Dense(num_tags, name="tag_logits")(x)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.encoder = encoder
        self.num_tags = num_tags
        self.dropout = dropout

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": serialize_encoder(self.encoder),
            "num_tags": self.num_tags,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
