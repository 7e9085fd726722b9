"""The distillation loss (`kerasrnn.trainers.distill`), here so that `import kerasrnn` registers it: a student's
model.keras names it in its compile config, and loads anywhere kerasrnn is imported."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasrnn")
class DistillationLoss(keras.losses.Loss):
    """The student's loss on targets [..., 1 + labels] (gold id, then the teacher's distribution at T) and logits
    [..., labels]; a gold id of -1 (raw text) leaves only the soft term.

    Args:
        temperature: float. T. Defaults to 2.0.
        alpha: float. Weight of the soft term. Defaults to 0.5.
    """

    def __init__(self, temperature=2.0, alpha=0.5, name="distillation_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = temperature
        self.alpha = alpha

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        gold = ops.cast(y_true[..., 0], "int32")
        teacher = y_true[..., 1:]
        has_gold = ops.cast(gold >= 0, "float32")
        hard = keras.losses.sparse_categorical_crossentropy(ops.maximum(gold, 0), y_pred, from_logits=True)
        soft = -ops.sum(teacher * ops.log_softmax(y_pred / self.temperature, axis=-1), axis=-1)
        return (1.0 - self.alpha) * hard * has_gold + self.alpha * self.temperature**2 * soft

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="kerasrnn")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of logits [..., labels] against gold ids [...] smoothed towards the uniform distribution:
    the target puts 1 - s + s / K on the gold label and s / K on each other (Szegedy et al. 2016); s = 0 is
    `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`.

    Args:
        label_smoothing: float in [0, 1). s. Defaults to 0.1.
    """

    def __init__(self, label_smoothing=0.1, name="smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        log_p = ops.log_softmax(y_pred, axis=-1)
        gold = ops.take_along_axis(log_p, ops.expand_dims(ops.cast(y_true, "int32"), -1), axis=-1)[..., 0]
        s = self.label_smoothing
        return -(1.0 - s) * gold - s * ops.mean(log_p, axis=-1)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
