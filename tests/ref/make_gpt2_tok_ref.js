#!/usr/bin/env node
// make_gpt2_tok_ref.js — writes tests/ref/gpt2_tok_ref.json, the GPT-2 token
// ids that tests/unit/test_tokenizer.c compares engine/text/tokenizer_bpe.c with.
//
// Two independent JavaScript encoders of GPT-2's BPE must agree on every
// string of tests/ref/tok_corpus.json:
//   - gpt-3-encoder: a line-by-line port of OpenAI's gpt-2 encoder.py
//     (encoder.json + vocab.bpe, merges by rank);
//   - js-tiktoken "gpt2": the port of OpenAI's tiktoken (byte-pair ranks).
// Special tokens are text in "ids" (disallowedSpecial = none, as
// gpt-3-encoder does); cases containing "<|endoftext|>" also get
// "ids_special" from js-tiktoken with allowedSpecial = "all".
//
// Usage, from the repository root (the packages come from npm):
//   mkdir -p /tmp/tokref && (cd /tmp/tokref && npm init -y &&
//     npm install gpt-3-encoder@1.1.4 js-tiktoken@1.0.21)
//   node tests/ref/make_gpt2_tok_ref.js /tmp/tokref/node_modules
// Exits 1, writing nothing, if the encoders disagree or do not round-trip.
"use strict";
const fs = require("fs");
const path = require("path");

const modules = path.resolve(process.argv[2] || "node_modules");
const gpt3 = require(path.join(modules, "gpt-3-encoder"));
const { getEncoding } = require(path.join(modules, "js-tiktoken"));
const version = (name) =>
  JSON.parse(fs.readFileSync(path.join(modules, name, "package.json"), "utf8")).version;

const corpus = JSON.parse(fs.readFileSync("tests/ref/tok_corpus.json", "utf8"));
const tik = getEncoding("gpt2");
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

let bad = 0;
const cases = [];
for (const c of corpus) {
  const a = gpt3.encode(c.text);
  const b = tik.encode(c.text, [], []);
  if (!same(a, b)) {
    bad++;
    console.error(`DISAGREE ${c.name}:\n  gpt-3-encoder ${JSON.stringify(a)}\n  js-tiktoken   ${JSON.stringify(b)}`);
  }
  if (gpt3.decode(a) !== c.text || tik.decode(b) !== c.text) {
    bad++;
    console.error(`NO ROUND TRIP ${c.name}`);
  }
  const out = { name: c.name, text: c.text, ids: b };
  if (c.text.includes("<|endoftext|>")) out.ids_special = tik.encode(c.text, "all");
  cases.push(out);
}
if (bad) {
  console.error(`${bad} problem(s); not writing the fixture`);
  process.exit(1);
}
const doc = {
  version: 1,
  generator: "tests/ref/make_gpt2_tok_ref.js",
  references: `gpt-3-encoder ${version("gpt-3-encoder")} == js-tiktoken ${version("js-tiktoken")} (gpt2)`,
  cases,
};
// One case per line keeps diffs readable.
const lines = cases.map((c) => "  " + JSON.stringify(c));
const text = `{"version": ${doc.version}, "generator": ${JSON.stringify(doc.generator)}, ` +
  `"references": ${JSON.stringify(doc.references)},\n "cases": [\n${lines.join(",\n")}\n]}\n`;
fs.writeFileSync("tests/ref/gpt2_tok_ref.json", text);
console.log(`wrote tests/ref/gpt2_tok_ref.json: ${cases.length} cases, ${doc.references}`);
