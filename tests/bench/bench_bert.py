#!/usr/bin/python3
"""bench_bert.py — the PyTorch side of the BERT-base encoder bench (make bench,
section "bert"; the engine side is tests/bench/bench_bert.c).

    bench_bert.py make DIR
        writes a BERT-base-shaped BertForSequenceClassification directory with
        random weights (hidden 768, 12 layers, 12 heads, ffn 3072, vocab 30522,
        512 positions, 2 labels): config.json, model.safetensors (~440 MB),
        vocab.txt
    bench_bert.py run DIR [--batches 1,32] [--len 64 | --mixed] [--rounds 3] [--check PREFIX]
        times PyTorch on the same weights and inputs as bench_bert.c: eval,
        torch.inference_mode(), nn.TransformerEncoder (post-LN, GELU: its
        fused fast path, nested tensors for padding) between BERT's
        embeddings and its pooler + classifier. Prints
            torch threads=T batch=B len=L texts_s=... ms_batch=... best_texts_s=... calls=N
        --check PREFIX: first compares the logits of the first 8 texts with
        PREFIX.logits.f32 written by `bench_bert --dump PREFIX` (the first 8
        --mixed texts; tolerance 1e-3)
        and exits 1 when they differ.

The inputs, shared with bench_bert.c: a pool of 64 texts; text i is [CLS],
ids 5 + (i * 7919 + t * 104729) % (V - 5) for t = 1 .. n-2, [SEP], with
n = L (--len) or 32 + (i * 37) % 97 (--mixed: 32..128); a call of batch B
takes the next B texts of the pool. Threads: torch.set_num_threads from
OMP_NUM_THREADS (run.sh sets 2 with OMP_WAIT_POLICY=passive).
"""
import json
import os
import statistics
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

H, L, NH, FF, V, P, NL = 768, 12, 12, 3072, 30522, 512, 2
POOL = 64


def text_ids(i, length, mixed):
    n = 32 + (i * 37) % 97 if mixed else length
    return [2] + [5 + (i * 7919 + t * 104729) % (V - 5) for t in range(1, n - 1)] + [3]


def write_safetensors(path, tensors):
    header, off = {}, 0
    for name, t in tensors:
        n = t.numel() * 4
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, t in tensors:
            f.write(t.contiguous().numpy().tobytes())


