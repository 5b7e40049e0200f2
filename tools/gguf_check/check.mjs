// check.mjs - a GGUF written by `d1 export-gguf DIR FILE.gguf` against DIR,
// read by an independent implementation (the npm package @huggingface/gguf):
//   every key llama.cpp's llada architecture and diffusion CLI read, with the
//   value config.json implies; every tensor's name, shape, type and 32-byte
//   aligned offset; and every tensor's data against model.safetensors (F32 or
//   BF16), value for value, with q and k rows in llama.cpp's pair order
//   (row 2i of a head is LLaDA's row i, row 2i+1 its row i + hd/2). When DIR
//   has a tokenizer.json, every token's text and type (special added tokens
//   control, 3) against it: the demo's tokens are printable ASCII, the same
//   in GPT-2's byte-level spelling.
//
// With bf16 (a GGUF of `d1 export-gguf --type bf16`): the matrices (q, k, v,
// attn_output, ffn_gate/up/down, output) must be BF16 (ggml type 30), each value
// the checkpoint's rounded to nearest even (a subnormal to a zero of its sign, as
// d1.h rounds), token_embd and the norms F32.
//
//   cd tools/gguf_check && npm install && node check.mjs DIR FILE.gguf [bf16]
// Prints one line per failed check and a last line "gguf: N checks, M failed".
import { gguf } from "@huggingface/gguf";
import { existsSync, readFileSync } from "node:fs";

const [dir, file, type = "f32"] = process.argv.slice(2);
if (!dir || !file || (type !== "f32" && type !== "bf16")) {
  console.error("usage: node check.mjs DIR FILE.gguf [f32|bf16]");
  process.exit(2);
}
let checks = 0, failed = 0;
const expect = (ok, what) => { checks++; if (!ok) { failed++; console.log("FAIL " + what); } };

const cfg = JSON.parse(readFileSync(`${dir}/config.json`, "utf8"));
const C = cfg.d_model, L = cfg.n_layers, H = cfg.n_heads, KV = cfg.n_kv_heads ?? H, F = cfg.mlp_hidden_size;
const V = cfg.vocab_size, hd = C / H, KVD = KV * hd;
const { metadata: md, tensorInfos, tensorDataOffset } = await gguf(file, { allowLocalFile: true });

// the keys
const f32 = (x) => Math.fround(x);
const want = {
  "general.architecture": "llada", "llada.context_length": cfg.max_sequence_length, "llada.embedding_length": C,
  "llada.block_count": L, "llada.feed_forward_length": F, "llada.vocab_size": V, "llada.attention.head_count": H,
  "llada.attention.head_count_kv": KV, "llada.attention.layer_norm_rms_epsilon": f32(cfg.rms_norm_eps),
  "llada.attention.causal": false, "llada.rope.freq_base": f32(cfg.rope_theta), "llada.rope.dimension_count": hd,
  "diffusion.shift_logits": false, "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.mask_token_id": cfg.mask_token_id,
  "tokenizer.ggml.add_bos_token": false,
};
if (cfg.eos_token_id !== null) want["tokenizer.ggml.eos_token_id"] = cfg.eos_token_id;
if (cfg.pad_token_id !== null) want["tokenizer.ggml.padding_token_id"] = cfg.pad_token_id;
expect(md.version === 3, `version ${md.version}, want 3`);
for (const [k, v] of Object.entries(want)) expect(md[k] === v, `${k} = ${md[k]}, want ${v}`);
const toks = md["tokenizer.ggml.tokens"], types = md["tokenizer.ggml.token_type"];
expect(Array.isArray(toks) && toks.length === V && new Set(toks).size === V, "tokenizer.ggml.tokens: V distinct strings");
expect(Array.isArray(types) && types.length === V && types[cfg.mask_token_id] === 3, "token_type: the mask a control token");
expect(Array.isArray(md["tokenizer.ggml.merges"]) && md["tokenizer.ggml.merges"].length >= 1, "at least one merge");
expect(typeof md["tokenizer.chat_template"] === "string", "a chat template");
if (existsSync(`${dir}/tokenizer.json`)) {
  const tj = JSON.parse(readFileSync(`${dir}/tokenizer.json`, "utf8"));
  const text = [], special = [];
  for (const [t, id] of Object.entries(tj.model.vocab)) text[id] = t;
  for (const a of tj.added_tokens ?? []) { text[a.id] = a.content; special[a.id] = a.special; }
  for (let i = 0; i < V; i++) {
    expect(toks[i] === (text[i] ?? `[${i}]`), `token ${i} is ${JSON.stringify(toks[i])}, tokenizer.json says ${JSON.stringify(text[i])}`);
    if (special[i]) expect(types[i] === 3, `token ${i} (${text[i]}), special in tokenizer.json, has type ${types[i]}`);
  }
}

