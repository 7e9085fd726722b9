"""Training and evaluation of a task model from a `Config`, into a run directory.

A run directory holds `model.keras`, `vocab.txt`, `chars.txt` (when the model reads characters), `labels.txt`,
`config.toml`, `metrics.json`, `history.png`, TensorBoard logs under `logs/` and the best checkpoint under
`checkpoints/`.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from kerasrnn import distribute
from kerasrnn import metrics as metric_fns
from kerasrnn.checkpointing import (
    STATE_FILE,
    EpochCheckpoint,
    FaultInjection,
    StopOnNaN,
    TrainingDiverged,
    atomic_save_model,
    atomic_write_json,
    read_state,
    restore_seed_states,
)
from kerasrnn.config import Config
from kerasrnn.data.pipeline import EncodedData, encode, steps_per_epoch, training_dataset
from kerasrnn.data.readers import FORMATS, Example, data_dir, read_examples
from kerasrnn.safe_load import load_model
from kerasrnn.text.vocabulary import Vocabulary


@dataclasses.dataclass
class Run:
    """What a trained run needs at inference: its config, model and vocabularies."""

    config: Config
    model: object
    vocab: Vocabulary
    labels: Vocabulary | None  # None for a language model
    char_vocab: Vocabulary | None

    def encode(self, examples) -> EncodedData:
        return encode(
            examples, self.vocab, None, char_vocab=self.char_vocab,
            max_word_chars=self.config.data.max_word_chars, max_length=self.config.data.max_length,
        )


def load_run(run_dir) -> Run:
    """Loads a run directory written by `train` (the model with safe_mode on)."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.keras").is_file():
        raise FileNotFoundError(f"{run_dir}: no model.keras here; is this a training run directory?")
    config = Config.load(run_dir / "config.toml")
    vocab = Vocabulary.load(run_dir / "vocab.txt", lowercase=config.data.lowercase)
    labels = (None if config.task.type == "language_model"
              else Vocabulary.load(run_dir / "labels.txt", special_tokens=False))
    char_vocab = Vocabulary.load(run_dir / "chars.txt") if config.data.use_chars else None
    model = load_model(run_dir / "model.keras")
    return Run(config, model, vocab, labels, char_vocab)


def read_split(config: Config, split: str, path: str | list | None = None) -> list[Example]:
    """The examples of a split: one file, or a list of files and globs whose entries may name their own format
    (`"tokens:wikitext2_partial/valid.txt"`, `"conllu:ud_english_ewt/*.conllu"`)."""
    files = path or {"train": config.data.train_file, "dev": config.data.dev_file, "test": config.data.test_file}[split]
    examples = []
    for entry in [files] if isinstance(files, str) else files:
        data_format, sep, name = entry.partition(":")
        if not sep or data_format not in FORMATS:
            data_format, name = config.data.format, entry
        if glob.has_magic(name):
            paths = sorted(glob.glob(os.path.expanduser(name))) or sorted(glob.glob(str(data_dir() / name)))
            if not paths:
                raise FileNotFoundError(f"{name}: no file matches this pattern here or in {data_dir()}")
        else:
            paths = [config.resolve_path(name)]
        for p in paths:
            examples.extend(read_examples(p, data_format, split=split))
    return examples


