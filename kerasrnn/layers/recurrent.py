"""Keras' LSTM and GRU with a mask-free training loop for right-padded rows.

Keras runs a masked recurrent layer on a CPU as a loop that, at every step, selects between the new and the held
state and output (three selects per step for an LSTM, and their gradients). With right padding (what
`kerasrnn.data.pipeline` makes and the export graph assumes) none of that is needed: a forward layer's valid outputs
never read a later position, and a backward layer reads each row reversed within its own length
(`tf.reverse_sequence`), so its padding comes last too. `LSTM` and `GRU` run that loop when the mask is
right-padded, and Keras' masked loop for any other mask (holes, left padding) or setting; both give the same outputs
(padded positions zero, as Keras' `Bidirectional` asks of its layers) and the same weights and gradients. They are
`keras.layers.LSTM` / `GRU` in everything else (weights, config, export), under the same class names.
"""

import keras
from keras.src import backend, tree  # backend.rnn: the loop Keras' RNN layers run (keras pinned in pyproject.toml)


class _RightPaddedLoop:
    """Mixin for a Keras RNN layer: the mask-free loop where it gives Keras' own outputs (see the module)."""

    def _mask_free_applies(self, mask) -> bool:
        import tensorflow as tf

        return (mask is not None and keras.backend.backend() == "tensorflow" and self.return_sequences
                and not self.return_state and self.zero_output_for_mask and not self.stateful and not self.unroll
                and not getattr(self, "dropout", 0.0) and not getattr(self, "recurrent_dropout", 0.0)
                and not tf.config.list_logical_devices("GPU"))  # a GPU takes Keras' cuDNN path

    def inner_loop(self, sequences, initial_state, mask, training=False):
        import tensorflow as tf

        if tree.is_nested(mask):
            mask = mask[0]
        if not self._mask_free_applies(mask):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        mask = tf.cast(mask, tf.bool)
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        right_padded = tf.reduce_all(tf.equal(mask, tf.sequence_mask(lengths, tf.shape(mask)[1])))
        initial_state = list(initial_state) if tree.is_nested(initial_state) else [initial_state]

        def mask_free():
            x = tf.reverse_sequence(sequences, lengths, seq_axis=1, batch_axis=0) if self.go_backwards else sequences

            def step(inputs, states):
                output, new_states = self.cell(inputs, states, training=training)
                return output, new_states if tree.is_nested(new_states) else [new_states]

            last, outputs, states = backend.rnn(step, x, initial_state, go_backwards=False, mask=None,
                                                unroll=False, input_length=sequences.shape[1],
                                                return_all_outputs=True)
            valid = tf.cast(mask, outputs.dtype)[..., None]
            if self.go_backwards:
                # back to the row's own order, padding zeroed, then in Keras' go_backwards order (last position
                # first), which Bidirectional flips back
                outputs = tf.reverse_sequence(outputs, lengths, seq_axis=1, batch_axis=0)
                return last, tf.reverse(outputs * valid, [1]), states
            return last, outputs * valid, states

        def masked():
            return super(_RightPaddedLoop, self).inner_loop(sequences, initial_state, mask, training=training)

        return tf.cond(right_padded, mask_free, masked)


@keras.saving.register_keras_serializable(package="kerasrnn")
class LSTM(_RightPaddedLoop, keras.layers.LSTM):
    """`keras.layers.LSTM` with the mask-free loop on right-padded rows (`kerasrnn.layers.recurrent`)."""


@keras.saving.register_keras_serializable(package="kerasrnn")
class GRU(_RightPaddedLoop, keras.layers.GRU):
    """`keras.layers.GRU` with the mask-free loop on right-padded rows (`kerasrnn.layers.recurrent`)."""
