"""Keras' LSTM and GRU with a mask-free training loop.

Keras runs a masked recurrent layer on a CPU as a loop that, at every step, selects between the new and the held
state and output (three selects per step for an LSTM, and their gradients). None of that is needed: a masked step
leaves the state as it was, so a row's valid outputs are those of the layer run over the row's valid positions
alone, in order. `LSTM` and `GRU` gather each row's valid positions to its front (a stable sort of the positions:
right padding, what `kerasrnn.data.pipeline` makes and the export graph assumes, gathers to itself), run the loop
without a mask (a backward layer reads each row reversed within its own length, `tf.reverse_sequence`, so its
padding comes last too), and put the outputs back at their positions; a masked position gets zero inside Keras'
`Bidirectional` (which asks that of its layers) and, outside it, the output read before it, as Keras' loop gives. So
every mask (right or left padding, holes) gives Keras' outputs and gradients. No mask, dropout inside the cell,
`return_sequences=False`, `return_state`, `stateful`, `unroll` or a GPU (Keras' cuDNN path) take Keras' own loop. They are
`keras.layers.LSTM` / `GRU` in everything else (weights, config, export), under the same class names.

On that mask-free path an LSTM with Keras' default activations (tanh, sigmoid) in float32 runs as one fused op,
TensorFlow's `BlockLSTM` (the whole sequence in one kernel: no per-step graph ops), with a hand-written gradient
(`fused_lstm_sequence`): the gate gradients come from a loop of one small matmul and a few element-wise ops per
step, and the weight and input gradients from three large matmuls after it. TensorFlow's own gradient op
(`BlockLSTMGrad`) does the weight products step by step in Eigen and took 1.7x as long in a harness (one direction,
16 x 256 rows of 50 features, 128 units, forward and gradients: 44 against 26 ms).
"""

import keras
from keras.src import backend, tree  # backend.rnn: the loop Keras' RNN layers run (keras pinned in pyproject.toml)


class _MaskFreeLoop:
    """Mixin for a Keras RNN layer: the mask-free loop wherever it gives Keras' own outputs (see the module)."""

    def _mask_free_applies(self, mask) -> bool:
        import tensorflow as tf

        return (mask is not None and keras.backend.backend() == "tensorflow" and self.return_sequences
                and not self.return_state and not self.stateful and not self.unroll
                and not getattr(self, "dropout", 0.0) and not getattr(self, "recurrent_dropout", 0.0)
                and not tf.config.list_logical_devices("GPU"))  # a GPU takes Keras' cuDNN path

    def _fused_applies(self, x) -> bool:
        return False

    def inner_loop(self, sequences, initial_state, mask, training=False):
        import tensorflow as tf

        if tree.is_nested(mask):
            mask = mask[0]
        if not self._mask_free_applies(mask):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        mask = tf.cast(mask, tf.bool)
        steps = tf.shape(mask)[1]
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        position = tf.range(steps)[None, :]
        rank = tf.cumsum(tf.cast(mask, tf.int32), axis=1, exclusive=True)  # the valid positions before each one
        # each row's valid positions first, in their order (a stable sort): any mask becomes right padding
        x = tf.gather(sequences, tf.argsort(tf.where(mask, position, position + steps), axis=1, stable=True),
                      batch_dims=1)
        if self.go_backwards:
            x = tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0)
        initial_state = list(initial_state) if tree.is_nested(initial_state) else [initial_state]
        if self._fused_applies(x):
            cell = self.cell
            bias = cell.bias if cell.use_bias else tf.zeros([4 * cell.units], x.dtype)
            h, c = fused_lstm_sequence(tf.transpose(x, [1, 0, 2]), *initial_state, cell.kernel,
                                       cell.recurrent_kernel, bias)
            outputs, states = tf.transpose(h, [1, 0, 2]), (h[-1], c[-1])
        else:
            def step(inputs, states):
                output, new_states = self.cell(inputs, states, training=training)
                return output, new_states if tree.is_nested(new_states) else [new_states]

            _, outputs, states = backend.rnn(step, x, initial_state, go_backwards=False, mask=None, unroll=False,
                                             input_length=sequences.shape[1], return_all_outputs=True)
        # `states` are the loop's after the padding too, not Keras' (after each row's last valid input): Keras' RNN
        # reads them only for return_state and stateful, which take its own loop (_mask_free_applies)
        if self.go_backwards:
            outputs = tf.reverse_sequence(outputs, lengths, seq_axis=1, batch_axis=0)
        # outputs[:, r] is now the output at the row's valid position of rank r; back to the positions: a masked one
        # is zero inside Bidirectional (zero_output_for_mask), and outside it holds the output read before it
        # (Keras' loop: the previous position's forward, the next one's for a go_backwards layer), or zero
        held = rank if self.go_backwards else rank - 1
        source = tf.where(mask, rank, held)
        keep = mask if self.zero_output_for_mask else mask | ((held >= 0) & (held < lengths[:, None]))
        outputs = tf.gather(outputs, tf.clip_by_value(source, 0, steps - 1), batch_dims=1) * tf.cast(
            keep, outputs.dtype)[..., None]
        if self.go_backwards:
            outputs = tf.reverse(outputs, [1])  # Keras' go_backwards order (last position first)
        return outputs[:, -1], outputs, tuple(states)


