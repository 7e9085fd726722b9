"""Adam as TensorFlow's fused kernel: the same textbook update as `keras.optimizers.Adam`, one kernel per variable."""

import keras


def _handle(variable):
    """The resource handle of a Keras variable (or of a tf.Variable, as tf.distribute hands them over)."""
    return getattr(variable, "value", variable).handle if isinstance(variable, keras.Variable) else variable.handle


@keras.saving.register_keras_serializable(package="kerasrnn")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose update of each variable is TensorFlow's fused `ResourceApplyAdam` kernel.

    Keras' Adam updates a variable with about a dozen elementwise operations, each a pass over the variable, its two
    moments or the gradient; the fused kernel makes one. That matters for the token embedding: its gradient is sparse
    (a batch reads a few hundred of its rows) but textbook Adam still decays both moments of every row and moves every
    row each step, so the whole table is updated every step either way (pos_ewt: 2.6 M of the 2.9 M parameters). The
    update is the same as Keras' (m and v as exponential moving averages, lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t),
    epsilon added to sqrt(v)); tests compare both against a NumPy Adam. `amsgrad` falls back to Keras' update.
    TensorFlow backend only.

    Args: those of `keras.optimizers.Adam`.

    Example:
    >>> import numpy as np
    >>> opt = FusedAdam(learning_rate=0.1)
    >>> w = keras.Variable(np.ones(2, "float32"))
    >>> opt.apply_gradients([(np.array([1.0, -1.0], "float32"), w)])
    >>> np.round(keras.ops.convert_to_numpy(w), 4).tolist()
    [0.9, 1.1]
    """

    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf

        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        if isinstance(gradient, tf.IndexedSlices):  # the embedding's: every row's moments decay all the same
            gradient = tf.convert_to_tensor(gradient)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[index]), v=_handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype), use_locking=False)