def split_off_dev(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Seeded hold-out of `fraction` of the examples as a dev set."""
    order = np.random.default_rng(seed).permutation(len(examples))
    n_dev = max(1, int(round(fraction * len(examples))))
    dev = set(order[:n_dev].tolist())
    return [e for i, e in enumerate(examples) if i not in dev], [e for i, e in enumerate(examples) if i in dev]


def build_model(config: Config, vocab_size: int, num_labels: int, char_vocab_size: int):
    from kerasrnn.models import ContextualEncoder, SequenceTagger, TextClassifier

    m = config.model
    encoder = ContextualEncoder(
        vocabulary_size=vocab_size, embedding_dim=m.embedding_dim, cell=m.cell, num_layers=m.num_layers,
        units=m.units, bidirectional=m.bidirectional, output_dim=m.output_dim, dropout=m.dropout,
        char_vocabulary_size=char_vocab_size, char_embedding_dim=m.char_embedding_dim, char_filters=m.char_filters,
        char_kernel_size=m.char_kernel_size, max_word_chars=config.data.max_word_chars, name="encoder",
    )
    if config.task.type == "tagging":
        return SequenceTagger(encoder, num_labels, dropout=m.head_dropout, name="tagger")
    return TextClassifier(encoder, num_labels, dropout=m.head_dropout, name="classifier")


def build_vocabularies(config: Config, examples, pretrained=None) -> tuple[Vocabulary, Vocabulary | None]:
    """The word and character vocabularies of the training examples; with a pre-trained run (`Run`), its
    vocabularies with the examples' new entries appended (pre-trained ids keep their meaning)."""
    d = config.data
    words = (e.tokens for e in examples)
    chars = ((c for c in tok) for e in examples for tok in e.tokens)
    if pretrained is not None:
        from kerasrnn.transfer import extend_vocabulary

        return (extend_vocabulary(pretrained.vocab, words, d.min_count),
                extend_vocabulary(pretrained.char_vocab, chars, d.char_min_count) if d.use_chars else None)
    return (Vocabulary.build(words, min_count=d.min_count, max_size=d.max_vocab, lowercase=d.lowercase),
            Vocabulary.build(chars, min_count=d.char_min_count) if d.use_chars else None)


def make_optimizer(t, total_steps: int):
    """Adam (beta1 0.9, beta2 0.999, clipnorm) on a CosineDecay schedule with linear warm-up."""
    warmup = int(t.warmup_fraction * total_steps)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else t.learning_rate, decay_steps=max(total_steps - warmup, 1),
        alpha=t.min_learning_rate_ratio, warmup_target=t.learning_rate if warmup else None, warmup_steps=warmup,
    )
    return keras.optimizers.Adam(learning_rate=schedule, beta_1=0.9, beta_2=0.999, clipnorm=t.clipnorm)


def predict(model, data: EncodedData, batch_size: int = 64, runner=None) -> list[np.ndarray] | np.ndarray:
    """Probabilities in input order: one [T, num_tags] array per sentence (tagging) or [N, num_labels].

    Pass `runner` (a KerasRunner of `model`) to reuse its traced function across calls."""
    from kerasrnn.runtime.runners import KerasRunner, run_batched

    outputs = run_batched(runner or KerasRunner(model=model), data, batch_size)
    return outputs if outputs and outputs[0].ndim == 2 else np.stack(outputs)


def score(config: Config, examples: list[Example], labels: Vocabulary, probs) -> dict[str, float]:
    """The task's metrics for predicted probabilities (from `predict`) against the examples' gold labels.

    BIO taggers (metric "f1") are decoded with `bio_decode` (the best valid BIO sequence), others by argmax."""
    if config.task.type == "tagging":
        true = [list(e.tags[: config.data.max_length]) for e in examples]
        if config.task.metric == "f1":
            pred = [metric_fns.bio_decode(p, labels.tokens) for p in probs]
        else:
            pred = [labels.decode(p.argmax(-1)) for p in probs]
        if len(true) != len(pred):
            raise ValueError(f"{len(true)} sentences but {len(pred)} predictions")
        if config.task.metric == "f1":
            return metric_fns.entity_f1(true, pred)
        return {"accuracy": metric_fns.token_accuracy(true, pred)}
    true = np.asarray([e.label for e in examples], dtype=object)
    pred = np.asarray(labels.decode(np.asarray(probs).argmax(-1)), dtype=object)
    oos = config.data.oos_label
    if oos:
        in_scope = true != oos
        result = {"accuracy": metric_fns.accuracy(true[in_scope], pred[in_scope]),
                  "accuracy_all": metric_fns.accuracy(true, pred)}
        if (~in_scope).any():
            result["oos_recall"] = float(np.mean(pred[~in_scope] == oos))
        return result
    return {"accuracy": metric_fns.accuracy(true, pred)}


