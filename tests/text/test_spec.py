"""The tokenizer spec of metadata.json: generated from the tokenizer, exact on every code point, and the same
tokens in Python, JavaScript (Node) and java.util.regex."""

import re
import shutil
import subprocess

import numpy as np
import pytest

from kerasrnn.export.conformance import HARD_CASES
from kerasrnn.text import tokenizer as tok
from kerasrnn.text.bio import bio_decode, bio_entities, decoding_spec
from kerasrnn.text.spec import tokenizer_spec
from kerasrnn.text.tokenizer import WordTokenizer, clean_text
from tests.clients import node

TEXTS = [text for _, text in HARD_CASES if len(text) < 10_000] + [
    "I can't pay $5.50, can you?", "She's gone; we'll see.", "x'ſ", "a\u2028b", "👍🏽 ok", "e\u0301cole"]


def test_the_spec_classes_are_pythons_own_on_every_code_point():
    classes = tok.classes()
    for name in ("w", "d", "s"):
        member = np.zeros(tok.MAX_CODE_POINT + 1, bool)
        for a, b in classes[name]:
            member[a : b + 1] = True
        pattern = re.compile(rf"\{name}")
        wrong = [c for c in range(tok.MAX_CODE_POINT + 1)
                 if not 0xD800 <= c <= 0xDFFF and bool(pattern.fullmatch(chr(c))) != member[c]]
        assert wrong == [], (name, wrong[:10])
    assert any(a <= 0x4E00 and 0x9FFF <= b for a, b in classes["w"])  # CJK ideographs are word characters
    assert not any(a <= 0x0301 <= b for a, b in classes["w"])  # combining marks are not (as in Python's re)


def test_the_expanded_pattern_tokenizes_like_the_one_python_runs():
    expanded = re.compile(tok.render(tok.PORTABLE_PATTERN, "python"))
    rng = np.random.default_rng(0)
    fuzz = ["".join(chr(int(c)) for c in rng.integers(0, 0x3000, size=int(rng.integers(1, 40)))
                    if not 0xD800 <= c <= 0xDFFF) for _ in range(500)]
    for text in TEXTS + fuzz:
        cleaned = clean_text(text)
        assert expanded.findall(cleaned) == tok.token_pattern().findall(cleaned), repr(text)


def test_the_javascript_pattern_gives_pythons_tokens():
    spec = tokenizer_spec(lowercase=True, max_length=256, max_word_chars=16)
    got = node.evaluate("const t = new client.Tokenizer(input.spec);"
                        "console.log(JSON.stringify(input.texts.map(x => t.tokenize(x))));",
                        {"spec": spec, "texts": TEXTS})
    tokenizer = WordTokenizer()
    for text, tokens in zip(TEXTS, got, strict=True):
        assert tokens == tokenizer(text), repr(text)


JAVA = """
import java.nio.file.*; import java.util.*; import java.util.regex.*;
public class TokenizerCheck {
  public static void main(String[] a) throws Exception {
    Pattern p = Pattern.compile(Files.readString(Path.of(a[0])));
    for (String text : Files.readString(Path.of(a[1])).split("\\u0000", -1)) {
      Matcher m = p.matcher(text); List<String> out = new ArrayList<>();
      while (m.find()) out.add(m.group());
      System.out.print(String.join("\\u0001", out) + "\\u0000");
    }
  }
}
"""


def test_the_java_pattern_gives_pythons_tokens(tmp_path):
    if shutil.which("javac") is None:
        pytest.skip("no JDK here")
    spec = tokenizer_spec(lowercase=False, max_length=256, max_word_chars=16)
    (tmp_path / "TokenizerCheck.java").write_text(JAVA)
    (tmp_path / "pattern.txt").write_text(spec["tokens"]["pattern"]["java"], encoding="utf-8")
    cleaned = [clean_text(t) for t in TEXTS]  # the text steps are the app's (java.text.Normalizer); the pattern here
    (tmp_path / "texts.txt").write_text("\u0000".join(cleaned), encoding="utf-8")
    subprocess.run(["javac", "TokenizerCheck.java"], cwd=tmp_path, check=True, timeout=120)
    done = subprocess.run(["java", "-cp", ".", "TokenizerCheck", "pattern.txt", "texts.txt"], cwd=tmp_path,
                          capture_output=True, timeout=120, check=True)
    got = done.stdout.decode("utf-8").split("\u0000")[:-1]
    for text, tokens in zip(cleaned, got, strict=True):
        assert (tokens.split("\u0001") if tokens else []) == tok.token_pattern().findall(text), repr(text)


def test_the_decoding_spec_is_the_bio_viterbi_in_data():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    spec = decoding_spec("tagging", labels)
    assert spec["method"] == "bio_viterbi" and spec["start_allowed"] == [1, 1, 0, 1, 0]
    assert spec["allowed"] == [[1, 1, 0, 1, 0],   # after O: no I-
                               [1, 1, 1, 1, 0],   # after B-PER: I-PER
                               [1, 1, 1, 1, 0],
                               [1, 1, 0, 1, 1],   # after B-LOC: I-LOC
                               [1, 1, 0, 1, 1]]
    assert decoding_spec("tagging", ["NOUN", "VERB"])["method"] == "argmax"
    assert decoding_spec("classification", ["a", "oos"])["out_of_scope_label"] == "oos"


def test_the_node_viterbi_and_entities_are_pythons():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(300):
        logits = rng.normal(size=(int(rng.integers(1, 12)), len(labels))) * 3
        p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        p[rng.random(p.shape) < 0.05] = 0.0  # below the floor
        rows.append(p.astype(np.float32))
    got = node.evaluate(
        "const b = Object.create(client.Bundle.prototype); b.decoding = input.decoding;"
        "console.log(JSON.stringify(input.rows.map(p => { const tags = b.viterbi(p);"
        "  return [tags, client.Bundle.entities(tags, tags.map((_, i) => 'w' + i))]; })));",
        {"decoding": decoding_spec("tagging", labels), "rows": [r.tolist() for r in rows]})
    for p, (tags, entities) in zip(rows, got, strict=True):
        assert tags == bio_decode(p, labels)
        want = sorted(bio_entities(tags), key=lambda e: e[1])
        assert [tuple(e[:3]) for e in entities] == want
