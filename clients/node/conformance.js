#!/usr/bin/env node
'use strict';
// Checks this client against an export's conformance.json: every case's tokens, token count, last token, token
// ids and char ids, and for every .onnx artifact the vectors name, its argmax per token or label and the decoding
// (tags, entities). Prints a JSON summary; exits 1 on any disagreement (each one listed), 2 on bad usage.
//
//   node conformance.js EXPORT_DIR [--max-failures N]

const fs = require('node:fs');
const path = require('node:path');
const {Bundle} = require('./client');

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function main(argv) {
  const dir = argv[0];
  if (!dir) {
    console.error('usage: node conformance.js EXPORT_DIR [--max-failures N]');
    return 2;
  }
  const maxShown = argv.includes('--max-failures') ? Number(argv[argv.indexOf('--max-failures') + 1]) : 20;
  const bundle = Bundle.load(dir);
  const doc = JSON.parse(fs.readFileSync(path.join(dir, 'conformance.json'), 'utf8'));
  const failures = [];
  const counts = {cases: doc.cases.length, tokens: 0, token_ids: 0, char_ids: 0, outputs: {}};
  const fail = (id, what, want, got) => failures.push({case: id, what, want, got});

  const encoded = doc.cases.map((c) => {
    const e = bundle.encode(c.text);
    counts.tokens += c.tokens.length;
    if (!same(e.tokens, c.tokens)) fail(c.id, 'tokens', c.tokens, e.tokens);
    if (e.tokenCount !== c.token_count) fail(c.id, 'token_count', c.token_count, e.tokenCount);
    if (e.lastToken !== c.last_token) fail(c.id, 'last_token', c.last_token, e.lastToken);
    counts.token_ids += c.token_ids.length;
    if (!same(e.tokenIds, c.token_ids)) fail(c.id, 'token_ids', c.token_ids, e.tokenIds);
    if (c.char_ids) {
      counts.char_ids += c.char_ids.length;
      if (!same(e.charIds, c.char_ids)) fail(c.id, 'char_ids', c.char_ids, e.charIds);
    }
    return e;
  });

  for (const artifact of doc.artifacts.filter((a) => a.endsWith('.onnx'))) {
    const session = await bundle.session(artifact);
    const n = {cases: 0, argmax: 0, decoded: 0};
    for (let i = 0; i < doc.cases.length; i++) {
      const c = doc.cases[i];
      const want = c.outputs[artifact];
      // the expected ids are fed, so an id mismatch above does not hide the runtime and decoding checks
      const probs = await bundle.run(session, {tokenIds: c.token_ids, charIds: c.char_ids});
      const got = bundle.decode(probs, c.tokens);
      n.cases += 1;
      n.argmax += Array.isArray(want.argmax) ? want.argmax.length : 1;
      if (!same(got.argmax, want.argmax)) fail(c.id, `${artifact} argmax`, want.argmax, got.argmax);
      for (const key of ['tags', 'entities', 'label']) {
        if (key in want) {
          n.decoded += 1;
          if (!same(got[key], want[key])) fail(c.id, `${artifact} ${key}`, want[key], got[key]);
        }
      }
    }
    counts.outputs[artifact] = n;
  }
  const summary = {export: dir, passed: failures.length === 0, failures: failures.length, ...counts,
                   shown: failures.slice(0, maxShown)};
  console.log(JSON.stringify(summary, null, 1));
  return failures.length ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => {
  console.error(`error: ${e.message}`);
  process.exitCode = 2;
});