def _plot_history(history: dict, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, history["loss"], marker="o", label="train loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax2.plot(epochs, history[f"val_{metric}"], marker="o", color="tab:green", label=f"dev {metric}")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel(metric)
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(config: Config, output_dir, *, verbose: int | None = None, resume: bool = False) -> dict:
    """Trains the config's task model, keeps the best epoch on the dev metric, evaluates dev and test,
    and writes the run directory. Returns the metrics dict written to `metrics.json`.

    `resume=True` continues an interrupted run in `output_dir` from its last epoch checkpoint (see
    `kerasrnn.checkpointing`); the config must be the one the run was started with."""
    if config.task.type == "language_model":
        from kerasrnn.pretraining import train_language_model

        if resume or distribute.num_workers() > 1:
            raise ValueError("language-model pre-training runs on one process from the start: --resume and "
                             "multi-worker training are for task models")
        return train_language_model(config, output_dir, verbose=verbose)

    strategy = distribute.make_strategy()  # before any other TensorFlow work
    workers = distribute.num_workers()
    chief = distribute.is_chief()
    # Only the chief writes the run directory; other workers write to a scratch folder they delete at the end.
    output_dir = Path(output_dir) if chief else Path(tempfile.mkdtemp(prefix="kerasrnn-worker-"))
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "checkpoints").mkdir(exist_ok=True)
    t = config.training
    keras.utils.set_random_seed(t.seed)
    verbose = verbose if verbose is not None else (1 if sys.stdout.isatty() else 2)
    try:
        return _train(config, output_dir, strategy, workers, verbose, resume and chief)
    finally:
        if not chief:
            shutil.rmtree(output_dir, ignore_errors=True)


