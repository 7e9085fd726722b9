import keras

from kerasrnn.models.contextual_encoder import ContextualEncoder


class Task(keras.Model):
    """Base of the task models: a `ContextualEncoder`, a feature step (`features`), dropout, and a linear head
    emitting logits (use `from_logits=True` losses).

    Subclasses set `head_name` (the head layer's name) and `size_name` (the constructor argument that sizes the
    head), and may override `features` (identity by default: per-token logits).

    Args:
        encoder: ContextualEncoder or its serialized config. The backbone.
        num_outputs: int. Size of the head.
        dropout: float. Dropout before the head. Defaults to 0.0.
        output_layer: a layer the logits pass through (not serialized: subclasses rebuild it). Defaults to None.
    """

    head_name = "logits"
    size_name = "num_outputs"

    def __init__(self, encoder, num_outputs, dropout=0.0, output_layer=None, **kwargs):
        if isinstance(encoder, dict) and "class_name" in encoder:
            encoder = keras.saving.deserialize_keras_object(encoder)
        inputs = {name: keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=name)
                  for name, tensor in encoder.input.items()}
        x = self.features(encoder(inputs))
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
        logits = keras.layers.Dense(num_outputs, name=self.head_name)(x)
        if output_layer is not None:  # a layer the logits pass through (the tagger's CRF)
            logits = output_layer(logits)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.encoder = encoder
        self.dropout = dropout
        setattr(self, self.size_name, num_outputs)

    @staticmethod
    def features(x):
        return x

    @property
    def head(self) -> keras.layers.Dense:
        return self.get_layer(self.head_name)

    @property
    def num_outputs(self) -> int:
        return getattr(self, self.size_name)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            self.size_name: self.num_outputs,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


__all__ = ["ContextualEncoder", "Task"]
