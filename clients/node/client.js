'use strict';
// A kerasrnn export read by a client that is not Python and does not import kerasrnn: written from the spec in
// metadata.json (its "tokenizer", "inputs" and "decoding" sections) and nothing else. It reads metadata.json, the
// vocabulary files metadata.json names and the .onnx files.
//
//   const {Bundle} = require('./client');
//   const bundle = Bundle.load('runs/ner_wnut17/export');
//   const session = await bundle.session('model_int8.onnx');
//   console.log(await bundle.predict(session, 'Obama visited Paris'));

const fs = require('node:fs');
const path = require('node:path');

function readLines(file) {
  // UTF-8, one entry per line; the id of an entry is its 0-based line number
  const text = fs.readFileSync(file, 'utf8');
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

class Tokenizer {
  constructor(spec) {
    if (spec.version !== 1) throw new Error(`tokenizer spec version ${spec.version}: this client reads version 1`);
    const steps = Object.fromEntries(spec.text_steps.map((s) => [s.step, s]));
    this.maxCodePoints = steps.cut.max_code_points;
    if (steps.normalize.form !== 'NFC') throw new Error(`unsupported normalization ${steps.normalize.form}`);
    this.spaces = new Set(steps.spaces.code_points);
    this.dropped = steps.drop.ranges;
    this.pattern = new RegExp(spec.tokens.pattern.javascript, spec.tokens.flags.javascript);
  }

  isDropped(cp) {
    let lo = 0, hi = this.dropped.length - 1;  // ranges are sorted and disjoint
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [a, b] = this.dropped[mid];
      if (cp < a) hi = mid - 1; else if (cp > b) lo = mid + 1; else return true;
    }
    return false;
  }

  clean(text) {
    // the text steps, in order: cut (code points), lone surrogates, NFC, spaces, dropped code points
    let cps = Array.from(text).slice(0, this.maxCodePoints);
    cps = cps.filter((c) => { const u = c.codePointAt(0); return u < 0xd800 || u > 0xdfff; });
    const out = [];
    for (const c of Array.from(cps.join('').normalize('NFC'))) {
      const u = c.codePointAt(0);
      if (this.spaces.has(u)) out.push(' ');
      else if (!this.isDropped(u)) out.push(c);
    }
    return out.join('');
  }

  tokenize(text) {
    return Array.from(this.clean(text).matchAll(this.pattern), (m) => m[0]);
  }
}