def weights_fingerprint(model) -> str:
    """A short hash of all weights (float32 bytes): equal on every worker of a multi-worker run."""
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def _train(config: Config, output_dir: Path, strategy, workers: int, verbose: int, resume: bool) -> dict:
    t = config.training
    checkpoint_dir = output_dir / "checkpoints"
    state = read_state(checkpoint_dir) if resume else None
    if resume and state is None:
        raise ValueError(f"--resume: {checkpoint_dir} holds no {STATE_FILE}; nothing to resume")
    if state is not None and (output_dir / "config.toml").read_text(encoding="utf-8") != config.to_toml():
        raise ValueError(f"--resume: the config differs from {output_dir / 'config.toml'}, which the interrupted "
                         "run was started with; resume with that config")
    for leftover in checkpoint_dir.glob("*.tmp*"):  # half-written by a killed process; never read
        leftover.unlink()

    train_examples = read_split(config, "train")
    if config.data.dev_file:
        dev_examples = read_split(config, "dev")
        if config.data.dev_train_fraction > 0:
            dev_examples, moved = split_off_dev(dev_examples, config.data.dev_train_fraction, t.seed)
            train_examples = train_examples + moved
    else:
        train_examples, dev_examples = split_off_dev(train_examples, config.data.dev_fraction, t.seed)
    test_examples = read_split(config, "test")

    pretrained = None
    if config.model.init_from:
        from kerasrnn.transfer import check_compatible, load_pretrained

        pretrained = load_pretrained(config.model.init_from)
        check_compatible(config, pretrained)
    vocab, char_vocab = build_vocabularies(config, train_examples, pretrained)
    if config.task.type == "tagging":
        labels = Vocabulary.for_labels(tag for e in train_examples for tag in e.tags)
    else:
        labels = Vocabulary.for_labels(e.label for e in train_examples)

    def enc(examples):
        return encode(examples, vocab, labels, char_vocab=char_vocab, max_word_chars=config.data.max_word_chars,
                      max_length=config.data.max_length)

    # Encoding the test split now fails before training, not after, on a test label never seen in training.
    train_data, dev_data, test_data = enc(train_examples), enc(dev_examples), enc(test_examples)

    vocab.save(output_dir / "vocab.txt")
    labels.save(output_dir / "labels.txt")
    if char_vocab is not None:
        char_vocab.save(output_dir / "chars.txt")
    config.save(output_dir / "config.toml")

    steps = steps_per_epoch(train_data, t.batch_size, min_rows=workers)
    with strategy.scope():
        model = build_model(config, len(vocab), len(labels), len(char_vocab) if char_vocab else 0)
        if pretrained is not None and state is None:  # on resume the checkpoint below holds every weight
            from kerasrnn.transfer import transfer_weights

            written = transfer_weights(model, pretrained, freeze=config.model.freeze_encoder)
            print(f"{config.task.name}: started {', '.join(written)} from {config.model.init_from} "
                  f"({len(pretrained.vocab)} of {len(vocab)} words pre-trained"
                  f"{'; frozen' if config.model.freeze_encoder else ''})", flush=True)
        model.compile(optimizer=make_optimizer(t, steps * t.epochs),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        if state is not None:  # weights, optimizer moments and step (so the schedule) of the last epoch
            checkpoint = load_model(checkpoint_dir / state["checkpoint"])
            model.optimizer.build(model.trainable_variables)
            model.set_weights(checkpoint.get_weights())
            for mine, saved in zip(model.optimizer.variables, checkpoint.optimizer.variables, strict=True):
                mine.assign(saved)
            if "seed_states" in state:  # dropout masks continue where the interrupted run's would have
                restore_seed_states(model, state["seed_states"])

    metric = config.task.metric
    monitor = DevMetric(config, dev_examples, dev_data, labels, checkpoint_dir / "best.keras", patience=t.patience)
    initial_epoch, seconds_before, history_before = 0, 0.0, {}
    if state is not None:
        initial_epoch, seconds_before = state["completed_epochs"], state["train_seconds"]
        history_before = state["history"]
        monitor.best, monitor.best_epoch = state["best"], state["best_epoch"]
        monitor.best_weights = load_model(checkpoint_dir / "best.keras").get_weights()
        print(f"{config.task.name}: resuming after epoch {initial_epoch} from {checkpoint_dir / state['checkpoint']} "
              f"(best dev {metric} {monitor.best:.4f} at epoch {monitor.best_epoch + 1})", flush=True)
    checkpointer = EpochCheckpoint(checkpoint_dir, monitor, history_before, seconds_before,
                                   clock=lambda: time.perf_counter() - start)  # `start` is set just before fit
    nan_stop = StopOnNaN()
    callbacks = [
        nan_stop,
        FaultInjection(),
        monitor,
        checkpointer,
        keras.callbacks.TensorBoard(log_dir=str(output_dir / "logs"), write_graph=False),
    ]
    print(f"{config.task.name}: {len(train_examples)} train / {len(dev_examples)} dev / {len(test_examples)} test "
          f"examples, vocabulary {len(vocab)}, {len(labels)} labels, {model.count_params():,} parameters, "
          f"{steps} steps per epoch; {distribute.describe(strategy)}", flush=True)
    class_weights = None
    if t.entity_weight != 1.0 and config.task.type == "tagging":
        class_weights = np.array([1.0 if tag == "O" else t.entity_weight for tag in labels.tokens], np.float32)
    if workers > 1:
        # Each worker takes its rows of every global batch, so all workers step through the same batches.
        dataset = strategy.distribute_datasets_from_function(lambda ctx: training_dataset(
            train_data, t.batch_size, seed=t.seed, word_dropout=t.word_dropout, class_weights=class_weights,
            shard=(ctx.input_pipeline_id, ctx.num_input_pipelines)))
        sample = next(iter(training_dataset(train_data, t.batch_size, seed=t.seed, class_weights=class_weights)))
        _fit_multi_worker(model, strategy, sample)
    else:
        dataset = training_dataset(train_data, t.batch_size, seed=t.seed, word_dropout=t.word_dropout,
                                   class_weights=class_weights, start_epoch=initial_epoch)
    start = time.perf_counter()
    model.fit(dataset, epochs=t.epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=verbose,
              shuffle=False, initial_epoch=initial_epoch)
    if nan_stop.where is not None:
        epoch, step = nan_stop.where
        last = read_state(checkpoint_dir)
        kept = (f"the last good checkpoint is {checkpoint_dir / last['checkpoint']} (after epoch "
                f"{last['completed_epochs']}); --resume continues from it" if last else "no epoch had finished")
        raise TrainingDiverged(f"{config.task.name}: the training loss became NaN or infinite at epoch {epoch}, "
                               f"step {step}; {kept}. Lower training.learning_rate or training.clipnorm.")
    train_seconds = seconds_before + time.perf_counter() - start
    history = checkpointer.history
    epochs_run = len(history["loss"])
    model.set_weights(monitor.best_weights)
    atomic_save_model(model, output_dir / "model.keras")

    result = {
        "task": config.task.name,
        "metric": metric,
        "dev": score(config, dev_examples, labels, predict(model, dev_data)),
        "test": score(config, test_examples, labels, predict(model, test_data)),
        "train_seconds": round(train_seconds, 1),
        "train_tokens_per_second": round(float(train_data.lengths.sum()) * epochs_run / train_seconds, 1),
        "epochs": epochs_run,
        "best_epoch": monitor.best_epoch + 1,
        "parameters": model.count_params(),
        "distribution": distribute.describe(strategy),
        "weights_fingerprint": weights_fingerprint(model),
        "history": {k: [round(float(x), 6) for x in v] for k, v in history.items()},
    }
    atomic_write_json(result, output_dir / "metrics.json")
    _plot_history(history, metric, output_dir / "history.png")
    print(f"{config.task.name}: best epoch {result['best_epoch']}, dev {metric} {result['dev'][metric]:.4f}, "
          f"test {metric} {result['test'][metric]:.4f}; weights fingerprint {result['weights_fingerprint']}",
          flush=True)
    return result


def _fit_multi_worker(model, strategy, sample) -> None:
    """Works around two faults of Keras 3.15 `fit()` under MultiWorkerMirroredStrategy (keras-team/keras#20329,
    #20585), on this model instance only:
    - fit() first all-reduces one input batch to build the model symbolically, which fails on dict inputs and on
      batches whose width differs between workers: build from a local batch instead and skip that step;
    - fit() averages the step's logs with `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars: the
      step returns each log as a 1-element vector, whose mean over workers is the global value."""
    import tensorflow as tf

    with strategy.scope():
        model._symbolic_build(data_batch=sample)
    model._maybe_symbolic_build = lambda *args, **kwargs: None
    train_step = model.train_step
    model.train_step = lambda data: {k: tf.reshape(v, [1]) for k, v in train_step(data).items()}


def evaluate(run_dir, path, *, artifact=None) -> dict:
    """Scores the run's model, or a `.tflite` / `.onnx` artifact of it, on a file of the run's data format;
    writes `eval.json` into the run directory."""
    from kerasrnn.runtime.runners import load_runner, run_batched

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    examples = read_examples(path, run.config.data.format, split="test")
    for e in examples:
        for label in e.tags if run.config.task.type == "tagging" else [e.label]:
            run.labels.lookup(label)
    data = run.encode(examples)
    if artifact is None:
        probs = predict(run.model, data)
    else:
        encoder = run.model.encoder
        runner = load_runner(artifact, encoder.vocabulary_size, encoder.char_vocabulary_size, encoder.max_word_chars)
        probs = run_batched(runner, data)
    result = score(run.config, examples, run.labels, probs)
    if artifact is not None:
        result["artifact"] = str(artifact)
    atomic_write_json(result, run_dir / "eval.json")
    return result


class DevMetric(keras.callbacks.Callback):
    """Keras callback: the task metric on the dev set after each epoch (logged as `val_<metric>`), the best
    weights kept in memory and saved atomically to `checkpoint_path`."""

    def __init__(self, config, examples, data, labels, checkpoint_path, patience: int | None = None):
        super().__init__()
        self.config, self.examples, self.data, self.labels = config, examples, data, labels
        self.checkpoint_path = Path(checkpoint_path)
        self.best, self.best_epoch, self.best_weights = -np.inf, -1, None
        self.patience = patience
        self.runner = None

    def on_epoch_end(self, epoch, logs=None):
        from kerasrnn.runtime.runners import KerasRunner

        if not np.isfinite(logs.get("loss", 0.0)):
            return  # diverged: StopOnNaN has stopped training; keep the last good checkpoint
        metric = self.config.task.metric
        self.runner = self.runner or KerasRunner(model=self.model)
        probs = predict(self.model, self.data, runner=self.runner)
        value = score(self.config, self.examples, self.labels, probs)[metric]
        logs[f"val_{metric}"] = value
        if value > self.best:
            self.best, self.best_epoch = value, epoch
            self.best_weights = self.model.get_weights()
            atomic_save_model(self.model, self.checkpoint_path)
        if self.patience is not None and epoch - self.best_epoch >= self.patience:
            self.model.stop_training = True  # early stopping on the dev metric
