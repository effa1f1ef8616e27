#!/usr/bin/env python3
"""Exports a Llama model directory of inferd's (config.json + F32
model.safetensors, e.g. from `inferd train --task text-generation --arch
llama`) as a llama2.c legacy checkpoint directory: model.bin in run.c's
layout (export.py --version 0), config.json {"format": "llama2c"}, and the
tokenizer files copied.

    scripts/export-llama2c.py IN_DIR OUT_DIR

Standard library only. q/k rows go from Hugging Face's RoPE order back to
llama2.c's interleaved one (the inverse of export.py's permute_reverse).
"""
import array, json, os, shutil, struct, sys


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {t['dtype']}; only F32 models are exported")
        b, e = t["data_offsets"]
        a = array.array("f")
        a.frombytes(data[b:e])
        out[name] = (t["shape"], a)
    return out


def hf_to_interleaved(w, heads, hd, cols):
    """Rows (h, s * hd/2 + j) -> (h, 2j + s): llama2.c's RoPE pairs are adjacent rows."""
    out = array.array("f", bytes(4 * len(w)))
    for h in range(heads):
        for j in range(hd // 2):
            for s in range(2):
                src = (h * hd + s * (hd // 2) + j) * cols
                dst = (h * hd + 2 * j + s) * cols
                out[dst:dst + cols] = w[src:src + cols]
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    cfg = json.load(open(os.path.join(src, "config.json")))
    if cfg.get("model_type") != "llama":
        sys.exit(f"{src}: model_type must be llama")
    if cfg.get("rope_scaling") or cfg.get("rope_theta", 10000.0) != 10000.0:
        sys.exit(f"{src}: llama2.c's run.c implies rope_theta 10000 and no rope_scaling")
    C, H, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    NH = cfg["num_attention_heads"]
    NKV = cfg.get("num_key_value_heads", NH)
    V, T = cfg["vocab_size"], cfg["max_position_embeddings"]
    hd = C // NH
    tied = cfg.get("tie_word_embeddings", False)
    w = read_safetensors(os.path.join(src, "model.safetensors"))

    def get(name):
        return w[name][1]

    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(dst, "model.bin"), "wb") as f:
        f.write(struct.pack("<7i", C, H, L, NH, NKV, V if tied else -V, T))
        f.write(get("model.embed_tokens.weight").tobytes())
        lp = "model.layers.%d."
        for kind in ["input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                     "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.down_proj",
                     "mlp.up_proj"]:
            for l in range(L):
                t = get(lp % l + kind + ".weight")
                if kind == "self_attn.q_proj":
                    t = hf_to_interleaved(t, NH, hd, C)
                elif kind == "self_attn.k_proj":
                    t = hf_to_interleaved(t, NKV, hd, C)
                f.write(t.tobytes())
        f.write(get("model.norm.weight").tobytes())
        f.write(bytes(4 * T * hd))   # the legacy freq_cis_real / freq_cis_imag tables (run.c skips them)
        if not tied:
            f.write(get("lm_head.weight").tobytes())
    json.dump({"format": "llama2c"}, open(os.path.join(dst, "config.json"), "w"), indent=1)
    for name in ["vocab.json", "merges.txt", "tokenizer.json", "tokenizer.bin", "tokenizer.model"]:
        if os.path.exists(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), os.path.join(dst, name))


if __name__ == "__main__":
    main()
