import keras

from kerasrnn.models.contextual_encoder import ContextualEncoder


def encoder_inputs(encoder: ContextualEncoder) -> dict:
    """Fresh symbolic inputs with the encoder's input names, shapes and dtypes."""
    return {
        name: keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=name)
        for name, tensor in encoder.input.items()
    }


def serialize_encoder(encoder: ContextualEncoder) -> dict:
    return keras.saving.serialize_keras_object(encoder)


def deserialize_encoder(config) -> ContextualEncoder:
    if isinstance(config, dict) and "class_name" in config:
        return keras.saving.deserialize_keras_object(config)
    return config
