"""From model.fit to INT8 TFLite and ONNX: a plain Keras BiLSTM POS tagger, as a notebook user writes it.

`.venv/bin/python examples/notebook_export.py [--output-dir runs/notebook] [--epochs 3]` trains
Embedding(mask_zero) -> Bidirectional(LSTM) -> Dense on UD English EWT (ids from a kerasrnn Vocabulary), saves
`model.keras`, exports it with `kerasrnn.export.export_model` (calibration: training rows, check: the test split)
and prints the report: the test accuracy of the Keras model and of every artifact, parity, padding, size, latency.
"""

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from kerasrnn.data import data_dir, read_conllu
from kerasrnn.export.exporter import ExportSettings, export_model
from kerasrnn.text import Vocabulary


def to_ids(sentences, vocab, tags, width=64):
    x = np.zeros((len(sentences), width), "int32")
    y = np.zeros((len(sentences), width), "int32")
    for i, s in enumerate(sentences):
        n = min(len(s.tokens), width)
        x[i, :n] = vocab.encode(s.tokens[:n])
        y[i, :n] = tags.encode(s.tags[:n])
    return x, y


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="runs/notebook")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    ewt = data_dir() / "ud_english_ewt"
    train, test = read_conllu(ewt / "en_ewt-ud-train.conllu"), read_conllu(ewt / "en_ewt-ud-test.conllu")
    vocab = Vocabulary.build((s.tokens for s in train), min_count=2, lowercase=True)
    tags = Vocabulary.for_labels(t for s in train for t in s.tags)
    x_train, y_train = to_ids(train, vocab, tags)
    x_test, y_test = to_ids(test, vocab, tags)

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((None,), dtype="int32", name="token_ids"),
        keras.layers.Embedding(len(vocab), 100, mask_zero=True),
        keras.layers.Bidirectional(keras.layers.LSTM(128, return_sequences=True)),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(len(tags)),
    ], name="notebook_tagger")
    model.compile(optimizer=keras.optimizers.Adam(2e-3, clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=2)
    model.save(out / "model.keras")

    export_model(out / "model.keras", out / "export", x_train[:2000], check=x_test, labels=y_test,
                 settings=ExportSettings(latency_runs=50))
    print((out / "export" / "report.md").read_text())


if __name__ == "__main__":
    main()
