// check.mjs - d1.h's tokenizer (the JSON lines of build/tokenizer_dump) against
// an independent implementation, the npm package @huggingface/tokenizers
// (Tokenizers.js): for every case of the corpus, the ids of encode (no special
// tokens added: add_special_tokens false) and the text of decode of those ids
// (skip_special_tokens false, clean_up_tokenization_spaces false, as the Rust
// crate's decode) must be equal.
//
//   cd tools/tokenizer_check && npm install
//   node check.mjs TOKENIZER_DIR CORPUS DUMP [TOKENIZER_DIR CORPUS DUMP ...]
//
// TOKENIZER_DIR holds tokenizer.json (and tokenizer_config.json, {} when
// absent); CORPUS is the file given to tokenizer_dump (its format is in
// tools/tokenizer_dump.c: one case a line, escapes \n \r \t \\ \xHH, '#'
// comments, empty lines skipped; a line "\ids N,N,..." decodes those ids);
// DUMP is tokenizer_dump's output on it.
// The corpus is read here too, so a case that tokenizer_dump read differently
// is a failure as well. Prints each mismatch with the case and both sides,
// and a last line "tokenizer check: N cases, M tokenizers, all equal", or
// "..., K mismatches" and exit status 1.
import { Tokenizer } from "@huggingface/tokenizers";
import { existsSync, readFileSync } from "node:fs";

const args = process.argv.slice(2);
if (args.length === 0 || args.length % 3 !== 0) {
  console.error("usage: node check.mjs TOKENIZER_DIR CORPUS DUMP [TOKENIZER_DIR CORPUS DUMP ...]");
  process.exit(2);
}

// The corpus format of tools/tokenizer_dump.c: [{line, text}], [{line, text: null, ids}].
function readCorpus(path) {
  const bytes = readFileSync(path);
  const cases = [];
  let start = 0, lineno = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    let line = bytes.subarray(start, end);
    start = end + 1;
    lineno++;
    if (line.length && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    if (line.length === 0 || line[0] === 0x23) continue;
    const s = new TextDecoder("utf-8", { fatal: true }).decode(line);
    if (s === "\\ids" || s.startsWith("\\ids ")) { // a decode case
      if (!/^(\d+(,\d+)*)?$/.test(s.slice(5))) throw new Error(`${path}:${lineno}: not \\ids N,N,...`);
      cases.push({ line: lineno, text: null, ids: s.length > 5 ? s.slice(5).split(",").map(Number) : [] });
      continue;
    }
    const out = [];
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (c !== 0x5c) { out.push(c); continue; }
      const e = String.fromCharCode(line[++i]);
      if (e === "n") out.push(0x0a);
      else if (e === "r") out.push(0x0d);
      else if (e === "t") out.push(0x09);
      else if (e === "\\") out.push(0x5c);
      else if (e === "x" && /^[0-9a-fA-F]{2}$/.test(String.fromCharCode(line[i + 1], line[i + 2]))) {
        out.push(parseInt(String.fromCharCode(line[i + 1], line[i + 2]), 16));
        i += 2;
      } else throw new Error(`${path}:${lineno}: a bad escape`);
    }
    cases.push({ line: lineno, text: new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(out)) });
  }
  return cases;
}

const show = (x) => JSON.stringify(x);
let nCases = 0, nTokenizers = 0, mismatches = 0;
const fail = (what) => { mismatches++; console.log(what); };

for (let a = 0; a < args.length; a += 3) {
  const [dir, corpusPath, dumpPath] = args.slice(a, a + 3);
  const json = JSON.parse(readFileSync(`${dir}/tokenizer.json`, "utf8"));
  const cfgPath = `${dir}/tokenizer_config.json`;
  const config = existsSync(cfgPath) ? JSON.parse(readFileSync(cfgPath, "utf8")) : {};
  const tok = new Tokenizer(json, config);
  const cases = readCorpus(corpusPath);
  const dump = readFileSync(dumpPath, "utf8").split("\n").filter((l) => l.length).map((l) => JSON.parse(l));
  nTokenizers++;
  if (dump.length !== cases.length) {
    fail(`${dir}: ${corpusPath} has ${cases.length} cases, the dump ${dump.length}`);
    continue;
  }
  for (let k = 0; k < cases.length; k++) {
    const c = cases[k], d = dump[k];
    const where = `${dir} ${corpusPath}:${c.line}`;
    nCases++;
    if (d.line !== c.line || d.text !== c.text || (c.ids && show(c.ids) !== show(d.ids))) {
      fail(`MISMATCH ${where}: the case\n  read here:        ${show(c.text)}\n  tokenizer_dump:   ${show(d.text)} (line ${d.line})`);
      continue;
    }
    const opts = { skip_special_tokens: false, clean_up_tokenization_spaces: false };
    if (c.ids) { // a decode case
      const text = c.ids.length ? tok.decode(c.ids, opts) : "";
      if (text !== d.decoded)
        fail(`MISMATCH ${where} decode of ids ${show(c.ids)}\n  d1.h:          ${show(d.decoded)}\n  tokenizers.js: ${show(text)}`);
      continue;
    }
    const ids = tok.encode(c.text, { add_special_tokens: false }).ids;
    const text = ids.length ? tok.decode(ids, opts) : "";
    const idsEqual = ids.length === d.ids.length && ids.every((v, i) => v === d.ids[i]);
    if (!idsEqual) {
      const pieces = (xs) => show(xs.map((i) => tok.id_to_token(i)));
      fail(`MISMATCH ${where} ids of ${show(c.text)}\n  d1.h:          ${show(d.ids)}\n                 ${pieces(d.ids)}` +
           `\n  tokenizers.js: ${show(ids)}\n                 ${pieces(ids)}`);
    }
    // decode on the same ids both sides: d1.h's decoded text against
    // tokenizers.js's decode of d1.h's ids (and of its own, when they differ)
    const d1ids = d.ids.length ? tok.decode(d.ids, opts) : "";
    if (d1ids !== d.decoded || text !== d.decoded)
      fail(`MISMATCH ${where} decode of ${show(c.text)}\n  d1.h:          ${show(d.decoded)}` +
           `\n  tokenizers.js: ${show(d1ids)} (of d1.h's ids), ${show(text)} (of its own)`);
  }
}
console.log(`tokenizer check: ${nCases} cases, ${nTokenizers} tokenizers, ` +
            (mismatches ? `${mismatches} mismatches` : "all equal"));
process.exit(mismatches ? 1 : 0);
