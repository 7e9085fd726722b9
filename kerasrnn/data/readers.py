"""Readers for the corpora's file formats. Each returns a list of `Example`; a malformed file raises
`DataFormatError` naming the file and line."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from pathlib import Path

from kerasrnn.text.tokenizer import WordTokenizer, clean_text


class DataFormatError(ValueError):
    """A data file is not in the format its reader expects; the message names the file and line."""

    def __init__(self, path, lineno: int | None, message: str):
        where = f"{path}:{lineno}" if lineno is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.lineno = lineno


@dataclasses.dataclass(frozen=True)
class Example:
    """One sentence: its tokens, and either one tag per token (tagging) or one label (classification)."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...] | None = None
    label: str | None = None


FORMATS = ("conllu", "conll", "iob2", "clinc_json", "csv", "sst", "sst_trees", "text", "tokens")

SENTENCE_END = frozenset({".", "!", "?"})


def _read_text(path) -> str:
    """Reads UTF-8 text (a BOM is dropped, CRLF becomes LF); non-UTF-8 bytes name the line they sit on."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        lineno = data[: e.start].count(b"\n") + 1
        raise DataFormatError(path, lineno, f"not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})") from None
    if "\x00" in text:
        lineno = text[: text.index("\x00")].count("\n") + 1
        raise DataFormatError(path, lineno, "contains a NUL byte; is this a binary file?")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DataFormatError(path, None, "the file is empty or holds only blank lines")
    return text


def read_conllu(path, column: int = 3) -> list[Example]:
    """CoNLL-U: one word per line, 10 tab-separated columns; tags from `column` (3 = UPOS).

    Multiword-token ranges (`3-4`) and empty nodes (`8.1`) are skipped; `#` lines are comments.
    """
    examples: list[Example] = []
    tokens: list[str] = []
    tags: list[str] = []
    for lineno, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            if tokens:
                examples.append(Example(tuple(tokens), tuple(tags)))
                tokens, tags = [], []
            continue
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise DataFormatError(path, lineno, f"expected 10 tab-separated columns, found {len(cols)}")
        word_id = cols[0]
        if "-" in word_id or "." in word_id:
            continue
        if not word_id.isdigit():
            raise DataFormatError(path, lineno, f"word id {word_id!r} is not an integer")
        form, tag = clean_text(cols[1]).strip(), cols[column].strip()
        if not form or not tag or tag == "_":
            raise DataFormatError(path, lineno, f"empty word form or tag in column {column + 1}")
        tokens.append(form.replace(" ", "_"))
        tags.append(tag)
    if tokens:
        examples.append(Example(tuple(tokens), tuple(tags)))
    return examples


def read_conll(path) -> list[Example]:
    """Token<TAB>tag per line (WNUT-17 style), an empty or whitespace-only line between sentences.

    Lines starting with `#` are tokens here (hashtags), not comments.
    """
    return _read_bio_columns(path, token=0, columns="TOKEN<TAB>TAG", comments=False, more_columns=False)


def read_iob2(path) -> list[Example]:
    """INDEX<TAB>TOKEN<TAB>TAG[<TAB>...] per line (Universal NER's `.iob2` files), `#` comment lines, an empty line
    between sentences; columns after the tag are ignored."""
    return _read_bio_columns(path, token=1, columns="INDEX<TAB>TOKEN<TAB>TAG", comments=True, more_columns=True)


def _read_bio_columns(path, *, token: int, columns: str, comments: bool, more_columns: bool) -> list[Example]:
    """Sentences of one token (column `token`) and its BIO tag (the next column) per line; `columns` names the
    layout in errors; `comments`: lines starting with `#` are skipped; `more_columns`: columns after the tag are
    allowed (and ignored)."""
    examples: list[Example] = []
    tokens: list[str] = []
    tags: list[str] = []
    for lineno, line in enumerate(_read_text(path).split("\n"), start=1):
        if comments and line.startswith("#"):
            continue
        if not line.strip():
            if tokens:
                examples.append(Example(tuple(tokens), tuple(tags)))
                tokens, tags = [], []
            continue
        cols = line.rstrip("\t ").split("\t")
        if len(cols) < token + 2 or (len(cols) > token + 2 and not more_columns):
            raise DataFormatError(path, lineno, f"expected {columns}, found {len(cols)} column(s)")
        text, tag = clean_text(cols[token]).strip(), cols[token + 1].strip()
        if not text or not tag:
            raise DataFormatError(path, lineno, "empty token or tag")
        if tag != "O" and not (tag[:2] in ("B-", "I-") and len(tag) > 2):
            raise DataFormatError(path, lineno, f"tag {tag!r} is not in the BIO scheme (O, B-TYPE, I-TYPE)")
        tokens.append(text.replace(" ", "_"))
        tags.append(tag)
    if tokens:
        examples.append(Example(tuple(tokens), tuple(tags)))
    return examples


def rename_types(examples: list[Example], renames: dict[str, str]) -> list[Example]:
    """BIO tags with their entity type renamed (`{"PER": "person"}`: B-PER -> B-person); a type renamed to "O"
    becomes O; a type renamed to "" drops every sentence that holds it (a type the task's types do not cover, whose
    words would otherwise be taught as O). Other tags and classification examples are unchanged."""
    def tag(t: str) -> str:
        new = renames.get(t[2:]) if t != "O" else None
        return t if new is None else "O" if new == "O" else t[:2] + new

    dropped = {old for old, new in renames.items() if not new}
    return [dataclasses.replace(e, tags=tuple(tag(t) for t in e.tags)) if e.tags is not None else e
            for e in examples if e.tags is None or not any(t != "O" and t[2:] in dropped for t in e.tags)]


_CLINC_SPLITS = {"train": ("train", "oos_train"), "dev": ("val", "oos_val"), "test": ("test", "oos_test")}


def read_clinc_json(path, split: str = "train", tokenizer: WordTokenizer | None = None) -> list[Example]:
    """CLINC150 `data_full.json` (the `split` and its out-of-scope list, label `oos`), or a JSON list of [text, label]."""
    tokenizer = tokenizer or WordTokenizer()
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise DataFormatError(path, e.lineno, f"invalid JSON: {e.msg}") from None
    if isinstance(data, dict):
        if split not in _CLINC_SPLITS:
            raise ValueError(f"split must be one of {sorted(_CLINC_SPLITS)}, got {split!r}")
        keys = _CLINC_SPLITS[split]
        if keys[0] not in data:
            raise DataFormatError(path, None, f"no {keys[0]!r} list in the JSON object (keys: {sorted(data)})")
        pairs = [p for k in keys for p in data.get(k, [])]
    elif isinstance(data, list):
        pairs = data
    else:
        raise DataFormatError(path, None, "expected a JSON object of splits or a list of [text, label] pairs")
    examples = []
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise DataFormatError(path, None, f"entry {i} is not a [text, label] pair of strings: {pair!r:.80}")
        examples.append(Example(tuple(tokenizer(pair[0])), label=pair[1]))
    return examples


def read_csv(path, tokenizer: WordTokenizer | None = None) -> list[Example]:
    """CSV with a header `text,<label column>` (BANKING77: `text,category`); quoted fields may hold commas and newlines."""
    tokenizer = tokenizer or WordTokenizer()
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    try:
        header = next(reader)
    except csv.Error as e:
        raise DataFormatError(path, 1, f"CSV error: {e}") from None
    if len(header) != 2 or header[0].strip() != "text":
        raise DataFormatError(path, 1, f"expected the header 'text,<label>', found {','.join(header)!r:.80}")
    examples = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise DataFormatError(path, reader.line_num, f"CSV error: {e}") from None
        if not row or not any(field.strip() for field in row):
            continue
        if len(row) != 2:
            raise DataFormatError(path, reader.line_num, f"expected 2 columns (text,label), found {len(row)}")
        text, label = row[0], row[1].strip()
        if not label:
            raise DataFormatError(path, reader.line_num, "empty label")
        examples.append(Example(tuple(tokenizer(text)), label=label))
    return examples


def read_sst(path, tokenizer: WordTokenizer | None = None) -> list[Example]:
    """SST sentence files: `LABEL<SPACE>text` per line (stsa.binary.*)."""
    tokenizer = tokenizer or WordTokenizer()
    examples = []
    for lineno, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        label, _, text = line.strip().partition(" ")
        if not label.isdigit() or not text.strip():
            raise DataFormatError(path, lineno, f"expected 'LABEL text' with an integer label, found {line[:60]!r}")
        examples.append(Example(tuple(tokenizer(text)), label=label))
    return examples


SST_BINARY = {"0": "0", "1": "0", "3": "1", "4": "1"}  # very negative, negative / positive, very positive


def read_sst_trees(path, tokenizer: WordTokenizer | None = None) -> list[Example]:
    """SST's PTB-style trees (`trees/train.txt`: `(3 (2 The) (4 ...))`, a 0-4 label on every node) as binary
    SST-2 examples, one per distinct phrase: every node whose label is not neutral (2) gives its leaves' text,
    lowercased as in the sentence-level `stsa.binary.*` files (escapes such as `-lrb-` and `\\/` kept), with
    label 0 (labels 0, 1) or 1 (3, 4). A phrase that appears twice is kept once (its first label)."""
    tokenizer = tokenizer or WordTokenizer()
    examples, seen = [], set()
    for lineno, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        for label, leaves in _tree_nodes(path, lineno, line.strip()):
            text = " ".join(leaves).lower()
            if label in SST_BINARY and text not in seen:
                seen.add(text)
                examples.append(Example(tuple(tokenizer(text)), label=SST_BINARY[label]))
    return examples


def _tree_nodes(path, lineno: int, line: str) -> list[tuple[str, list[str]]]:
    """(label, leaves) of every node of one bracketed tree, root last."""
    parts = line.replace("(", " ( ").replace(")", " ) ").split()
    nodes, stack, i = [], [], 0
    while i < len(parts):
        part = parts[i]
        if part == "(":
            if i + 1 >= len(parts) or not parts[i + 1].isdigit():
                raise DataFormatError(path, lineno, f"expected '(LABEL ...' at token {i + 1} of the tree")
            stack.append((parts[i + 1], []))
            i += 2
            continue
        if part == ")":
            if not stack:
                raise DataFormatError(path, lineno, "unbalanced ')' in the tree")
            label, leaves = stack.pop()
            if not leaves:
                raise DataFormatError(path, lineno, f"a node labelled {label} has no words")
            nodes.append((label, leaves))
            if stack:
                stack[-1][1].extend(leaves)
        elif not stack:
            raise DataFormatError(path, lineno, f"word {part!r} outside the tree's brackets")
        else:
            stack[-1][1].append(part)
        i += 1
    if stack or not nodes:
        raise DataFormatError(path, lineno, "unbalanced '(' in the tree")
    return nodes


def split_sentences(tokens: list[str], max_length: int) -> list[tuple[str, ...]]:
    """Cuts a paragraph's tokens after each `.`, `!` or `?` (closing quotes stay with their sentence), then
    cuts sentences longer than `max_length` tokens into pieces."""
    closers = ('"', "'", "''", ")")
    sentences, current = [], []
    for i, tok in enumerate(tokens):
        current.append(tok)
        next_tok = tokens[i + 1] if i + 1 < len(tokens) else ""
        ends = tok in SENTENCE_END or (tok in closers and len(current) > 1 and current[-2] in SENTENCE_END)
        if ends and next_tok not in (*closers, *SENTENCE_END):
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return [tuple(s[i : i + max_length]) for s in sentences for i in range(0, len(s), max_length)]


def read_text(path, tokenizer: WordTokenizer | None = None, max_length: int = 64) -> list[Example]:
    """Raw prose (Project Gutenberg style): paragraphs separated by blank lines, tokenized with `tokenizer`,
    split into sentences of at most `max_length` tokens. Unlabelled examples, for language modelling."""
    tokenizer = tokenizer or WordTokenizer()
    examples = []
    for paragraph in _read_text(path).split("\n\n"):
        paragraph = " ".join(paragraph.split())
        if paragraph:
            examples.extend(Example(s) for s in split_sentences(tokenizer(paragraph), max_length))
    return examples


def read_tokens(path, max_length: int = 64) -> list[Example]:
    """Whitespace-tokenized text, one paragraph per line (WikiText style): ` = Heading = ` lines are skipped,
    the ` @-@ `, ` @,@ `, ` @.@ ` joiners are undone (`1 @,@ 000` -> `1,000`), `<unk>` stays the unknown word."""
    examples = []
    for line in _read_text(path).split("\n"):
        line = line.strip()
        if not line or (line.startswith("= ") and line.endswith(" =")):
            continue
        for joiner in ("@-@", "@,@", "@.@"):
            line = line.replace(f" {joiner} ", joiner[1])
        examples.extend(Example(s) for s in split_sentences(line.split(), max_length))
    return examples


def read_examples(path, data_format: str, split: str = "train") -> list[Example]:
    """Reads a file of `data_format` (one of FORMATS); `split` picks the part of a CLINC json file."""
    readers = {
        "conllu": lambda: read_conllu(path),
        "conll": lambda: read_conll(path),
        "iob2": lambda: read_iob2(path),
        "clinc_json": lambda: read_clinc_json(path, split),
        "csv": lambda: read_csv(path),
        "sst": lambda: read_sst(path),
        "sst_trees": lambda: read_sst_trees(path),
        "text": lambda: read_text(path),
        "tokens": lambda: read_tokens(path),
    }
    if data_format not in readers:
        raise ValueError(f"unknown data format {data_format!r}; choose one of {', '.join(FORMATS)}")
    examples = readers[data_format]()
    if not examples:
        raise DataFormatError(path, None, f"no examples found in this {data_format} file")
    return examples


def data_dir() -> Path:
    """The shared data folder: `$KERASRNN_DATA_DIR`, else `../shared/data` beside the repository."""
    env = os.environ.get("KERASRNN_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"
