import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasrnn")
class MaskedMeanMaxPooling(keras.layers.Layer):
    """Mean and max over the valid time steps, concatenated: [batch, time, dim] -> [batch, 2 * dim].

    Uses the incoming Keras mask (or all steps when there is none); padded steps change neither the mean
    nor the max. The output carries no mask.

    Example:
    >>> import numpy as np
    >>> x = np.array([[[1.0], [3.0], [100.0]]], "float32")
    >>> MaskedMeanMaxPooling()(x, mask=np.array([[True, True, False]])).numpy().tolist()
    [[2.0, 3.0]]
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.concatenate([ops.mean(inputs, axis=1), ops.max(inputs, axis=1)], axis=-1)
        valid = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        count = ops.maximum(ops.sum(valid, axis=1), 1.0)
        mean = ops.sum(inputs * valid, axis=1) / count
        lowest = ops.min(inputs) - 1.0
        maximum = ops.max(ops.where(valid > 0, inputs, lowest), axis=1)
        return ops.concatenate([mean, maximum], axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[-1])
