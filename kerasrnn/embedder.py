"""Contextual word vectors from a trained run: `Embedder.load(run_dir).embed(sentences)`."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from kerasrnn.data.pipeline import EncodedData, encode, ordered_batches
from kerasrnn.data.readers import Example
from kerasrnn.text.tokenizer import WordTokenizer

NO_LIMIT = 1 << 30


class Embedder:
    """Per-token vectors from a BiLM run (ELMo layers) or from the encoder of any task run.

    Layer 0 is the static word representation (word embedding, plus character CNN features when the model reads
    characters): a word gets the same vector in every context. Layer i >= 1 is recurrent layer i, forward and
    backward states concatenated: the vector depends on the whole sentence. `layer="mean"` averages all layers
    (they must have one size, as in `bilm_pretrain`: 128 + 128 = 2 x 128); a list of weights mixes the layers
    (softmax-normalised, as ELMo's scalar mix).

    Vectors do not depend on how sentences are batched or padded: each batch is right-padded and the recurrent
    layers are masked.

    Example:
    >>> embedder = Embedder.load("runs/bilm_pretrain")                         # doctest: +SKIP
    >>> [v.shape for v in embedder.embed(["I sat by the river bank .", ["The", "bank", "closed"]])]  # doctest: +SKIP
    [(7, 256), (3, 256)]
    """

    def __init__(self, model, vocab, char_vocab=None, max_word_chars: int = 16, tokenizer=None, batch_size: int = 32):
        import tensorflow as tf

        from kerasrnn.models import BiLanguageModel

        self.vocab, self.char_vocab, self.max_word_chars = vocab, char_vocab, max_word_chars
        self.tokenizer = tokenizer or WordTokenizer()
        self.batch_size = batch_size
        if isinstance(model, BiLanguageModel):
            layers_model = model
            self.layer_dims = model.layer_dims
        else:
            enc = model.encoder if hasattr(model, "encoder") else model
            outputs = [enc.word_features.output] + [layer.output for layer in enc.recurrent_layers]
            layers_model = keras.Model(enc.input, outputs)
            self.layer_dims = [int(x.shape[-1]) for x in outputs]
        self.model = model
        self._fn = tf.function(lambda inputs: layers_model(inputs, training=False), reduce_retracing=True)

    @classmethod
    def from_run(cls, run, **kwargs) -> Embedder:
        """An embedder for a loaded run (`kerasrnn.run.Run`)."""
        return cls(run.model, run.vocab, run.char_vocab, run.config.data.max_word_chars, **kwargs)

    @classmethod
    def load(cls, run_dir, **kwargs) -> Embedder:
        """An embedder for a run directory (a BiLM run or a task run), its model loaded with safe_mode on."""
        from kerasrnn.run import load_run

        return cls.from_run(load_run(run_dir), **kwargs)

    @property
    def num_layers(self) -> int:
        """Number of layers including the static layer 0."""
        return len(self.layer_dims)

    def _tokens(self, sentences) -> list[tuple[str, ...]]:
        if isinstance(sentences, str | bytes) or not isinstance(sentences, Sequence):
            raise TypeError("embed() takes a list of sentences (strings or lists of tokens), not a single sentence")
        out = []
        for i, s in enumerate(sentences):
            if isinstance(s, str):
                out.append(tuple(self.tokenizer(s)))
            elif isinstance(s, Sequence) and all(isinstance(t, str) for t in s):
                out.append(tuple(s))
            else:
                raise TypeError(f"sentence {i}: expected a string or a list of token strings, got {type(s).__name__}")
        return out

    def layer_outputs(self, features: dict) -> list[np.ndarray]:
        """Every layer for a batch of right-padded id arrays: [batch, time, dim] each (padding means nothing)."""
        return [np.asarray(x) for x in self._fn(features)]

    def top_layer(self, features: dict) -> np.ndarray:
        """The last layer for a batch of right-padded id arrays: what an embedder export outputs."""
        return np.asarray(self._fn(features)[-1])

    def embed_encoded(self, data: EncodedData) -> list[list[np.ndarray]]:
        """All layers for each row of encoded data: out[i][layer] is [length_i, dim]."""
        out = [None] * len(data)
        for index, features in ordered_batches(data, self.batch_size):
            layers = self.layer_outputs(features)
            for row, i in enumerate(index):
                n = len(data.token_ids[i])
                out[i] = [x[row, :n] for x in layers]
        return out

    def _run(self, token_lists) -> list[list[np.ndarray]]:
        """All layers for each non-empty sentence, every token kept: out[i][layer] is [T_i, dim]."""
        return self.embed_encoded(encode([Example(t) for t in token_lists], self.vocab, None,
                                         char_vocab=self.char_vocab, max_word_chars=self.max_word_chars,
                                         max_length=NO_LIMIT))

    def _weights(self, layer) -> np.ndarray:
        n = self.num_layers
        if isinstance(layer, int | np.integer) and not isinstance(layer, bool):
            if not 0 <= layer < n:
                raise ValueError(f"layer must be in [0, {n - 1}] (0 = static, 1..{n - 1} = recurrent), got {layer}")
            return np.eye(n, dtype=np.float32)[layer]
        if isinstance(layer, str) and layer == "mean":
            weights = np.full(n, 1.0 / n, np.float32)
        elif isinstance(layer, Sequence) and not isinstance(layer, str) and len(layer) == n:
            w = np.asarray(layer, np.float64)
            weights = (np.exp(w - w.max()) / np.exp(w - w.max()).sum()).astype(np.float32)
        else:
            raise ValueError(f"layer must be an int in [0, {n - 1}], 'mean', or {n} mixing weights; got {layer!r}")
        if len(set(self.layer_dims)) != 1:
            raise ValueError(f"mixing layers needs layers of one size; these have sizes {self.layer_dims}")
        return weights

    def embed(self, sentences, layer="mean") -> list[np.ndarray]:
        """One float32 array [num_tokens, dim] per sentence. A sentence is a raw string (tokenized with the
        run's tokenizer) or a list of tokens (used as is, so row i is token i). `layer`: an int (0 = static,
        1.. = recurrent), "mean" (all layers averaged) or a list of one weight per layer (softmax-normalised)."""
        token_lists = self._tokens(sentences)
        weights = self._weights(layer)
        single = int(np.argmax(weights)) if weights.max() == 1.0 else None
        dim = self.layer_dims[single or 0]
        result = [np.zeros((0, dim), np.float32)] * len(token_lists)
        nonempty = [i for i, t in enumerate(token_lists) if t]
        for i, layers in zip(nonempty, self._run([token_lists[i] for i in nonempty]), strict=True):
            if single is not None:
                result[i] = layers[single].astype(np.float32)
            else:
                result[i] = sum(w * x for w, x in zip(weights, layers, strict=True)).astype(np.float32)
        return result

    def sentence_vectors(self, sentences, layer="mean") -> np.ndarray:
        """[num_sentences, dim]: the mean of each sentence's token vectors (zeros for a sentence with no tokens)."""
        vectors = self.embed(sentences, layer)
        dim = vectors[0].shape[1] if vectors else self.layer_dims[-1]
        return np.stack([v.mean(0) if len(v) else np.zeros(dim, np.float32) for v in vectors]) if vectors else (
            np.zeros((0, dim), np.float32))

