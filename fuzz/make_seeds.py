#!/usr/bin/env python3
"""make_seeds.py -- writes the committed seed corpora under fuzz/corpus/.

Run from the repository root: python3 fuzz/make_seeds.py. Seeds are small
real inputs (the repository's example images, reference safetensors files,
model configs, tiny vocabularies); each harness's header comment says what an
input is. Re-running rewrites the same files (deterministic).
"""
import base64, json, os, struct, zlib

C = "fuzz/corpus"

def put(harness, name, data):
    d = os.path.join(C, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def read(p):
    with open(p, "rb") as f:
        return f.read()

def png(w, h, color_type, depth, rows, palette=None, trns=None, interlace=0):
    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
    raw = b"".join(b"\x00" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, interlace))
    if palette: out += chunk(b"PLTE", palette)
    if trns: out += chunk(b"tRNS", trns)
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")

# ---- images: the examples, and tiny PNGs of the other colour types / depths
images = {
    "shoe.png": read("examples/shoe.png"),
    "trouser.jpg": read("examples/trouser.jpg"),
    "gray1_8x2.png": png(8, 2, 0, 1, [b"\xaa", b"\x55"]),
    "gray16_2x2.png": png(2, 2, 0, 16, [b"\x00\x00\xff\xff", b"\x80\x00\x10\x00"]),
    "rgba_2x2.png": png(2, 2, 6, 8, [b"\xff\x00\x00\xff\x00\xff\x00\x80", b"\x00\x00\xff\x00\xff\xff\xff\xff"]),
    "rgb16_1x1.png": png(1, 1, 2, 16, [b"\x12\x34\x56\x78\x9a\xbc"]),
    "palette_3x1.png": png(3, 1, 3, 8, [b"\x00\x01\x02"], palette=b"\xff\x00\x00\x00\xff\x00\x00\x00\xff", trns=b"\x80"),
    "interlaced_4x4.png": png(4, 4, 0, 8, [bytes([16 * i + j for j in range(4)]) for i in range(4)], interlace=1),
    "wide_64x1.png": png(64, 1, 0, 8, [bytes(range(64))]),
}
for n, b in images.items():
    put("image", n, b)

# ---- classification bodies (base64 images)
b64 = lambda b: base64.b64encode(b).decode()
put("classify", "png.json", json.dumps({"model": "fashion-cnn", "image": b64(images["gray1_8x2.png"]), "top_k": 3}))
put("classify", "jpeg.json", json.dumps({"model": "fashion-cnn", "image": b64(images["trouser.jpg"])}))
put("classify", "batch.json", json.dumps({"model": "fashion-cnn", "image": [b64(images["rgba_2x2.png"]), b64(images["palette_3x1.png"])], "top_k": 10}))
put("classify", "wrong_model.json", json.dumps({"model": "fortune-gpt", "image": "AAAA"}))
put("classify", "input.json", json.dumps({"model": "fashion-cnn", "input": "x", "top_k": None}))

# ---- completions bodies
bodies = [
    {"model": "fortune-gpt", "prompt": "The ", "max_tokens": 60, "temperature": 0.8, "seed": 1},
    {"model": "fortune-gpt", "prompt": "Q: ", "max_tokens": 60, "stream": True, "stream_options": {"include_usage": True}},
    {"model": "fortune-gpt", "prompt": "The ", "max_tokens": 5, "top_k": 2, "top_p": 0.1},
    {"model": "fortune-gpt", "prompt": [40, 41, 42], "n": 2, "echo": True, "logprobs": 3, "stop": ["\n", "."]},
    {"model": "fortune-gpt", "prompt": "", "stop": "x", "seed": -5},
    {"model": "fortune-gpt", "prompt": "caf\u00e9 \u2603", "max_tokens": 250},
    {"model": "fashion-cnn", "prompt": "hi"},
]
for i, b in enumerate(bodies):
    put("completions", "body%d.json" % i, json.dumps(b))

# ---- POST /v1/models bodies (paths of the fuzz repository, fuzz/fuzz_common.c)
for i, b in enumerate([{"id": "m1", "path": "fashion-cnn"}, {"id": "m2", "path": "fortune-gpt"},
                       {"id": "cfg-image"}, {"id": "x", "path": "../models"}, {"id": "a.b_c-1", "path": "cfg-text/"}]):
    put("models", "body%d.json" % i, json.dumps(b))

# ---- safetensors: the reference files of tests/ref
put("safetensors", "st_ref.safetensors", read("tests/ref/st_ref.safetensors"))
put("safetensors", "st_ref_nopad.safetensors", read("tests/ref/st_ref_nopad.safetensors"))
hdr = json.dumps({"__metadata__": {"format": "pt"}, "a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
                  "b": {"dtype": "BF16", "shape": [1, 1], "data_offsets": [4, 6]}, "c": {"dtype": "I64", "shape": [], "data_offsets": [6, 14]}}).encode()
