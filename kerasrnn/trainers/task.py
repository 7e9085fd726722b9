"""Training of a task model from a `Config`, into a run directory (see `kerasrnn.run` for what it holds)."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

import kerasrnn.trainers.distribute as distribute
from kerasrnn.config import Config
from kerasrnn.data.pipeline import EncodedData, steps_per_epoch, training_dataset
from kerasrnn.data.readers import Example
from kerasrnn.files import atomic_save_model, atomic_write_json, make_dir
from kerasrnn.layers import ELMo
from kerasrnn.metrics import score
from kerasrnn.models.sequence_tagger import crf_decoding
from kerasrnn.preprocessor import Preprocessor
from kerasrnn.run import read_splits
from kerasrnn.safe_load import load_model
from kerasrnn.trainers.build import build_model, make_optimizer, plot_history, start_static_vectors, trained_rows
from kerasrnn.trainers.callbacks import DevMetric, FaultInjection, StopOnNaN
from kerasrnn.trainers.checkpoints import (
    STATE_FILE,
    EpochCheckpoint,
    RestoreMetrics,
    TrainingDiverged,
    read_state,
    restore_seed_states,
    seed_states,
)
from kerasrnn.trainers.evaluation import predict
from kerasrnn.trainers.interrupt import StopOnSignal, TrainingInterrupted
from kerasrnn.trainers.lock import run_lock
from kerasrnn.trainers.threads import configure_threads
from kerasrnn.trainers.transfer import check_compatible, load_pretrained, transfer_weights


def train(config: Config, output_dir, *, verbose: int | None = None, resume: bool = False,
          worker_timeout: float = distribute.DEFAULT_WORKER_TIMEOUT) -> dict:
    """Trains the config's task model (or pre-trains its language model), keeps the best epoch on the dev
    metric, evaluates dev and test, and writes the run directory. Returns the metrics dict written to
    `metrics.json`.

    `resume=True` continues an interrupted run in `output_dir` from its last epoch checkpoint (see
    `kerasrnn.trainers.checkpoints`); the config must be the one the run was started with. SIGTERM and Ctrl-C stop
    it resumably (`kerasrnn.trainers.interrupt`). `worker_timeout`: seconds after which a silent worker of a
    multi-worker run stops the others (`distribute.WorkerLost`)."""
    verbose = verbose if verbose is not None else (1 if sys.stdout.isatty() else 2)
    configure_threads()  # before any TensorFlow work (a no-op where it already runs)
    if config.task.type == "language_model":
        from kerasrnn.trainers.language_model import train_language_model

        if resume or distribute.num_workers() > 1:
            raise ValueError("language-model pre-training runs on one process from the start: --resume and "
                             "multi-worker training are for task models")
        return train_language_model(config, output_dir, verbose=verbose)

    strategy = distribute.make_strategy(worker_timeout)  # before any other TensorFlow work
    chief = distribute.is_chief()
    # Only the chief writes the run directory; other workers write to a scratch folder they delete at the end.
    output_dir = Path(output_dir) if chief else Path(tempfile.mkdtemp(prefix="kerasrnn-worker-"))
    make_dir(output_dir / "checkpoints")
    keras.utils.set_random_seed(config.training.seed)
    try:
        with run_lock(output_dir):
            try:
                return _train(config, output_dir, strategy, verbose, resume)
            except Exception as e:
                lost = distribute.training_failure(e, worker_timeout)
                if lost is None:
                    raise
                raise lost from None
    finally:
        if not chief:
            shutil.rmtree(output_dir, ignore_errors=True)


def weights_fingerprint(model) -> str:
    """A short hash of all weights (float32 bytes): equal on every worker of a multi-worker run."""
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class Splits:
    """Each split read and encoded once: examples and their ids with targets."""

    examples: dict[str, list[Example]]
    data: dict[str, EncodedData]


def _resume_state(config: Config, output_dir: Path, resume: bool) -> dict | None:
    checkpoint_dir = output_dir / "checkpoints"
    state = read_state(checkpoint_dir) if resume else None
    if resume and state is None:
        raise ValueError(f"--resume: {checkpoint_dir} holds no {STATE_FILE}; nothing to resume")
    if state is not None and (output_dir / "config.toml").read_text(encoding="utf-8") != config.to_toml():
        raise ValueError(f"--resume: the config differs from {output_dir / 'config.toml'}, which the interrupted "
                         "run was started with; resume with that config")
    for leftover in checkpoint_dir.glob("*.tmp*"):  # half-written by a killed process; never read
        leftover.unlink()
    return state


def _shared_resume_state(config: Config, output_dir: Path, resume: bool, strategy) -> dict | None:
    """`_resume_state` on the chief, the same on every worker (each worker of a run gets the same command; the
    state is exchanged in every multi-worker run, so that all of them make the same collective calls)."""
    if distribute.num_workers() < 2:
        return _resume_state(config, output_dir, resume)
    found = {"state": None, "error": None}
    if distribute.is_chief():
        try:
            found["state"] = _resume_state(config, output_dir, resume)
        except ValueError as e:
            found["error"] = str(e)
    found = distribute.broadcast_json(strategy, found)
    if found["error"]:
        raise ValueError(found["error"])
    if found["state"] and found["state"].get("steps_into_epoch"):
        raise ValueError(f"--resume: {found['state']['checkpoint']} was written mid-epoch by a one-process run; "
                         "resume it on one process")
    return found["state"]


def _prepare(config: Config, output_dir: Path):
    """Reads and encodes the splits, builds the preprocessor (from the pre-trained run's when `init_from`), and
    writes the preprocessor files and `config.toml`. Returns (preprocessor, splits, pre-trained run or None)."""
    train_examples, dev_examples, test_examples = read_splits(config)
    pretrained = None
    if config.model.init_from:
        pretrained = load_pretrained(config.model.init_from)
        check_compatible(config, pretrained)
    preprocessor = Preprocessor.build(config, train_examples, pretrained.preprocessor if pretrained else None)
    examples = {"train": train_examples, "dev": dev_examples, "test": test_examples}
    # Encoding the test split now fails before training, not after, on a test label never seen in training.
    splits = Splits(examples, {k: preprocessor.encode(v, targets=True) for k, v in examples.items()})
    preprocessor.save(output_dir)
    config.save(output_dir / "config.toml")
    return preprocessor, splits, pretrained


def _restore(model, checkpoint_dir: Path, state: dict, strategy) -> None:
    """Weights, optimizer moments and step (so the schedule) of the checkpoint, and the dropout seed states: read
    by the chief, sent to the other workers of a multi-worker run. The optimizer must be built."""
    if distribute.is_chief():
        checkpoint = load_model(checkpoint_dir / state["checkpoint"])
        model.set_weights(checkpoint.get_weights())
        for mine, saved in zip(model.optimizer.variables, checkpoint.optimizer.variables, strict=True):
            mine.assign(saved)
        if "seed_states" in state:  # dropout masks continue where the interrupted run's would have
            restore_seed_states(model, state["seed_states"])
    if distribute.num_workers() > 1:
        variables = [*model.weights, *model.optimizer.variables, *seed_states(model)]
        values = distribute.broadcast(strategy, [np.asarray(v) for v in variables])
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)


def _best_weights(model, checkpoint_dir: Path, strategy) -> list:
    """The best epoch's weights (`checkpoints/best.keras`), read by the chief, sent to the other workers."""
    # the other workers pass their own weights: only the shapes count
    weights = load_model(checkpoint_dir / "best.keras").get_weights() if distribute.is_chief() else model.get_weights()
    return distribute.broadcast(strategy, weights) if distribute.num_workers() > 1 else weights


def _dataset(config: Config, data: EncodedData, strategy, model, class_weights, initial_epoch: int,
             skip_steps: int = 0):
    """The training batches from epoch `initial_epoch` on, less its first `skip_steps` (a run resumed mid-epoch)."""
    t = config.training
    if distribute.num_workers() > 1:
        # Each worker takes its rows of every global batch, so all workers step through the same batches.
        dataset = strategy.distribute_datasets_from_function(lambda ctx: training_dataset(
            data, t.batch_size, seed=t.seed, word_dropout=t.word_dropout, class_weights=class_weights,
            shard=(ctx.input_pipeline_id, ctx.num_input_pipelines), start_epoch=initial_epoch))
        sample = next(iter(training_dataset(data, t.batch_size, seed=t.seed, class_weights=class_weights)))
        _fit_multi_worker(model, strategy, sample)
        return dataset
    return training_dataset(data, t.batch_size, seed=t.seed, word_dropout=t.word_dropout,
                            class_weights=class_weights, start_epoch=initial_epoch).skip(skip_steps)


def _train(config: Config, output_dir: Path, strategy, verbose: int, resume: bool) -> dict:
    t = config.training
    checkpoint_dir = output_dir / "checkpoints"
    state = _shared_resume_state(config, output_dir, resume, strategy)
    preprocessor, splits, pretrained = _prepare(config, output_dir)
    vocab, labels, char_vocab = preprocessor.vocab, preprocessor.labels, preprocessor.char_vocab
    train_data, teacher = splits.data["train"], None
    if config.distill.teacher:
        train_data, teacher = _distillation(config, splits, preprocessor)

    steps = steps_per_epoch(train_data, t.batch_size, min_rows=distribute.num_workers())
    with strategy.scope():
        elmo = ELMo(pretrained.model, name="elmo") if config.model.elmo else None
        model = build_model(config, len(vocab), len(labels), len(char_vocab) if char_vocab else 0,
                            trainable_rows=trained_rows(train_data), elmo=elmo)
        copied = pretrained is not None and elmo is None
        if copied:  # on resume the checkpoint below overwrites the weights; the freezing stays
            written = transfer_weights(model, pretrained, freeze=config.model.freeze_encoder)
        if copied and state is None:
            print(f"{config.task.name}: started {', '.join(written)} from {config.model.init_from} "
                  f"({len(pretrained.vocab)} of {len(vocab)} words pre-trained"
                  f"{'; frozen' if config.model.freeze_encoder else ''})", flush=True)
        if elmo is not None and state is None:
            print(f"{config.task.name}: ELMo features from {config.model.init_from} (frozen; a scalar mix of its "
                  f"{len(elmo.bilm.layer_dims)} layers, {elmo.output_dim} wide; {len(pretrained.vocab)} of "
                  f"{len(vocab)} words known to it)", flush=True)
        if config.model.static_vectors and state is None:
            kept = len(pretrained.vocab) if copied else 0
            print(f"{config.task.name}: " + start_static_vectors(config, model.encoder.token_embedding, vocab, kept),
                  flush=True)
        if teacher is None and t.label_smoothing:
            from kerasrnn.losses import SmoothedSparseCrossentropy

            loss = SmoothedSparseCrossentropy(t.label_smoothing)
        elif teacher is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        else:
            from kerasrnn.losses import DistillationLoss

            loss = DistillationLoss(config.distill.temperature, config.distill.alpha)
        model.compile(optimizer=make_optimizer(t, steps * t.epochs), loss=loss)
        if state is not None:
            model.optimizer.build(model.trainable_variables)
    if state is not None:  # outside the scope: loading the checkpoint there would make collective variables
        _restore(model, checkpoint_dir, state, strategy)

    metric = config.task.metric
    monitor = DevMetric(config, splits.examples["dev"], splits.data["dev"], labels, checkpoint_dir / "best.keras",
                        patience=t.patience)
    initial_epoch, steps_done, seconds_before, history_before = 0, 0, 0.0, {}
    if state is not None:
        initial_epoch, seconds_before = state["completed_epochs"], state["train_seconds"]
        steps_done = state.get("steps_into_epoch", 0)
        history_before = state["history"]
        monitor.best, monitor.best_epoch = state["best"], state["best_epoch"]
        monitor.best_weights = _best_weights(model, checkpoint_dir, strategy)
        where = f"step {steps_done} of epoch {initial_epoch + 1}" if steps_done else f"epoch {initial_epoch}"
        print(f"{config.task.name}: resuming after {where} from {checkpoint_dir / state['checkpoint']} "
              f"(best dev {metric} {monitor.best:.4f} at epoch {monitor.best_epoch + 1})", flush=True)
    checkpointer = EpochCheckpoint(checkpoint_dir, monitor, history_before, seconds_before,
                                   clock=lambda: time.perf_counter() - start)  # `start` is set just before fit
    nan_stop = StopOnNaN()
    callbacks = [nan_stop, FaultInjection(initial_epoch * steps + steps_done), monitor, checkpointer,
                 keras.callbacks.TensorBoard(log_dir=str(output_dir / "logs"), write_graph=False)]
    stopper = None
    if distribute.num_workers() < 2:  # see kerasrnn.trainers.interrupt for multi-worker runs
        stopper = StopOnSignal(steps, steps_done)
        callbacks.insert(0, stopper)
        monitor.interrupt = checkpointer.interrupt = stopper
    n = {k: len(v) for k, v in splits.examples.items()}
    print(f"{config.task.name}: {n['train']} train / {n['dev']} dev / {n['test']} test "
          f"examples, vocabulary {len(vocab)}, {len(labels)} labels, {model.count_params():,} parameters, "
          f"{steps} steps per epoch; {distribute.describe(strategy)}", flush=True)
    held = model.encoder.token_embedding_trainable_rows
    if held is not None and model.encoder.token_embedding_trainable:
        print(f"{config.task.name}: the token embedding trains its first {held:,} rows; no training input reads the "
              f"other {len(vocab) - held:,}, which stay fixed (kerasrnn.layers.TokenEmbedding)", flush=True)
    class_weights = None
    if t.entity_weight != 1.0 and config.task.type == "tagging":
        class_weights = np.array([1.0 if tag == "O" else t.entity_weight for tag in labels.tokens], np.float32)
    start = time.perf_counter()
    stopped = False
    if steps_done:  # the rest of the epoch the run was stopped in, then the epochs after it
        rest = _dataset(config, train_data, strategy, model, class_weights, initial_epoch, steps_done)
        model.fit(rest, epochs=initial_epoch + 1, steps_per_epoch=steps - steps_done, verbose=verbose,
                  callbacks=[*callbacks, RestoreMetrics(state["metrics_state"])], shuffle=False,
                  initial_epoch=initial_epoch)
        initial_epoch, stopped = initial_epoch + 1, model.stop_training
    if not stopped and initial_epoch < t.epochs:
        dataset = _dataset(config, train_data, strategy, model, class_weights, initial_epoch)
        model.fit(dataset, epochs=t.epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=verbose,
                  shuffle=False, initial_epoch=initial_epoch)
    if nan_stop.where is None and stopper is not None and stopper.stopped_at is not None:
        _stop_interrupted(config, output_dir, checkpointer, stopper, steps)
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
        **{split: score(config, splits.examples[split], labels, predict(model, splits.data[split]),
                        crf_decoding(model))
           for split in ("dev", "test")},
        "train_seconds": round(train_seconds, 1),
        "train_tokens_per_second": round(float(train_data.lengths.sum()) * epochs_run / train_seconds, 1),
        "epochs": epochs_run,
        "best_epoch": monitor.best_epoch + 1,
        "parameters": model.count_params(),
        "distribution": distribute.describe(strategy),
        "weights_fingerprint": weights_fingerprint(model),
        "history": {k: [round(float(x), 6) for x in v] for k, v in history.items()},
    }
    if teacher is not None:
        result["distill"] = {"teacher": teacher.path, "teacher_parameters": teacher.parameters,
                             "parameter_ratio": round(model.count_params() / teacher.parameters, 4),
                             "teacher_test": teacher.test_metrics, "temperature": config.distill.temperature,
                             "alpha": config.distill.alpha, "raw_sentences": len(train_data) - len(splits.data["train"])}
    atomic_write_json(result, output_dir / "metrics.json")
    plot_history(history, metric, output_dir / "history.png")
    print(f"{config.task.name}: best epoch {result['best_epoch']}, dev {metric} {result['dev'][metric]:.4f}, "
          f"test {metric} {result['test'][metric]:.4f}; weights fingerprint {result['weights_fingerprint']}",
          flush=True)
    return result


