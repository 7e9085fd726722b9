"""Knowledge distillation (Hinton et al. 2015): a student learns a teacher run's softened outputs beside the gold
labels, on the training data and, for taggers, on raw text only the teacher labels.

The teacher's probabilities are computed once, before training, with the teacher's own preprocessor (so student
and teacher may have different vocabularies, characters and sizes; they must share the labels), softened by the
temperature T and stored beside the gold ids in the training targets: `[..., 0]` the gold id (-1: none, a raw
sentence), `[..., 1:]` the teacher's distribution at T in the student's label order. `kerasrnn.losses.DistillationLoss`
reads them:

    (1 - alpha) * CE(gold, softmax(z)) + alpha * T^2 * CE(teacher_T, softmax(z / T))

(T^2 keeps the soft term's gradient on the scale of the hard one's as T changes.)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kerasrnn.data.pipeline import EncodedData


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(z / T) from softmax(z): p^(1/T), renormalised (in logs, for the smallest probabilities)."""
    logp = np.log(np.maximum(probabilities.astype(np.float64), 1e-38)) / temperature
    logp -= logp.max(axis=-1, keepdims=True)
    p = np.exp(logp)
    return (p / p.sum(axis=-1, keepdims=True)).astype(np.float32)


def label_order(teacher_labels: list[str], student_labels: list[str]) -> np.ndarray:
    """Indices into the teacher's labels, in the student's order; every label of the student must be a teacher's."""
    position = {label: i for i, label in enumerate(teacher_labels)}
    missing = [label for label in student_labels if label not in position]
    if missing:
        raise ValueError(f"distill.teacher: the teacher does not know the label(s) {missing[:5]}; teacher and student "
                         "must share their labels")
    return np.array([position[label] for label in student_labels])


@dataclasses.dataclass
class Teacher:
    """A loaded teacher run: its soft targets for any examples, in the student's label order."""

    path: str
    run: object
    order: np.ndarray
    temperature: float

    @classmethod
    def load(cls, path, student_labels: list[str], task_type: str, temperature: float) -> Teacher:
        from kerasrnn.run import load_run

        run = load_run(path)
        if run.config.task.type != task_type:
            raise ValueError(f"distill.teacher: {path} is a {run.config.task.type} run; the student is {task_type}")
        if run.preprocessor.labels is None:
            raise ValueError(f"distill.teacher: {path} has no labels (a language model cannot teach a task)")
        return cls(str(path), run, label_order(run.preprocessor.labels.tokens, student_labels), temperature)

    def soft_targets(self, examples, lengths: np.ndarray) -> list[np.ndarray] | np.ndarray:
        """The teacher's distributions at T for `examples`: one [T_i, labels] array per sentence (tagging, checked
        against the student's row lengths `lengths`) or [N, labels]."""
        from kerasrnn.trainers.evaluation import predict

        probs = predict(self.run.model, self.run.encode(examples))
        if isinstance(probs, np.ndarray):
            return soften(probs, self.temperature)[:, self.order]
        out = [soften(p, self.temperature)[:, self.order] for p in probs]
        bad = next((i for i, (p, n) in enumerate(zip(out, lengths, strict=True)) if len(p) != n), None)
        if bad is not None:
            raise ValueError(f"distill.teacher: the teacher reads sentence {bad} as {len(out[bad])} tokens, the "
                             f"student as {lengths[bad]}; give both the same data.max_length")
        return out

    @property
    def parameters(self) -> int:
        return self.run.model.count_params()

    @property
    def test_metrics(self) -> dict:
        """The teacher run's test figures (its metrics.json), or {} if it has none."""
        import json
        from pathlib import Path

        path = Path(self.path) / "metrics.json"
        return json.loads(path.read_text())["test"] if path.is_file() else {}


def distillation_data(data: EncodedData, soft, raw: EncodedData | None = None, raw_soft=None) -> EncodedData:
    """The training data with the teacher's targets: `soft_targets` set, raw rows (if any) appended with gold -1."""
    if raw is None or not len(raw):
        return dataclasses.replace(data, soft_targets=soft)
    targets = [*data.targets, *(np.full(len(t), -1, np.int32) for t in raw.token_ids)]
    chars = None if data.char_ids is None else [*data.char_ids, *raw.char_ids]
    return EncodedData([*data.token_ids, *raw.token_ids], chars, targets, [*soft, *raw_soft])
