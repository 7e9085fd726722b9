"""Models and optimizers from a `Config`, and the training-history picture."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from kerasrnn.config import Config


def trained_rows(data) -> int:
    """How many token-embedding rows the training inputs can reach: one more than the largest id in `data`
    (an EncodedData; word dropout only writes the unknown id 1). The rows from there on never get a gradient."""
    from kerasrnn.text import UNK_ID

    return 1 + max([UNK_ID, *(int(ids.max()) for ids in data.token_ids if len(ids))])


def build_model(config: Config, vocab_size: int, num_labels: int, char_vocab_size: int,
                trainable_rows: int | None = None, elmo=None):
    """The config's task model (a SequenceTagger or TextClassifier on a ContextualEncoder). `trainable_rows`: the
    token embedding trains only the ids below it (`trained_rows` of the training data; None: all). `elmo`: a
    `kerasrnn.layers.ELMo` whose features join the encoder's word features (`model.elmo`)."""
    from kerasrnn.models import ContextualEncoder, SequenceTagger, TextClassifier

    m = config.model
    encoder = ContextualEncoder(
        vocabulary_size=vocab_size, embedding_dim=m.embedding_dim, cell=m.cell, num_layers=m.num_layers,
        units=m.units, bidirectional=m.bidirectional, output_dim=m.output_dim, dropout=m.dropout,
        char_vocabulary_size=char_vocab_size, char_embedding_dim=m.char_embedding_dim, char_filters=m.char_filters,
        char_kernel_size=m.char_kernel_size, char_highway_layers=m.char_highway_layers,
        max_word_chars=config.data.max_word_chars,
        token_embedding_trainable=not (m.static_vectors and m.static_vectors_mode == "frozen"),
        token_embedding_trainable_rows=trainable_rows, elmo=elmo, name="encoder",
    )
    if config.task.type == "tagging":
        return SequenceTagger(encoder, num_labels, dropout=m.head_dropout, crf=m.crf, name="tagger")
    return TextClassifier(encoder, num_labels, dropout=m.head_dropout, name="classifier")


def build_language_model(config: Config, vocab_size: int, char_vocab_size: int):
    """The config's BiLanguageModel."""
    from kerasrnn.models import BiLanguageModel

    m = config.model
    return BiLanguageModel(
        vocabulary_size=vocab_size, embedding_dim=m.embedding_dim, cell=m.cell, num_layers=m.num_layers,
        units=m.units, dropout=m.dropout, char_vocabulary_size=char_vocab_size,
        char_embedding_dim=m.char_embedding_dim, char_filters=m.char_filters, char_kernel_size=m.char_kernel_size,
        char_highway_layers=m.char_highway_layers, max_word_chars=config.data.max_word_chars,
        num_sampled=min(m.num_sampled, vocab_size),
        token_embedding_trainable=not (m.static_vectors and m.static_vectors_mode == "frozen"), residual=m.residual,
        projection=m.projection, name="bilm",
    )


def start_static_vectors(config: Config, embedding, vocab, keep_rows: int = 0) -> str:
    """Writes `model.static_vectors` into a token Embedding layer (rows of `vocab`, see kerasrnn.text.vectors for
    the rules), all but its first `keep_rows` rows (those a pre-trained run wrote); returns a line for the log. (The
    model builders freeze the layer in "frozen" mode.)"""
    from kerasrnn.text.vectors import load_static_vectors

    m = config.model
    vectors = load_static_vectors(m.static_vectors)
    if m.embedding_dim != vectors.dim:
        raise ValueError(f"model.static_vectors = {m.static_vectors!r} has {vectors.dim} dimensions: set "
                         f"model.embedding_dim = {vectors.dim} (it is {m.embedding_dim})")
    table, found = vectors.table(vocab.tokens, seed=config.training.seed)
    if keep_rows:
        table[:keep_rows] = embedding.get_weights()[0][:keep_rows]
        found = sum(t.lower() in vectors.index for t in vocab.tokens[keep_rows:])
    embedding.set_weights([table])
    rows = f"its {len(vocab) - keep_rows} rows after the pre-trained {keep_rows}" if keep_rows else f"{len(vocab)} words"
    return (f"token embedding started from {m.static_vectors} ({found} found of {rows}; "
            f"{m.static_vectors_mode.replace('_', '-')})")


def make_optimizer(t, total_steps: int):
    """Adam (beta1 0.9, beta2 0.999, clipnorm; `kerasrnn.optimizers.FusedAdam`: TensorFlow's fused kernel, textbook
    Adam on the embedding's sparse gradients too) on a CosineDecay schedule with linear warm-up."""
    from kerasrnn.optimizers import FusedAdam

    warmup = int(t.warmup_fraction * total_steps)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else t.learning_rate, decay_steps=max(total_steps - warmup, 1),
        alpha=t.min_learning_rate_ratio, warmup_target=t.learning_rate if warmup else None, warmup_steps=warmup,
    )
    return FusedAdam(learning_rate=schedule, beta_1=0.9, beta_2=0.999, clipnorm=t.clipnorm)


def plot_history(history: dict, metric: str, path: Path) -> None:
    """Training loss and the dev metric per epoch, side by side."""
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
