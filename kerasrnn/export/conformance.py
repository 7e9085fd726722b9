"""`conformance.json`: inputs with everything an app must reproduce, so a re-implementation can be checked.

Each case is a raw text (real test sentences and `HARD_CASES`) with what our code makes of it: the tokens (cut to
max_length; `token_count` and `last_token` of the uncut list), the token ids, the char ids, and for each artifact
the Python runtimes ran (one row per call), its per-token argmax ids and decoded tags (with entities for BIO
taggers) or its label and top labels. Everything is computed by running the Python pipeline and the artifacts on
the texts, never from the spec, so a client that follows the spec (metadata.json) and agrees with these vectors
agrees with kerasrnn.

A Keras-model export (`export_model`: a notebook model, which takes ids and has no tokenizer) gets `build_ids`:
its first `ID_ROWS` check rows with each artifact's argmax, for a client's runtime and output reading.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerasrnn.data.readers import Example
from kerasrnn.files import atomic_write_json
from kerasrnn.runtime.runners import load_runner, run_batched
from kerasrnn.text.bio import bio_entities, decode_tags, is_bio
from kerasrnn.text.tokenizer import WordTokenizer

CONFORMANCE_FILE = "conformance.json"
CONFORMANCE_VERSION = 1
TEST_SENTENCES = 240
ID_ROWS = 200
# Artifacts an app feeds whole rows of any length (fixed-length and streaming files are called otherwise).
ROW_ARTIFACTS = ("model_fp32.tflite", "model_dynamic.tflite", "model_int8.tflite", "model_int8_staged.tflite",
                 "model_fp32.onnx", "model_int8.onnx")

HARD_CASES = (
    ("accents_composed", "Café déjà vu à Zürich, São Paulo."),
    ("accents_combining", "Cafe\u0301 de\u0301ja\u0300 vu"),  # NFC composes them
    ("combining_marks_alone", "a\u0308\u0301 \u0301x"),
    ("devanagari", "नमस्ते दुनिया, हिन्दी"),  # vowel signs are not word characters
    ("arabic_rtl", "مرحبا بالعالم! 123"),
    ("hebrew_rtl", "שלום עולם."),
    ("cjk", "東京に行きます。我爱北京天安门"),
    ("hangul_jamo", "\u1112\u1161\u11ab\u1100\u1173\u11af 한국어"),  # NFC composes the jamo
    ("emoji", "I love it 😍😍 👍🏽 🇫🇷!"),
    ("emoji_zwj", "family 👨\u200d👩\u200d👧 ok"),
    ("url", "See https://example.com/a/b?x=1&y=2. Or www.kerasrnn.org/docs)."),
    ("url_in_parens", "(http://a.b/c)"),
    ("email", "Mail john.doe+tag@example.co.uk, or a_b@c.io."),
    ("mentions_hashtags", "@jo_smith loves #NLP_2024 and #1 @ x"),
    ("clitics", "I'm sure he's said they'll come, we've seen you'd know, they're here."),
    ("clitics_upper", "I'M SURE HE'S HERE, THEY'LL GO, WE'RE OK."),
    ("negation", "don't can't won't shouldn't DON'T Can'T"),
    ("negation_alone", "n't 'll 's"),
    ("apostrophes", "'quoted' rock'n'roll o'clock rock 'n' roll"),
    ("curly_quotes", "\u201cdon\u2019t\u201d he said \u2018s\u2019"),
    ("hyphens", "well-known state-of-the-art -dash- x--y e-mail 3-4"),
    ("numbers", "3.14 1,000,000 10:30 1/2 -5 +7 2nd 1e10 0.5%"),
    ("abbreviations", "U.S. e.g. i.e. Dr. Mr. A.B.C. a.m."),
    ("punctuation", "Wait... what?! -- yes ``quoted'' (a) [b] {c} <d>"),
    ("currency", "$5.50 €10 £3 ¥100 5$"),
    ("tabs_newlines", "one\ttwo\nthree\r\nfour\x0bfive\x0csix"),
    ("control_chars", "nul\x00here bell\x07 del\x7f c1\x85\x9f end"),
    ("unicode_spaces", "no\u00a0break thin\u2009space ideo\u3000space line\u2028sep"),
    ("zero_width", "zero\u200bwidth joiner\u200dx bom\ufeffy"),
    ("mixed_case", "iPhone McDonald's eBay NASA ÉCOLE straße İstanbul"),
    ("long_word", "supercalifragilisticexpialidocious " + "x" * 40 + " pneumonoultramicroscopicsilicovolcanoconiosis"),
    ("long_sentence", " ".join(f"w{i}" for i in range(300))),
    ("long_text", "ab " * 33_334),  # 100,002 characters: cut at 100,000
    ("digits_other_scripts", "٣٤٥ ١٢ ४२ ௧௨"),
    ("fullwidth", "ＡＢＣ１２３ ｈｅｌｌｏ"),
    ("math_symbols", "x² + y³ = ½ ∑ ∞ ≠ ≤"),
    ("single_char", "a"),
    ("single_punct", "?"),
    ("empty", ""),
    ("whitespace_only", " \t\n  \u00a0 "),
    ("only_controls", "\x00\x01\x02"),
)


def cases(test_examples, n_test: int = TEST_SENTENCES, seed: int = 0) -> list[tuple[str, str]]:
    """(source, text): `n_test` test sentences (a seeded sample, tokens joined by spaces), then the hard cases."""
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(test_examples), size=min(n_test, len(test_examples)), replace=False))
    return [*((f"test:{i}", " ".join(test_examples[i].tokens)) for i in pick), *HARD_CASES]


def _outputs(task_type: str, labels, tokens_per_case, probs, crf=None) -> list[dict]:
    out, bio = [], is_bio(labels)
    for tokens, p in zip(tokens_per_case, probs, strict=True):
        if task_type == "tagging":
            p = np.asarray(p)[: len(tokens)]
            tags = decode_tags(p, labels, crf)
            entry = {"argmax": p.argmax(-1).astype(int).tolist(), "tags": tags}
            if bio:
                entry["entities"] = [[kind, start, end, " ".join(tokens[start:end])]
                                     for kind, start, end in sorted(bio_entities(tags), key=lambda e: e[1])]
        else:
            p = np.asarray(p)
            top = np.argsort(-p, kind="stable")[:3]
            entry = {"argmax": int(top[0]), "label": labels[int(top[0])],
                     "top": [[labels[int(i)], round(float(p[i]), 6)] for i in top]}
        out.append(entry)
    return out


def _row_outputs(export_dir, artifacts, data, **runner_args):
    """(artifact, outputs of every row of `data`) for each row artifact that was made, one row per call as an app
    feeds them: model_int8.onnx quantizes its activations with a scale computed over the whole batch, so a row's
    answer can depend on the rows beside it."""
    for name in artifacts:
        path = Path(export_dir) / name
        if name in ROW_ARTIFACTS and path.is_file():
            yield name, run_batched(load_runner(path, **runner_args), data, batch_size=1)


def build(preprocessor, export_dir, artifacts, test_examples) -> dict:
    """The conformance document of an export (see the module docstring)."""
    tokenizer = WordTokenizer()
    b = preprocessor
    items = cases(test_examples)
    full = [tokenizer(text) for _, text in items]
    tokens = [t[: b.max_length] for t in full]
    data = b.encode([Example(tuple(t)) for t in tokens])
    doc_cases = []
    for i, ((source, text), all_tokens, kept) in enumerate(zip(items, full, tokens, strict=True)):
        case = {"id": source, "text": text, "tokens": kept, "token_count": len(all_tokens),
                "last_token": all_tokens[-1] if all_tokens else None,
                "token_ids": data.token_ids[i].astype(int).tolist()}
        if data.char_ids is not None:
            case["char_ids"] = data.char_ids[i].astype(int).tolist()
        case["outputs"] = {}
        doc_cases.append(case)
    labels = b.labels.tokens if b.labels is not None else None
    checked = []
    if labels is not None:
        for name, probs in _row_outputs(export_dir, artifacts, data, **b.sizes):
            for case, entry in zip(doc_cases, _outputs(b.task_type, labels, tokens, probs, b.crf),
                                   strict=True):
                case["outputs"][name] = entry
            checked.append(name)
    how = ("for each case: tokenize text with metadata.json's tokenizer, compare tokens (cut to max_length), "
           "token_count and last_token (before the cut), token_ids and char_ids; feed the ids to each artifact as "
           "one row and compare its argmax per token (taggers) or its argmax label (classifiers), then the decoding "
           "of metadata.json's decoding section (tags, entities)")
    return _document(b.task_type, checked, how, doc_cases)


def _document(task_type: str, artifacts: list[str], how: str, cases: list[dict]) -> dict:
    return {"version": CONFORMANCE_VERSION, "task_type": task_type, "artifacts": artifacts, "how_to_check": how,
            "cases": cases}


def write(export_dir, document: dict) -> Path:
    """Writes `document` (`build` or `build_ids`) as the export's conformance.json."""
    path = Path(export_dir) / CONFORMANCE_FILE
    atomic_write_json(document, path)
    return path


def build_ids(export_dir, specs, check, artifacts) -> dict:
    """The conformance document of a Keras-model export: id rows (`check`, IdRows) in, each artifact's argmax out."""
    rows = check.subset(range(min(ID_ROWS, len(check))))
    first = next(iter(rows.inputs))
    cases = [{"id": f"check:{i}", "inputs": {name: rows.inputs[name][i].tolist() for name in rows.inputs},
              "token_ids": rows.inputs[first][i].tolist(), "outputs": {}} for i in range(len(rows))]
    checked = []
    for name, outputs in _row_outputs(export_dir, artifacts, rows, specs=specs):
        for case, out in zip(cases, outputs, strict=True):
            out = np.asarray(out)
            case["outputs"][name] = {"argmax": out.argmax(-1).astype(int).tolist() if out.ndim == 2
                                     else int(out.argmax())}
        checked.append(name)
    how = ("for each case: feed `inputs` (ids by input name, one row) to each artifact and compare the argmax over "
           "the last axis of its output, per position for per-token outputs")
    return _document("keras_model", checked, how, cases)
