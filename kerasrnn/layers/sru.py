import keras
from keras import ops


def _scan(f, a):
    """c_t = f_t * c_{t-1} + a_t from c_{-1} = 0 along axis 1 of f, a [batch, time, units]: a loop over time of
    one multiply-add on [batch, units] tensors, which stay in cache. (The exported graph runs a parallel prefix
    scan instead, `kerasrnn.export.keras_graph.sru_sequence`; in training here the loop measured faster: 3.8 vs
    8.5 ms forward and backward at 32 x 30 x 128, 19 vs 33 ms at 16 x 256 x 128, 2 threads; one-off timings.)"""
    import tensorflow as tf

    f_t, a_t = tf.transpose(f, [1, 0, 2]), tf.transpose(a, [1, 0, 2])
    time = tf.shape(a_t)[0]

    def body(t, c, out):
        c = f_t[t] * c + a_t[t]
        return t + 1, c, out.write(t, c)

    out = tf.TensorArray(a.dtype, size=time)
    _, _, out = tf.while_loop(lambda t, c, out: t < time, body, (0, tf.zeros_like(a_t[0]), out))
    return tf.transpose(out.stack(), [1, 0, 2])


@ops.custom_gradient
def linear_scan(f, a):
    """c [batch, time, units] with c_t = f_t * c_{t-1} + a_t and c_{-1} = 0, for f, a [batch, time, units].

    The gradient is the same recurrence run backwards, g_t = dL/dc_t + f_{t+1} g_{t+1}, with dL/da_t = g_t and
    dL/df_t = g_t c_{t-1}: one more loop of multiply-adds, nothing stored per step (differentiating through the
    forward loop costs about twice as much).
    """
    c = _scan(f, a)

    def grad(*args, upstream=None):
        upstream = args[0] if upstream is None else upstream
        next_f = ops.concatenate([f[:, 1:], ops.zeros_like(f[:, :1])], axis=1)
        g = ops.flip(_scan(ops.flip(next_f, axis=1), ops.flip(upstream, axis=1)), axis=1)
        previous_c = ops.concatenate([ops.zeros_like(c[:, :1]), c[:, :-1]], axis=1)
        return g * previous_c, g

    return c, grad


@keras.saving.register_keras_serializable(package="kerasrnn")
class SRU(keras.layers.Layer):
    """The Simple Recurrent Unit (Lei et al. 2017): its matrix products read only the inputs, so they run for every
    step at once, and the recurrence left is elementwise.

        x~, f^, r^ (, x') = x W                      # one matmul over the whole sequence
        f = sigmoid(f^ + b_f),  r = sigmoid(r^ + b_r)
        c_t = f_t * c_{t-1} + (1 - f_t) * x~_t       # c_{-1} = 0
        h_t = r_t * tanh(c_t) + (1 - r_t) * x'_t     # highway; x' = x when features == units, else projected

    The gates read x_t only (the first formulation; the 2018 one adds v * c_{t-1}), so c is linear in its past:
    training runs it as a loop of one multiply-add per step (`linear_scan`, with the reverse recurrence as its
    gradient), and the exported graph (`kerasrnn.export`) as a parallel prefix scan of ceil(log2 max_length)
    vectorised steps: plain FULLY_CONNECTED, MUL, ADD, PAD and SLICE ops, full int8 at any length, no WHILE loop.

    Shapes: [batch, time, features] -> [batch, time, units] (`return_sequences`) or [batch, units].
    Masking: a masked step keeps the state (f = 1 and no input), for any mask, and its output is zero, as Keras'
    RNN layers do inside `Bidirectional`; appending padding changes no valid output. `go_backwards` reads the row
    from its end and returns the outputs in that order (Keras' convention, which `Bidirectional` flips back).

    Args:
        units: int. Size of the state and the output.
        return_sequences: bool. Every step's output, or the last valid step's. Defaults to False.
        go_backwards: bool. Read the sequence backwards. Defaults to False.
        kernel_initializer: initializer of W. Defaults to "glorot_uniform".
        bias_initializer: initializer of b_f, b_r. Defaults to "zeros".

    Example:
    >>> import numpy as np
    >>> SRU(4, return_sequences=True)(np.ones((2, 3, 5), "float32")).shape
    (2, 3, 4)
    """

    def __init__(self, units, return_sequences=False, go_backwards=False, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.return_sequences = return_sequences
        self.go_backwards = go_backwards
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        # What keras.layers.Bidirectional reads from the layer it wraps.
        self.stateful = False
        self.return_state = False
        self.supports_masking = True

    @property
    def projects_input(self) -> bool:
        """Whether the highway term reads a projection of x (features != units) rather than x itself."""
        return self.features != self.units

    def build(self, input_shape):
        self.features = int(input_shape[-1])
        blocks = 4 if self.projects_input else 3
        self.kernel = self.add_weight(shape=(self.features, blocks * self.units),
                                      initializer=self.kernel_initializer, name="kernel")
        self.bias = self.add_weight(shape=(2 * self.units,), initializer=self.bias_initializer, name="bias")
        self.built = True

    def call(self, inputs, mask=None, initial_state=None):
        if initial_state is not None:
            raise ValueError("SRU starts every row from a zero state; initial_state is not supported")
        x = ops.cast(inputs, self.compute_dtype)
        if self.go_backwards:
            x = ops.flip(x, axis=1)
            mask = None if mask is None else ops.flip(mask, axis=1)
        # One 2-D matmul and a split (a batched 3-D matmul and four slices cost 2x in forward and backward
        # together: slicing's gradient pads every slice back to the full width).
        shape = ops.shape(x)
        u = ops.reshape(ops.matmul(ops.reshape(x, (-1, self.features)), self.kernel), (shape[0], shape[1], -1))
        parts = ops.split(u, 4 if self.projects_input else 3, axis=-1)
        candidate = parts[0]
        highway = parts[3] if self.projects_input else x
        bias_f, bias_r = ops.split(self.bias, 2)
        f = ops.sigmoid(parts[1] + bias_f)
        r = ops.sigmoid(parts[2] + bias_r)
        keep = 1.0 - f  # the share of the candidate a step writes
        if mask is not None:
            m = ops.cast(mask, keep.dtype)[..., None]
            keep = keep * m  # a masked step writes nothing and forgets nothing
            f = 1.0 - keep
        c = linear_scan(f, keep * candidate)
        h = highway + r * (ops.tanh(c) - highway)  # r tanh(c) + (1 - r) highway
        if mask is not None:
            h = h * m
        if self.return_sequences:
            return h
        if mask is None:
            return h[:, -1]
        # the last valid step of each row (held state and zero outputs make the last position wrong)
        steps = ops.arange(ops.shape(h)[1], dtype="int32")[None, :]
        last = ops.max(ops.where(ops.cast(mask, "bool"), steps, 0), axis=1)
        return ops.take_along_axis(h, last[:, None, None], axis=1)[:, 0]

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (*input_shape[:-1], self.units)
        return (input_shape[0], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "return_sequences": self.return_sequences,
            "go_backwards": self.go_backwards,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
