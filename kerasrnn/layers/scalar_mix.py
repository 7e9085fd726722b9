import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasrnn")
class ScalarMix(keras.layers.Layer):
    """ELMo's scalar mix (Peters et al. 2018, eq. 1): gamma * sum_j softmax(s)_j * h_j over a list of layers.

    The weights s (one per layer, starting equal) and the scale gamma (starting at 1) train; the layers do not need
    to: this is how a task reads a frozen language model. Layers narrower than the widest are padded with zeros at
    the end of their last axis, so a word-feature layer mixes with wider recurrent layers.

    Shapes: a list of [..., dim_j] tensors of one shape but the last axis -> [..., max_j dim_j]. Masks pass through
    (the first input's).

    Example:
    >>> import numpy as np
    >>> ScalarMix()([np.ones((1, 2, 3), "float32"), np.zeros((1, 2, 3), "float32")]).numpy()[0, 0].tolist()
    [0.5, 0.5, 0.5]
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape):
        self.layer_weights = self.add_weight(shape=(len(input_shape),), initializer="zeros", name="layer_weights")
        self.gamma = self.add_weight(shape=(), initializer="ones", name="gamma")
        self.built = True

    def call(self, inputs):
        return scalar_mix(inputs, self.layer_weights, self.gamma)

    def compute_mask(self, inputs, mask=None):
        return mask[0] if isinstance(mask, list | tuple) else mask

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], max(int(shape[-1]) for shape in input_shape))


def scalar_mix(layers, layer_weights, gamma):
    """gamma * sum_j softmax(layer_weights)_j * h_j, narrower layers zero-padded at the end of their last axis: the
    layer's computation, also run by the export graph on the trained weights as constants."""
    width = max(int(x.shape[-1]) for x in layers)
    weights = ops.softmax(layer_weights) * gamma
    mixed = None
    for j, x in enumerate(layers):
        if x.shape[-1] < width:
            x = ops.pad(x, [[0, 0]] * (len(x.shape) - 1) + [[0, width - int(x.shape[-1])]])
        mixed = weights[j] * x if mixed is None else mixed + weights[j] * x
    return mixed