def _distillation(config: Config, splits: Splits, preprocessor):
    """The training data with the teacher's soft targets (and the raw sentences it labels), and the teacher."""
    from kerasrnn.run import read_split
    from kerasrnn.trainers.distill import Teacher, distillation_data

    d = config.distill
    teacher = Teacher.load(d.teacher, preprocessor.labels.tokens, config.task.type, d.temperature)
    soft = teacher.soft_targets(splits.examples["train"], splits.data["train"].lengths)
    raw = raw_soft = None
    if d.raw_text:
        raw_examples = read_split(config, "train", d.raw_text)
        if d.raw_sentences and len(raw_examples) > d.raw_sentences:
            pick = np.random.default_rng(config.training.seed).choice(len(raw_examples), d.raw_sentences,
                                                                      replace=False)
            raw_examples = [raw_examples[i] for i in sorted(pick)]
        raw = preprocessor.encode(raw_examples)
        raw_soft = teacher.soft_targets(raw_examples, raw.lengths)
    print(f"{config.task.name}: distilling {d.teacher} ({teacher.parameters:,} parameters; T = {d.temperature}, "
          f"alpha = {d.alpha}){f' with {len(raw)} raw sentences it labels' if raw is not None else ''}", flush=True)
    return distillation_data(splits.data["train"], soft, raw, raw_soft), teacher


def _stop_interrupted(config: Config, output_dir: Path, checkpointer: EpochCheckpoint, stopper: StopOnSignal,
                      steps: int):
    """Writes the checkpoint of a run a signal stopped (mid-epoch; at an epoch boundary the epoch's own checkpoint
    is it) and raises `TrainingInterrupted` with the command that continues the run."""
    done, step = stopper.stopped_at
    if step:
        path = checkpointer.write(done, steps=step)
        where = f"after step {step} of {steps} of epoch {done + 1}"
    else:
        path = output_dir / "checkpoints" / read_state(output_dir / "checkpoints")["checkpoint"]
        where = f"after epoch {done}"
    command = (f"python -m training.train --config {output_dir / 'config.toml'} --output-dir {output_dir} "
               "--resume")
    raise TrainingInterrupted(f"{config.task.name}: stopped by {signal.Signals(stopper.signum).name} {where}; "
                              f"checkpoint {path}. Continue with: {command}", stopper.signum)


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
