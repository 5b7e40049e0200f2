// bench.mjs - @huggingface/tokenizers on the files tools/tokenizer_bench.c
// reads: load a tokenizer.json, encode a text file as one string (no special
// tokens), decode it back; best of 5. Prints one line like the C side's.
//   cd tools/tokenizer_check && node bench.mjs TOKENIZER_DIR TEXT
import { Tokenizer } from "@huggingface/tokenizers";
import { existsSync, readFileSync } from "node:fs";

const [dir, file] = process.argv.slice(2);
if (!dir || !file) {
  console.error("usage: node bench.mjs TOKENIZER_DIR TEXT");
  process.exit(2);
}
let t0 = performance.now();
const json = JSON.parse(readFileSync(`${dir}/tokenizer.json`, "utf8"));
const config = existsSync(`${dir}/tokenizer_config.json`) ? JSON.parse(readFileSync(`${dir}/tokenizer_config.json`, "utf8")) : {};
const tok = new Tokenizer(json, config);
const load = (performance.now() - t0) / 1e3;
const text = readFileSync(file, "utf8"), bytes = Buffer.byteLength(text);
let enc = 1e9, dec = 1e9, ids = [], back = "";
for (let r = 0; r < 5; r++) {
  t0 = performance.now();
  ids = tok.encode(text, { add_special_tokens: false }).ids;
  enc = Math.min(enc, (performance.now() - t0) / 1e3);
  t0 = performance.now();
  back = tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  dec = Math.min(dec, (performance.now() - t0) / 1e3);
}
console.log(`npm tokenizers: load ${load.toFixed(3)} s; encode ${(bytes / 1e6 / enc).toFixed(2)} MB/s (${ids.length} ids); ` +
            `decode ${(bytes / 1e6 / dec).toFixed(2)} MB/s; round trip ${back === text ? "equal" : "DIFFERENT"}`);