def fused_lstm_sequence(x, h0, c0, kernel, recurrent_kernel, bias):
    """Keras' LSTM (tanh, sigmoid; gates i, f, c, o) over a whole time-major sequence, with its gradient.

    Args:
        x: float32 `[steps, rows, features]`. Every step is computed: padding must come last in each row.
        h0, c0: float32 `[rows, units]`, the initial output and cell state.
        kernel, recurrent_kernel, bias: the `LSTMCell`'s weights, `[features, 4 * units]`, `[units, 4 * units]`,
            `[4 * units]`.

    Returns:
        `(h, c)`, each `[steps, rows, units]`: the outputs and the cell states of every step. Never clipped:
        `BlockLSTM` clips the cell state only for a positive `cell_clip`, and this passes -1.
    """
    import tensorflow as tf

    def icfo(t):  # Keras' gate order -> BlockLSTM's
        i, f, c, o = tf.split(t, 4, axis=-1)
        return tf.concat([i, c, f, o], axis=-1)

    @tf.custom_gradient
    def run(x, h0, c0, kernel, recurrent_kernel, bias):
        steps, units = tf.shape(x)[0], tf.shape(h0)[1]
        no_peephole = tf.zeros([units], x.dtype)
        i, c, f, o, g, tanh_c, h = tf.raw_ops.BlockLSTM(
            seq_len_max=tf.cast(steps, tf.int64), x=x, cs_prev=c0, h_prev=h0,
            w=icfo(tf.concat([kernel, recurrent_kernel], 0)), wci=no_peephole, wcf=no_peephole, wco=no_peephole,
            b=icfo(bias), forget_bias=0.0, cell_clip=-1.0, use_peephole=False)

        def grad(dh_seq, dc_seq):
            c_prev = tf.concat([c0[None], c[:-1]], 0)
            h_prev = tf.concat([h0[None], h[:-1]], 0)
            # dc_t = dh_t * dc_from_h_t + dc_{t+1} * f_{t+1}; the gates' pre-activation gradients are
            # [dc, dc, dc, dh] times `local` (Keras' order i, f, c, o)
            dc_from_h = o * (1.0 - tanh_c * tanh_c)
            local = tf.concat([g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g * g),
                               tanh_c * o * (1.0 - o)], -1)
            f_next = tf.concat([f[1:], tf.zeros_like(f[:1])], 0)
            recurrent_t = tf.transpose(recurrent_kernel)

            def body(t, dh_recurrent, dc, gates):
                dh = dh_seq[t] + dh_recurrent
                dc = dh * dc_from_h[t] + dc * f_next[t]
                if dc_seq is not None:
                    dc = dc + dc_seq[t]
                dz = tf.concat([dc, dc, dc, dh], 1) * local[t]
                return t - 1, tf.matmul(dz, recurrent_t), dc, gates.write(t, dz)

            _, dh0, dc_first, gates = tf.while_loop(
                lambda t, *_: t >= 0, body,
                (steps - 1, tf.zeros_like(h0), tf.zeros_like(c0), tf.TensorArray(x.dtype, size=steps)))
            dz = tf.reshape(gates.stack(), [-1, 4 * units])
            dkernel = tf.matmul(tf.reshape(x, [-1, tf.shape(x)[2]]), dz, transpose_a=True)
            drecurrent = tf.matmul(tf.reshape(h_prev, [-1, units]), dz, transpose_a=True)
            dx = tf.reshape(tf.matmul(dz, kernel, transpose_b=True), tf.shape(x))
            return dx, dh0, dc_first * f[0], dkernel, drecurrent, tf.reduce_sum(dz, 0)

        return (h, c), grad

    # tensors, not variables: the gradient reaches the variables through their reads
    return run(*(tf.convert_to_tensor(t) for t in (x, h0, c0, kernel, recurrent_kernel, bias)))


@keras.saving.register_keras_serializable(package="kerasrnn")
class LSTM(_MaskFreeLoop, keras.layers.LSTM):
    """`keras.layers.LSTM` with the mask-free loop, fused (`kerasrnn.layers.recurrent`)."""

    def _fused_applies(self, x) -> bool:
        return (self.cell.activation is keras.activations.tanh
                and self.cell.recurrent_activation is keras.activations.sigmoid and x.dtype == "float32")


@keras.saving.register_keras_serializable(package="kerasrnn")
class GRU(_MaskFreeLoop, keras.layers.GRU):
    """`keras.layers.GRU` with the mask-free loop (`kerasrnn.layers.recurrent`)."""
