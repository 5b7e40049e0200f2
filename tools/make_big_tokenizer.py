# make_big_tokenizer.py - a byte-level BPE tokenizer.json of LLaDA-8B's
# vocabulary size (256 byte stand-ins + 127,744 merges = 128,000 tokens, and
# <|mdm_mask|>), for make bench-tokenizer: the first 60,000 merges grow words
# of README.md, the rest join random tokens (deterministic, seed 1).
#   python3 tools/make_big_tokenizer.py OUT_DIR
import json, os, random, sys
out = sys.argv[1] if len(sys.argv) > 1 else "build/big_tokenizer"
os.makedirs(out, exist_ok=True)
random.seed(1)
def bl(b):
    if 33<=b<=126 or 161<=b<=172 or b>=174: return chr(b)
    return chr(256+b if b<=32 else 289+(b-127) if b<=160 else 323)
vocab={bl(b):b for b in range(256)}
toks=[bl(b) for b in range(256)]
# merges built from frequent pairs of an English-ish text, then random pairs
words=open('README.md', encoding='utf-8').read().split()
merges=[]; seen=set(vocab)
for w in words*3:
    w=bl(32)+''.join(bl(c) for c in w.encode())
    for i in range(1,len(w)):
        a,b=w[:i],w[i]
        if a in seen and b in seen and a+b not in seen and len(merges)<60000:
            seen.add(a+b); vocab[a+b]=len(vocab); merges.append(a+' '+b); toks.append(a+b)
while len(merges)<127744:
    a=random.choice(toks); b=random.choice(toks[:2000])
    if a+b in seen or len(a+b)>24: continue
    seen.add(a+b); vocab[a+b]=len(vocab); merges.append(a+' '+b); toks.append(a+b)
t={"version":"1.0","added_tokens":[{"id":len(vocab),"content":"<|mdm_mask|>","single_word":False,"lstrip":False,"rstrip":False,"normalized":False,"special":True}],
   "normalizer":None,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":False,"trim_offsets":True,"use_regex":True},
   "post_processor":None,"decoder":{"type":"ByteLevel"},
   "model":{"type":"BPE","dropout":None,"unk_token":None,"continuing_subword_prefix":None,"end_of_word_suffix":None,"fuse_unk":False,"byte_fallback":False,"vocab":vocab,"merges":merges}}
json.dump(t, open(os.path.join(out, 'tokenizer.json'), 'w', encoding='utf-8'), ensure_ascii=False)
print(f'{out}/tokenizer.json: {len(vocab) + 1} tokens, {len(merges)} merges')