def make(d):
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(1234)
    T = []

    def w(name, *shape, std=0.02):
        T.append((name, torch.randn(*shape, generator=g) * std))

    def ln(name):
        T.append((name + ".weight", 1 + 0.05 * torch.randn(H, generator=g)))
        T.append((name + ".bias", 0.02 * torch.randn(H, generator=g)))

    def lin(name, o, i):
        w(name + ".weight", o, i)
        w(name + ".bias", o)

    w("bert.embeddings.word_embeddings.weight", V, H)
    w("bert.embeddings.position_embeddings.weight", P, H)
    w("bert.embeddings.token_type_embeddings.weight", 2, H)
    ln("bert.embeddings.LayerNorm")
    for i in range(L):
        p = "bert.encoder.layer.%d." % i
        for m in ("query", "key", "value"):
            lin(p + "attention.self." + m, H, H)
        lin(p + "attention.output.dense", H, H)
        ln(p + "attention.output.LayerNorm")
        lin(p + "intermediate.dense", FF, H)
        lin(p + "output.dense", H, FF)
        ln(p + "output.LayerNorm")
    lin("bert.pooler.dense", H, H)
    lin("classifier", NL, H)
    write_safetensors(os.path.join(d, "model.safetensors"), T)
    cfg = {"model_type": "bert", "architectures": ["BertForSequenceClassification"], "vocab_size": V,
           "hidden_size": H, "num_hidden_layers": L, "num_attention_heads": NH, "intermediate_size": FF,
           "hidden_act": "gelu", "max_position_embeddings": P, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
           "id2label": {"0": "NEGATIVE", "1": "POSITIVE"}, "label2id": {"NEGATIVE": 0, "POSITIVE": 1}}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + ["w%d" % i for i in range(5, V)]) + "\n")


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = bytearray(blob[8 + n:])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = torch.frombuffer(data, dtype=torch.float32, count=(b - a) // 4, offset=a).reshape(info["shape"])
    return out


class Bert(nn.Module):
    """BERT for sequence classification on torch's own encoder layers."""

    def __init__(self, W):
        super().__init__()
        self.W = W
        layer = nn.TransformerEncoderLayer(H, NH, FF, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=False, layer_norm_eps=1e-12)
        self.enc = nn.TransformerEncoder(layer, L, enable_nested_tensor=True)
        with torch.no_grad():
            for i, y in enumerate(self.enc.layers):
                p = "bert.encoder.layer.%d." % i
                q = [W[p + "attention.self.%s.weight" % m] for m in ("query", "key", "value")]
                y.self_attn.in_proj_weight.copy_(torch.cat(q))
                y.self_attn.in_proj_bias.copy_(torch.cat([W[p + "attention.self.%s.bias" % m]
                                                          for m in ("query", "key", "value")]))
                y.self_attn.out_proj.weight.copy_(W[p + "attention.output.dense.weight"])
                y.self_attn.out_proj.bias.copy_(W[p + "attention.output.dense.bias"])
                y.norm1.weight.copy_(W[p + "attention.output.LayerNorm.weight"])
                y.norm1.bias.copy_(W[p + "attention.output.LayerNorm.bias"])
                y.linear1.weight.copy_(W[p + "intermediate.dense.weight"])
                y.linear1.bias.copy_(W[p + "intermediate.dense.bias"])
                y.linear2.weight.copy_(W[p + "output.dense.weight"])
                y.linear2.bias.copy_(W[p + "output.dense.bias"])
                y.norm2.weight.copy_(W[p + "output.LayerNorm.weight"])
                y.norm2.bias.copy_(W[p + "output.LayerNorm.bias"])

    def forward(self, ids, pad):   # ids [B, T], pad [B, T] True on padding
        W = self.W
        T = ids.shape[1]
        x = (F.embedding(ids, W["bert.embeddings.word_embeddings.weight"])
             + W["bert.embeddings.position_embeddings.weight"][:T]
             + W["bert.embeddings.token_type_embeddings.weight"][0])
        x = F.layer_norm(x, (H,), W["bert.embeddings.LayerNorm.weight"], W["bert.embeddings.LayerNorm.bias"], 1e-12)
        x = self.enc(x, src_key_padding_mask=pad if pad.any() else None)
        if x.is_nested:
            x = x.to_padded_tensor(0.0)
        h = torch.tanh(F.linear(x[:, 0], W["bert.pooler.dense.weight"], W["bert.pooler.dense.bias"]))
        return F.linear(h, W["classifier.weight"], W["classifier.bias"])


def batch(texts):
    T = max(len(t) for t in texts)
    ids = torch.tensor([t + [0] * (T - len(t)) for t in texts])
    pad = torch.tensor([[j >= len(t) for j in range(T)] for t in texts])
    return ids, pad


def run(d, args):
    batches = [int(x) for x in args.get("--batches", "1,32").split(",")]
    length = int(args.get("--len", "64"))
    mixed = "--mixed" in args
    rounds = int(args.get("--rounds", "3"))
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    tname = "%dp" % threads if os.environ.get("OMP_WAIT_POLICY", "").lower() == "passive" else str(threads)
    model = Bert(read_safetensors(os.path.join(d, "model.safetensors"))).eval()
    pool = [text_ids(i, length, mixed) for i in range(POOL)]
    with torch.inference_mode():
        if "--check" in args:
            want = torch.frombuffer(bytearray(open(args["--check"] + ".logits.f32", "rb").read()), dtype=torch.float32)
            got = model(*batch([text_ids(i, 0, True) for i in range(8)])).flatten()   # --dump's texts
            diff = (got - want).abs().max().item()
            print("check max_abs_diff=%.3g (logits ~%.3g) %s" % (diff, want.abs().max().item(),
                                                                "ok" if diff < 1e-3 else "MISMATCH"))
            if diff >= 1e-3:
                sys.exit(1)
        for B in batches:
            calls_per_round = 8 if B == 1 else 1
            nxt = 0

            def call():
                nonlocal nxt
                texts = [pool[(nxt + j) % POOL] for j in range(B)]
                nxt += B
                model(*batch(texts))

            call()   # warm-up
            rates = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                for _ in range(calls_per_round):
                    call()
                rates.append(calls_per_round * B / (time.perf_counter() - t0))
            r = statistics.median(rates)
            print("torch threads=%s batch=%d len=%s texts_s=%.2f ms_batch=%.1f best_texts_s=%.2f calls=%d"
                  % (tname, B, "mixed" if mixed else length, r, 1000 * B / r, max(rates), 1 + rounds * calls_per_round),
                  flush=True)


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("make", "run"):
        sys.exit(__doc__)
    d = sys.argv[2]
    args, rest = {}, sys.argv[3:]
    i = 0
    while i < len(rest):
        if rest[i] == "--mixed":
            args["--mixed"] = "1"
            i += 1
        else:
            args[rest[i]] = rest[i + 1]
            i += 2
    if sys.argv[1] == "make":
        make(d)
    else:
        run(d, args)


if __name__ == "__main__":
    main()
