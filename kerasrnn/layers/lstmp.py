import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasrnn")
class LSTMPCell(keras.layers.Layer):
    """The recurrent half of an LSTM with a projection (Sak et al. 2014; ELMo's LSTMP), for `keras.layers.RNN`:
    its input is the step's input pre-activations x_t W + b [batch, 4 * units], computed outside the loop
    (`LSTMP`); its state is (r, c), the projected output [batch, projection_units] and the cell [batch, units].

        z = x_t W + b + r_{t-1} R;  i, f, g, o = split(z)  (Keras' gate order)
        c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g);  r_t = (sigmoid(o) tanh(c_t)) P

    Args:
        units: int. Cells (the gates' width).
        projection_units: int. Width of the output and of the state the gates read.
    """

    def __init__(self, units, projection_units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.projection_units = projection_units
        self.state_size = [projection_units, units]
        self.output_size = projection_units

    def build(self, input_shape):
        self.recurrent_kernel = self.add_weight(shape=(self.projection_units, 4 * self.units),
                                                initializer="orthogonal", name="recurrent_kernel")
        self.projection_kernel = self.add_weight(shape=(self.units, self.projection_units),
                                                 initializer="glorot_uniform", name="projection_kernel")
        self.built = True

    def call(self, inputs, states, training=False):
        r, c = states
        i, f, g, o = ops.split(inputs + ops.matmul(r, self.recurrent_kernel), 4, axis=-1)
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        r = ops.matmul(ops.sigmoid(o) * ops.tanh(c), self.projection_kernel)
        return r, [r, c]

    def get_config(self):
        return {**super().get_config(), "units": self.units, "projection_units": self.projection_units}


@keras.saving.register_keras_serializable(package="kerasrnn")
class LSTMP(keras.layers.Layer):
    """An LSTM whose output (and the state its gates read) is projected to `projection_units`: wide cells at the
    cost of a narrow recurrence (ELMo's LSTMP, 4096 cells projected to 512). The input pre-activations of every
    step come from one matrix product before the loop; the loop is Keras' own (`keras.layers.RNN`, masks as
    Keras handles them: a masked step keeps the state and repeats the last output).

    Input [batch, time, features] (with an optional mask); output [batch, time, projection_units]. Weights, in
    `get_weights()` order: kernel W [features, 4 units], bias b, recurrent kernel R [projection_units, 4 units],
    projection P [units, projection_units] (the export reads them in this order).

    Args:
        units: int. Cells.
        projection_units: int. Output width.
        go_backwards: bool. Read the sequence from its end (the output is in that reversed order, as Keras' RNN
            layers return it). Defaults to False.

    Example:
    >>> import numpy as np
    >>> LSTMP(8, 3)(np.zeros((2, 5, 4), "float32")).shape
    (2, 5, 3)
    """

    def __init__(self, units, projection_units, go_backwards=False, return_sequences=True, **kwargs):
        super().__init__(**kwargs)
        if not return_sequences:
            raise ValueError("LSTMP returns sequences only")
        self.units = units
        self.projection_units = projection_units
        self.go_backwards = go_backwards
        self.supports_masking = True
        self.cell = LSTMPCell(units, projection_units, name="cell")
        self.rnn = keras.layers.RNN(self.cell, return_sequences=True, go_backwards=go_backwards, name="rnn")

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 4 * self.units), initializer="glorot_uniform",
                                      name="kernel")
        forget = ops.concatenate([ops.zeros((self.units,)), ops.ones((self.units,)), ops.zeros((2 * self.units,))])
        self.bias = self.add_weight(shape=(4 * self.units,), initializer=lambda shape, dtype=None: forget,
                                    name="bias")  # Keras' unit_forget_bias: the forget gate starts at 1
        self.rnn.build((input_shape[0], input_shape[1], 4 * self.units))
        self.built = True

    def call(self, inputs, mask=None, training=False):
        return self.rnn(ops.matmul(inputs, self.kernel) + self.bias, mask=mask, training=training)

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.projection_units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "projection_units": self.projection_units,
                "go_backwards": self.go_backwards}