put("safetensors", "f16_bf16_i64.safetensors", struct.pack("<Q", len(hdr)) + hdr + b"\x00\x3c\x00\xc0\x80\x3f" + b"\x01" + b"\x00" * 7)

# ---- llama2.c model.bin: the reference header alone (the harness pads the
# weights) and a tiny unshared-classifier header
put("llama2c", "ref_header.bin", read("tests/ref/transformer_ref/llama2c/model.bin")[:28])
put("llama2c", "tiny_unshared.bin", struct.pack("<7i", 8, 16, 1, 2, 1, -4, 4))

# ---- config.json: first byte 0 = the image directory, 1 = the text directory
put("config", "fashion-cnn.json", b"\x00" + read("models/fashion-cnn/config.json"))
put("config", "fortune-gpt.json", b"\x01" + read("models/fortune-gpt/config.json"))
put("config", "llama2c.json", b"\x01" + read("tests/ref/transformer_ref/llama2c/config.json"))
put("config", "hf_llama.json", b"\x01" + read("tests/ref/transformer_ref/llama/config.json"))
put("config", "hf_gpt2.json", b"\x01" + read("tests/ref/transformer_ref/gpt2/config.json"))
put("config", "lstm.json", b"\x01" + json.dumps({"task": "text-generation", "arch": "lstm", "dim": 32, "layers": 1, "vocab_size": 113}).encode())

# ---- tokenizers
tiny_vocab, tiny_merges = read("tests/ref/tiny_bpe/vocab.json"), read("tests/ref/tiny_bpe/merges.txt")
put("tok_gpt2", "tiny_bpe", tiny_vocab + b"\n#merges\n" + tiny_merges)

# a tiny llama2.c tokenizer.bin: <unk>, <s>, </s>, 256 byte tokens, a few pieces
pieces = [(0.0, b"<unk>"), (0.0, b"\n<s>\n"), (0.0, b"\n</s>\n")] + [(0.0, b"<0x%02X>" % i) for i in range(256)]
pieces += [(-1.0 - i, p) for i, p in enumerate([b" ", b"e", b"t", b"h", b"he", b" t", b" the", b"l", b"ll", b"o", b"hello", b" hello"])]
put("tok_llama2c", "tiny.bin", struct.pack("<i", 6) + b"".join(struct.pack("<fi", s, len(p)) + p for s, p in pieces))

vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
vocab.update({"<0x%02X>" % b: 3 + b for b in range(256)})
for i, p in enumerate(["\u2581", "h", "e", "l", "o", "\u2581h", "ll", "\u2581he", "\u2581hell", "\u2581hello", "w"]):
    vocab[p] = 259 + i
added = [{"id": i, "content": c, "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])]
model = {"type": "BPE", "vocab": vocab, "merges": ["\u2581 h", "l l", "\u2581h e", "\u2581he ll", "\u2581hell o"],
         "unk_token": "<unk>", "byte_fallback": True, "fuse_unk": True}
prepend = {"model": model, "added_tokens": added, "pre_tokenizer": None,
           "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                              {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}}
metaspace = {"model": model, "added_tokens": added, "normalizer": None,
             "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}}
put("tok_hf", "llama_prepend.json", json.dumps(prepend) + "\n#text\nhello world")
put("tok_hf", "llama_metaspace.json", json.dumps(metaspace) + "\n#text\n\u00e9 hello")
gv = json.loads(tiny_vocab)
gm = [l for l in tiny_merges.decode().splitlines() if l and not l.startswith("#version")]
gpt2_hf = {"model": {"type": "BPE", "vocab": gv, "merges": gm}, "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
           "added_tokens": []}
put("tok_hf", "gpt2_bytelevel.json", json.dumps(gpt2_hf) + "\n#text\nhello world, hell!")

put("tok_chars", "fortune.json", read("models/fortune-gpt/vocab.json") + b"\n#text\nThe fortune")
put("tok_chars", "specials.json", json.dumps(["<unk>", "<s>", "</s>", "<pad>", "a", "\u00e9", "\u2603"]) + "\n#text\na\u00e9x")

corpus = json.loads(read("tests/ref/tok_corpus.json"))
for c in corpus[:16]:
    put("tok_encode", c["name"], c["text"])

# ---- dataset tars: label folders of tiny PNGs, plain and gzip'd (mtime 0: deterministic)
import gzip, io, tarfile
def tar(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), 0
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()
two = [("a/1.png", images["gray1_8x2.png"]), ("b/2.png", images["rgba_2x2.png"]), ("./b/3.png", images["gray16_2x2.png"])]
put("dataset_tar", "two_labels.tar", tar(two))
put("dataset_tar", "two_labels.tar.gz", gzip.compress(tar(two), mtime=0))
put("dataset_tar", "one_label.tar", tar(two[1:]))
put("dataset_tar", "traversal.tar", tar(two + [("../x.png", images["gray1_8x2.png"])]))
