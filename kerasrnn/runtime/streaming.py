"""Streaming inference: feed tokens as they come, read each token's output, keep the recurrent state between calls.

`StreamRunner` runs a streaming file (`model_stream_fp32.tflite` / `model_stream_int8.tflite`, made by
`kerasrnn.export.streaming`) in LiteRT; the state lives in NumPy arrays here, never in the interpreter.

Example (after `deploy.export` of a BiLM run):
    stream = StreamRunner("runs/bilm_pretrain/export/model_stream_fp32.tflite")
    stream.feed({"token_ids": ids, "char_ids": chars})   # [n] and [n, chars]: n tokens, any n
    stream.top_k(3)                                      # the likeliest next token ids after them
    stream.reset()
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerasrnn.runtime.runners import InputError, InputSpec, is_stream, validate_inputs


class StreamRunner:
    """Args:
    path: a streaming `.tflite` file.
    specs: list of InputSpec of the token inputs (checked before LiteRT sees them). Defaults to the ones
        metadata.json beside the file names.
    num_threads: int. Defaults to 1.
    """

    def __init__(self, path, specs: list[InputSpec] | None = None, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such model file")
        interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        signatures = interpreter.get_signature_list()
        if not is_stream(signatures):
            raise ValueError(f"{self.path}: not a streaming file (signatures {sorted(signatures)}, expected step "
                             "and chunk)")
        self.runners = {key: interpreter.get_signature_runner(key) for key in signatures}
        details = {key: runner.get_input_details() for key, runner in self.runners.items()}
        self.chunk = int(details["chunk"][next(n for n in details["chunk"] if n[:2] not in ("h_", "c_"))]
                         ["shape"][1])
        self.state_shapes = {name: tuple(d["shape"]) for name, d in details["step"].items()
                             if name[:2] in ("h_", "c_")}
        self.token_inputs = [name for name in details["step"] if name not in self.state_shapes]
        self.output_name = next(n for n in signatures["step"]["outputs"] if n not in self.state_shapes)
        if specs is None:
            import json

            from kerasrnn.runtime.runners import specs_from_metadata

            meta = self.path.with_name("metadata.json")
            if not meta.is_file():
                raise FileNotFoundError(f"{meta}: needed for the input checks (or pass specs=)")
            specs = specs_from_metadata(json.loads(meta.read_text()))
        self.specs = specs
        self.reset()

    def reset(self) -> None:
        """Back to the zero state (a new sentence or document)."""
        self.state = {name: np.zeros(shape, np.float32) for name, shape in self.state_shapes.items()}
        self.last = None

    def feed(self, tokens: dict) -> np.ndarray:
        """The outputs for the next n tokens ({input name: [n] ids, or [n, chars]}), carrying the state: n > 0."""
        features = {name: np.asarray(x)[None] for name, x in tokens.items()}
        features = validate_inputs(features, specs=self.specs)
        n = features[self.token_inputs[0]].shape[1]
        outputs, start = [], 0
        while start < n:
            size = 1 if n - start == 1 else self.chunk
            piece = {name: x[:, start : start + size] for name, x in features.items()}
            got = piece[self.token_inputs[0]].shape[1]
            if got < size:  # the last piece of a chunk: right-padded, pads leave the state unchanged
                piece = {name: np.pad(x, [(0, 0), (0, size - got)] + [(0, 0)] * (x.ndim - 2))
                         for name, x in piece.items()}
            out = self.runners["step" if size == 1 else "chunk"](**piece, **self.state)
            self.state = {name: out[name] for name in self.state_shapes}
            outputs.append(out[self.output_name][0, :got])
            start += got
        result = np.concatenate(outputs).astype(np.float32)
        self.last = result[-1]
        return result

    @property
    def log_outputs(self) -> bool:
        """Whether the outputs are log-probabilities (a BiLM's next-token stream)."""
        return "log_prob" in self.output_name

    def top_k(self, k: int = 5) -> list[tuple[int, float]]:
        """(id, probability) of the k largest outputs after the last token fed (the next words, for a BiLM)."""
        if self.last is None:
            raise InputError("feed at least one token first")
        index = np.argsort(-self.last)[:k]
        values = np.exp(self.last[index]) if self.log_outputs else self.last[index]
        return [(int(i), float(v)) for i, v in zip(index, values, strict=True)]


def stream_text(model_path, text: str, top: int = 3) -> list[dict]:
    """Raw text through a streaming file one token at a time: per token its tag and probability (a tagger) or
    the `top` likeliest next words (a BiLM's forward direction)."""
    from kerasrnn.data.readers import Example
    from kerasrnn.preprocessor import Preprocessor
    from kerasrnn.runtime.runners import task_specs
    from kerasrnn.text.tokenizer import WordTokenizer

    preprocessor = Preprocessor.find(model_path)
    tokens = WordTokenizer()(text)[: preprocessor.max_length]
    if not tokens:
        raise InputError("the text has no tokens")
    data = preprocessor.encode([Example(tuple(tokens))])
    runner = StreamRunner(model_path, specs=task_specs(**preprocessor.sizes))
    results = []
    for t, token in enumerate(tokens):
        out = runner.feed({name: rows[0][t : t + 1] for name, rows in data.inputs.items()})[0]
        if preprocessor.labels is not None:
            i = int(out.argmax())
            results.append({"token": token, "tag": preprocessor.labels.tokens[i], "probability": float(out[i])})
        else:
            results.append({"token": token, "next": [(preprocessor.vocab.tokens[i], p) for i, p in runner.top_k(top)]})
    return results