// the tensors: names, shapes (innermost first), types, offsets
const isBF16 = (name) => type === "bf16" && shapes[name]?.length === 2 && name !== "token_embd.weight";
const shapes = { "token_embd.weight": [C, V], "output_norm.weight": [C], "output.weight": [C, V] };
for (let l = 0; l < L; l++) {
  Object.assign(shapes, {
    [`blk.${l}.attn_norm.weight`]: [C], [`blk.${l}.attn_q.weight`]: [C, C], [`blk.${l}.attn_k.weight`]: [C, KVD],
    [`blk.${l}.attn_v.weight`]: [C, KVD], [`blk.${l}.attn_output.weight`]: [C, C], [`blk.${l}.ffn_norm.weight`]: [C],
    [`blk.${l}.ffn_gate.weight`]: [C, F], [`blk.${l}.ffn_up.weight`]: [C, F], [`blk.${l}.ffn_down.weight`]: [F, C],
  });
}
expect(tensorInfos.length === Object.keys(shapes).length, `${tensorInfos.length} tensors, want ${Object.keys(shapes).length}`);
const info = {};
for (const t of tensorInfos) {
  info[t.name] = t;
  const s = shapes[t.name];
  expect(s !== undefined, `unexpected tensor ${t.name}`);
  if (s) expect(t.shape.length === s.length && t.shape.every((d, i) => Number(d) === s[i]), `${t.name} shape [${t.shape}], want [${s}]`);
  const want = isBF16(t.name) ? 30 : 0;
  expect(t.dtype === want && Number(t.offset) % 32 === 0, `${t.name}: type ${t.dtype} (want ${want}) at a 32-aligned offset`);
}

// the data against model.safetensors
const g = readFileSync(file), st = readFileSync(`${dir}/model.safetensors`);
const hn = Number(st.readBigUInt64LE(0)), header = JSON.parse(st.subarray(8, 8 + hn).toString("utf8"));
const stValue = (e, i) => e.dtype === "F32" ? st.readFloatLE(8 + hn + e.data_offsets[0] + 4 * i)
  : e.dtype === "BF16" ? new Float32Array(new Uint32Array([st.readUInt16LE(8 + hn + e.data_offsets[0] + 2 * i) << 16]).buffer)[0]
  : NaN;
const align = md["general.alignment"] ?? 32;
// a float rounded to bfloat16 (to nearest, ties to even; a subnormal to a zero of its sign), as a float
const u32 = new Uint32Array(1), fl = new Float32Array(u32.buffer);
const bf16 = (x) => {
  fl[0] = x;
  let u = u32[0];
  if ((u & 0x7fffffff) > 0x7f800000) u = (u | 0x00400000) & 0xffff0000;
  else if ((u & 0x7f800000) === 0) u &= 0x80000000;
  else u = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  u32[0] = u >>> 0;
  return fl[0];
};
const hf = (l, n) => `model.transformer.blocks.${l}.${n}.weight`;
const rows = (name, hfName, permute) => {
  const t = info[name], e = header[hfName], b16 = isBF16(name);
  if (!t || !e) { expect(false, `${name} / ${hfName} present`); return; }
  const cols = Number(t.shape[0]), nrows = t.shape.length > 1 ? Number(t.shape[1]) : 1;
  let bad = 0;
  for (let r = 0; r < nrows; r++) {
    let src = r;
    if (permute) { const h = Math.floor(r / hd), i = r % hd; src = h * hd + (i % 2 ? hd / 2 + (i - 1) / 2 : i / 2); }
    for (let j = 0; j < cols; j++) {
      const at = dataStart + Number(t.offset), b = stValue(e, src * cols + j);
      const a = b16 ? new Float32Array(new Uint32Array([g.readUInt16LE(at + 2 * (r * cols + j)) << 16]).buffer)[0]
        : g.readFloatLE(at + 4 * (r * cols + j));
      if (!Object.is(a, b16 ? bf16(b) : b)) bad++;
    }
  }
  expect(bad === 0, `${name}: ${bad} values differ from ${hfName}`);
};
// the data section's start, as the reader computed it (the tensor infos' end, aligned)
const dataStart = Number(tensorDataOffset);
expect(dataStart > 0 && dataStart % align === 0, `the data section at ${dataStart}, aligned`);
if (dataStart > 0) {
  rows("token_embd.weight", "model.transformer.wte.weight", false);
  rows("output_norm.weight", "model.transformer.ln_f.weight", false);
  rows("output.weight", cfg.weight_tying ? "model.transformer.wte.weight" : "model.transformer.ff_out.weight", false);
  for (let l = 0; l < L; l++) {
    rows(`blk.${l}.attn_norm.weight`, hf(l, "attn_norm"), false);
    rows(`blk.${l}.attn_q.weight`, hf(l, "q_proj"), true);
    rows(`blk.${l}.attn_k.weight`, hf(l, "k_proj"), true);
    rows(`blk.${l}.attn_v.weight`, hf(l, "v_proj"), false);
    rows(`blk.${l}.attn_output.weight`, hf(l, "attn_out"), false);
    rows(`blk.${l}.ffn_norm.weight`, hf(l, "ff_norm"), false);
    rows(`blk.${l}.ffn_gate.weight`, hf(l, "ff_proj"), false);
    rows(`blk.${l}.ffn_up.weight`, hf(l, "up_proj"), false);
    rows(`blk.${l}.ffn_down.weight`, hf(l, "ff_out"), false);
  }
}
console.log(`gguf: ${checks} checks, ${failed} failed`);
process.exit(failed ? 1 : 0);