class Bundle {
  static load(dir) {
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'metadata.json'), 'utf8'));
    return new Bundle(dir, meta);
  }

  constructor(dir, meta) {
    this.dir = dir;
    this.meta = meta;
    this.tokenizer = new Tokenizer(meta.tokenizer);
    this.ids = meta.tokenizer.ids;
    this.vocab = new Map(readLines(path.join(dir, meta.vocabulary_file)).map((t, i) => [t, i]));
    this.chars = meta.char_vocabulary_file
      ? new Map(readLines(path.join(dir, meta.char_vocabulary_file)).map((t, i) => [t, i])) : null;
    this.decoding = meta.decoding || null;
  }

  lookup(token) {
    const key = this.ids.lowercase ? token.toLowerCase() : token;
    const id = this.vocab.get(key);  // the pad token's line is never a word's id
    return id === undefined || id === this.ids.pad_id ? this.ids.unknown_id : id;
  }

  // text -> {tokens (cut to max_length), tokenCount, lastToken, tokenIds, charIds (rows of max_word_chars)}
  encode(text) {
    const all = this.tokenizer.tokenize(text);
    const tokens = all.slice(0, this.ids.max_length);
    const fed = tokens.length ? tokens : ['<unk>'];  // the empty-text rule
    const tokenIds = tokens.length ? fed.map((t) => this.lookup(t)) : [this.ids.unknown_id];
    let charIds = null;
    if (this.chars) {
      const width = this.ids.char_ids.max_word_chars;
      charIds = fed.map((t) => {
        const row = new Array(width).fill(this.ids.pad_id);
        Array.from(t).slice(0, width).forEach((c, j) => {
          row[j] = this.chars.has(c) ? this.chars.get(c) : this.ids.unknown_id;
        });
        return row;
      });
    }
    return {tokens, tokenCount: all.length, lastToken: all.length ? all[all.length - 1] : null, tokenIds, charIds};
  }

  async session(file) {
    const ort = require('onnxruntime-node');
    return ort.InferenceSession.create(path.join(this.dir, file), {intraOpNumThreads: 1});
  }

  // one row through an ONNX session: per-token probabilities [T][L] or class probabilities [L]
  async run(session, encoded) {
    const ort = require('onnxruntime-node');
    const t = encoded.tokenIds.length;
    const feeds = {token_ids: new ort.Tensor('int32', Int32Array.from(encoded.tokenIds), [1, t])};
    if (this.chars && 'char_ids' in this.meta.inputs) {
      const width = this.ids.char_ids.max_word_chars;
      feeds.char_ids = new ort.Tensor('int32', Int32Array.from(encoded.charIds.flat()), [1, t, width]);
    }
    const out = (await session.run(feeds))[session.outputNames[0]];
    const labels = out.dims[out.dims.length - 1];
    const rows = [];
    for (let i = 0; i < out.data.length; i += labels) rows.push(Array.from(out.data.slice(i, i + labels)));
    return this.meta.task_type === 'tagging' ? rows : rows[0];
  }

  static argmax(p) {
    let best = 0;
    for (let j = 1; j < p.length; j++) if (p[j] > p[best]) best = j;  // ties: the lowest index
    return best;
  }

  viterbi(probs) {
    const d = this.decoding;
    const n = d.labels.length;
    if (!probs.length) return [];
    const score = probs.map((row) => row.map((p) => Math.log(Math.min(Math.max(p, d.prob_floor), 1))));
    // crf_viterbi adds a CRF's learned transition, start and end scores; bio_viterbi has none
    const crf = d.method === 'crf_viterbi';
    const move = (i, j) => (crf ? d.transitions[i][j] : 0);
    let best = score[0].map((s, j) => (d.start_allowed[j] ? s + (crf ? d.start[j] : 0) : -Infinity));
    const back = [];
    for (let t = 1; t < score.length; t++) {
      const next = new Array(n), from = new Array(n);
      for (let j = 0; j < n; j++) {
        let arg = -1, value = -Infinity;
        for (let i = 0; i < n; i++) {
          const v = d.allowed[i][j] ? best[i] + move(i, j) : -Infinity;
          if (arg < 0 || v > value) { arg = i; value = v; }
        }
        from[j] = arg;
        next[j] = value + score[t][j];
      }
      back.push(from);
      best = next;
    }
    if (crf) best = best.map((b, j) => b + d.end[j]);
    const path = [Bundle.argmax(best)];
    for (let t = back.length - 1; t >= 0; t--) path.push(back[t][path[path.length - 1]]);
    return path.reverse().map((j) => d.labels[j]);
  }

  static entities(tags, tokens) {
    const out = [];
    let start = null, kind = null;
    [...tags, 'O'].forEach((tag, i) => {
      const dash = tag.indexOf('-');
      const prefix = dash < 0 ? tag : tag.slice(0, dash), type = dash < 0 ? '' : tag.slice(dash + 1);
      const continues = prefix === 'I' && kind === type;
      if (start !== null && !continues) { out.push([kind, start, i, tokens.slice(start, i).join(' ')]); start = null; kind = null; }
      if (prefix === 'B' || (prefix === 'I' && !continues)) { start = i; kind = type; }
    });
    return out;
  }

  // the decoding section: tags (and entities) of a tagger, the label of a classifier
  decode(probs, tokens) {
    const d = this.decoding;
    if (this.meta.task_type === 'tagging') {
      const p = probs.slice(0, tokens.length);
      const argmax = p.map(Bundle.argmax);
      if (d.method === 'bio_viterbi' || d.method === 'crf_viterbi') {
        const tags = this.viterbi(p);
        return d.entities ? {argmax, tags, entities: Bundle.entities(tags, tokens)} : {argmax, tags};
      }
      return {argmax, tags: argmax.map((j) => d.labels[j])};
    }
    const j = Bundle.argmax(probs);
    return {argmax: j, label: d.labels[j]};
  }

  async predict(session, text) {
    const encoded = this.encode(text);
    return {tokens: encoded.tokens, ...this.decode(await this.run(session, encoded), encoded.tokens)};
  }
}

module.exports = {Bundle, Tokenizer};
