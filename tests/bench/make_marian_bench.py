#!/usr/bin/python3
"""make_marian_bench.py OUT_DIR — writes a Marian-base-shaped MarianMT
directory with random weights for `make bench` (not committed: ~300 MB):
d_model 512, 6 + 6 layers, 8 heads, ffn 2048, vocab 58101 (opus-mt-en-de's
size), swish, scaled embeddings, shared vocabulary; source.spm / target.spm
are tests/ref/spm/tiny.model and vocab.json holds its pieces then filler
pieces up to the vocabulary size ("<pad>" last), so the directory is servable.
Plain Python + torch (for the random numbers); tensors are streamed to disk.
"""
import json
import os
import shutil
import struct
import sys

import torch

D, LAYERS, HEADS, FFN, V, MAXPOS = 512, 6, 8, 2048, 58101, 512
HERE = os.path.dirname(os.path.abspath(__file__))
SPM = os.path.join(HERE, "..", "ref", "spm", "tiny.model")
SPM_VOCAB = os.path.join(HERE, "..", "ref", "marian_tiny", "vocab.json")


def shapes():
    yield "model.shared.weight", (V, D), 0.05
    yield "final_logits_bias", (1, V), 0.0
    for side in ("encoder", "decoder"):
        for l in range(LAYERS):
            pre = "model.%s.layers.%d." % (side, l)
            for a in ["self_attn"] + (["encoder_attn"] if side == "decoder" else []):
                for w in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    yield pre + a + "." + w + ".weight", (D, D), 0.05
                    yield pre + a + "." + w + ".bias", (D,), 0.01
                yield pre + a + "_layer_norm.weight", (D,), -1
                yield pre + a + "_layer_norm.bias", (D,), 0.0
            yield pre + "fc1.weight", (FFN, D), 0.05
            yield pre + "fc1.bias", (FFN,), 0.01
            yield pre + "fc2.weight", (D, FFN), 0.03
            yield pre + "fc2.bias", (D,), 0.01
            yield pre + "final_layer_norm.weight", (D,), -1
            yield pre + "final_layer_norm.bias", (D,), 0.0


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(1)
    header, off = {}, 0
    for name, shape, _ in shapes():
        n = 4
        for s in shape:
            n *= s
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, shape, std in shapes():
            t = torch.ones(shape) if std < 0 else torch.randn(*shape, generator=g) * std
            f.write(t.numpy().tobytes())
    with open(SPM_VOCAB, encoding="utf-8") as f:
        small = json.load(f)
    pieces = sorted(small, key=small.get)
    pieces = [p for p in pieces if p != "<pad>"]
    vocab = {p: i for i, p in enumerate(pieces)}
    for i in range(len(vocab), V - 1):
        vocab["▁filler%d" % i] = i
    vocab["<pad>"] = V - 1
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    for name in ("source.spm", "target.spm"):
        shutil.copyfile(SPM, os.path.join(out, name))
    cfg = {"architectures": ["MarianMTModel"], "model_type": "marian", "vocab_size": V, "decoder_vocab_size": V,
           "d_model": D, "encoder_layers": LAYERS, "decoder_layers": LAYERS, "encoder_attention_heads": HEADS,
           "decoder_attention_heads": HEADS, "encoder_ffn_dim": FFN, "decoder_ffn_dim": FFN,
           "activation_function": "swish", "max_position_embeddings": MAXPOS, "scale_embedding": True,
           "share_encoder_decoder_embeddings": True, "pad_token_id": V - 1, "eos_token_id": 0,
           "decoder_start_token_id": V - 1}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


if __name__ == "__main__":
    main()
