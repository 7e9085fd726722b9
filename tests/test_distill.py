"""Distillation: the soft targets, the loss against NumPy, the batches' layout, and a student trained from a
teacher run on its training data and on raw text only the teacher labels."""

import json

import numpy as np
import pytest

from kerasrnn.data.pipeline import EncodedData, batch_targets
from kerasrnn.losses import DistillationLoss
from kerasrnn.trainers.distill import label_order, soften
from tests.test_training import WORDS, tagging_file, tiny_config
from training import train as train_cli


def test_softened_probabilities_are_the_softmax_of_the_logits_over_t():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    for t in (1.0, 2.0, 5.0):
        expected = np.exp(logits / t) / np.exp(logits / t).sum(-1, keepdims=True)
        np.testing.assert_allclose(soften(p, t), expected, atol=1e-6)


def test_label_order_maps_the_teachers_labels_and_refuses_unknown_ones():
    np.testing.assert_array_equal(label_order(["A", "B", "C"], ["C", "A", "B"]), [2, 0, 1])
    with pytest.raises(ValueError, match=r"does not know the label\(s\) \['D'\]"):
        label_order(["A", "B"], ["A", "D"])


def test_the_loss_is_hard_and_soft_cross_entropy_mixed_and_raw_rows_keep_only_the_soft_part():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4)).astype("float32")
    teacher = soften(rng.dirichlet(np.ones(4), size=(2, 3)), 1.0)
    gold = np.array([[1, 3, 0], [-1, -1, -1]])  # row 1: a raw sentence
    y_true = np.concatenate([gold[..., None], teacher], axis=-1).astype("float32")
    t, alpha = 2.0, 0.3
    got = np.asarray(DistillationLoss(t, alpha, reduction=None)(y_true, logits))

    def log_softmax(z):
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    hard = -np.take_along_axis(log_softmax(logits), np.maximum(gold, 0)[..., None], -1)[..., 0] * (gold >= 0)
    soft = -(teacher * log_softmax(logits / t)).sum(-1)
    np.testing.assert_allclose(got, (1 - alpha) * hard + alpha * t * t * soft, atol=1e-5)


def test_batches_carry_the_gold_id_then_the_teachers_distribution():
    soft = [np.full((2, 3), 1 / 3, np.float32), np.eye(3, dtype=np.float32)[[0, 2, 1]]]
    data = EncodedData([np.array([4, 5]), np.array([6, 7, 8])], None, [np.array([1, 2]), np.array([-1, -1, -1])],
                       soft)
    out = batch_targets(data, [0, 1], 4)
    assert out.shape == (2, 4, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :, 0], [[1, 2, 0, 0], [-1, -1, -1, 0]])
    np.testing.assert_array_equal(out[1, :3, 1:], soft[1])
    assert not out[0, 2:].any()


def test_a_student_learns_from_a_teacher_run_and_from_the_raw_text_it_labels(tmp_path):
    files = [tagging_file(tmp_path / f"{s}.conllu", n, i) for i, (s, n) in enumerate([("train", 80), ("dev", 20),
                                                                                        ("test", 20)])]
    task = 'name = "tiny_pos"\ntype = "tagging"\nmetric = "accuracy"'
    training = "epochs = 4\nbatch_size = 8\nlearning_rate = 0.01\npatience = 5"
    teacher_config = tiny_config(tmp_path / "teacher.toml", task, "conllu", files, data="min_count = 1",
                                 model="units = 16\nembedding_dim = 16\noutput_dim = 16\nchar_filters = 8",
                                 training=training)
    assert train_cli.main(["--config", str(teacher_config), "--output-dir", str(tmp_path / "teacher")]) == 0
    rng = np.random.default_rng(5)
    sentences = [" ".join(rng.choice(WORDS[tag]) for tag in ["DET", "NOUN", "VERB", "DET", "NOUN"]) + " ."
                 for _ in range(60)]
    (tmp_path / "raw.txt").write_text("\n\n".join(sentences) + "\n")
    student_config = tiny_config(
        tmp_path / "student.toml", task, "conllu", files, data="min_count = 1",
        model="units = 8\nembedding_dim = 8\noutput_dim = 8\nchar_filters = 4", training=training)
    student_config.write_text(student_config.read_text() + f'[distill]\nteacher = "{tmp_path / "teacher"}"\n'
                              f'temperature = 2.0\nalpha = 0.7\nraw_text = ["text:{tmp_path / "raw.txt"}"]\n'
                              "raw_sentences = 50\n")
    assert train_cli.main(["--config", str(student_config), "--output-dir", str(tmp_path / "student")]) == 0
    metrics = json.loads((tmp_path / "student" / "metrics.json").read_text())
    teacher_metrics = json.loads((tmp_path / "teacher" / "metrics.json").read_text())
    d = metrics["distill"]
    assert d["raw_sentences"] == 50 and d["teacher_test"] == teacher_metrics["test"]
    assert d["parameter_ratio"] == pytest.approx(metrics["parameters"] / teacher_metrics["parameters"], abs=1e-4)
    assert d["parameter_ratio"] < 0.7
    # the student tags the raw text as its teacher does
    # the student's model.keras names its loss: a fresh process with only `import kerasrnn` loads it
    import subprocess
    import sys

    from kerasrnn.data.readers import read_text
    from kerasrnn.run import load_run
    from kerasrnn.trainers.evaluation import predict

    code = f"from kerasrnn.safe_load import load_model; load_model({str(tmp_path / 'student' / 'model.keras')!r})"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
    raw = read_text(tmp_path / "raw.txt")
    teacher, student = load_run(tmp_path / "teacher"), load_run(tmp_path / "student")
    agree = np.mean(np.concatenate([
        p.argmax(-1) == q.argmax(-1) for p, q in zip(predict(teacher.model, teacher.encode(raw)),
                                                     predict(student.model, student.encode(raw)), strict=True)]))
    assert agree >= 0.9, agree


@pytest.mark.parametrize(("section", "message"), [
    ('[distill]\nraw_text = "text:x.txt"\n', "distill.raw_text must be empty unless a tagger is distilled"),
    ('[distill]\nteacher = "runs/x"\nalpha = 1.5\n', r"distill.alpha must be in \[0, 1\]"),
    ('[distill]\nteacher = "runs/x"\n[training]\nentity_weight = 2.0\n', "entity_weight must be 1.0 when distilling"),
])
def test_bad_distillation_settings_are_refused(section, message):
    import tomllib

    from kerasrnn.config import Config

    raw = tomllib.loads('[data]\ntrain_file = "a"\ntest_file = "b"\n' + section)
    with pytest.raises(ValueError, match=message):
        Config.from_dict(raw)
