#!/usr/bin/python3
"""bench_marian_torch.py — the PyTorch baseline for tests/bench/bench_marian.c:
the same MarianMT weights (a HF directory's model.safetensors, read with a
small reader), greedy decoding of B sentences at once with a KV cache
(cross-attention K/V computed once per sentence), written here in plain
PyTorch after the reference of tests/ref/make_marian_ref.py.

    bench_marian_torch.py [--batches 1,16] [--threads 2] [--src-len 20] [--max-tokens 20]
                          [--rounds 3] [--check DUMP] MODEL_DIR

Sources: the same fixed-seed ids as bench_marian. Prints
    torch threads=T batch=B sent_s=.. ms_batch=..
(T printed as "2p" under OMP_WAIT_POLICY=passive). --check DUMP reads
bench_marian's --dump file and prints "check ok|MISMATCH" (greedy ids equal).
Asserts nothing about speed.
"""
import argparse
import json
import math
import os
import statistics
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F


def load(dir_):
    with open(os.path.join(dir_, "config.json")) as f:
        cfg = json.load(f)
    path = os.path.join(dir_, "model.safetensors")
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    p = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        p[name] = torch.from_numpy(np.frombuffer(mm, dtype=np.float32, count=(b - a) // 4, offset=8 + n + a)
                                   .reshape(e["shape"]))
    return cfg, p


class Marian:
    def __init__(self, cfg, p):
        self.c, self.p = cfg, p
        self.d, self.H = cfg["d_model"], cfg["decoder_attention_heads"]
        self.scale = math.sqrt(self.d) if cfg.get("scale_embedding") else 1.0
        self.E = p["model.shared.weight"]
        self.bias = p["final_logits_bias"][0]
        n, d = cfg["max_position_embeddings"], self.d
        pos = torch.arange(n, dtype=torch.float64)[:, None]
        ang = pos / torch.pow(10000.0, 2 * torch.arange(d // 2, dtype=torch.float64)[None] / d)
        self.pos = torch.cat([torch.sin(ang), torch.cos(ang)], 1).float()

    def lin(self, x, name):
        return F.linear(x, self.p[name + ".weight"], self.p[name + ".bias"])

    def ln(self, x, name):
        return F.layer_norm(x, (self.d,), self.p[name + ".weight"], self.p[name + ".bias"], 1e-5)

    def heads(self, x):   # [B, T, d] -> [B, H, T, hd]
        B, T, _ = x.shape
        return x.view(B, T, self.H, self.d // self.H).transpose(1, 2)

    def attn(self, q, k, v, mask=None):
        s = (q @ k.transpose(-1, -2)) * (self.d // self.H) ** -0.5
        if mask is not None:
            s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
        o = torch.softmax(s, -1) @ v
        B, H, T, hd = o.shape
        return o.transpose(1, 2).reshape(B, T, H * hd)

    def ffn(self, x, pre):
        return self.lin(F.silu(self.lin(x, pre + "fc1")), pre + "fc2")

    def encode(self, src, mask):
        x = self.E[src] * self.scale + self.pos[: src.shape[1]][None]
        for l in range(self.c["encoder_layers"]):
            pre = "model.encoder.layers.%d." % l
            a = self.attn(self.heads(self.lin(x, pre + "self_attn.q_proj")), self.heads(self.lin(x, pre + "self_attn.k_proj")),
                          self.heads(self.lin(x, pre + "self_attn.v_proj")), mask)
            x = self.ln(x + self.lin(a, pre + "self_attn.out_proj"), pre + "self_attn_layer_norm")
            x = self.ln(x + self.ffn(x, pre), pre + "final_layer_norm")
        return x

    def greedy(self, src, mask, max_tokens):
        B = src.shape[0]
        enc = self.encode(src, mask)
        L = self.c["decoder_layers"]
        cross = []
        for l in range(L):
            pre = "model.decoder.layers.%d.encoder_attn." % l
            cross.append((self.heads(self.lin(enc, pre + "k_proj")), self.heads(self.lin(enc, pre + "v_proj"))))
        cache = [None] * L
        tok = torch.full((B,), self.c["decoder_start_token_id"], dtype=torch.long)
        out = []
        for t in range(max_tokens):
            x = (self.E[tok] * self.scale + self.pos[t])[:, None]
            for l in range(L):
                pre = "model.decoder.layers.%d." % l
                k, v = self.heads(self.lin(x, pre + "self_attn.k_proj")), self.heads(self.lin(x, pre + "self_attn.v_proj"))
                if cache[l] is not None:
                    k, v = torch.cat([cache[l][0], k], 2), torch.cat([cache[l][1], v], 2)
                cache[l] = (k, v)
                a = self.attn(self.heads(self.lin(x, pre + "self_attn.q_proj")), k, v)
                x = self.ln(x + self.lin(a, pre + "self_attn.out_proj"), pre + "self_attn_layer_norm")
                a = self.attn(self.heads(self.lin(x, pre + "encoder_attn.q_proj")), cross[l][0], cross[l][1], mask)
                x = self.ln(x + self.lin(a, pre + "encoder_attn.out_proj"), pre + "encoder_attn_layer_norm")
                x = self.ln(x + self.ffn(x, pre), pre + "final_layer_norm")
            logits = F.linear(x[:, 0], self.E, self.bias)
            logits[:, self.c["pad_token_id"]] = float("-inf")
            tok = logits.argmax(-1)
            out.append(tok)
        return torch.stack(out, 1)


def sources(n, src_len, vocab, eos):
    s, out = 0x9e3779b97f4a7c15, []
    for _ in range(n):
        ids = []
        for _ in range(src_len - 1):
            s = (s * 6364136223846793005 + 1442695040888963407) & (2 ** 64 - 1)
            ids.append(3 + (s >> 33) % (vocab - 4))
        out.append(ids + [eos])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--src-len", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--check")
    ap.add_argument("dir")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg, p = load(a.dir)
    m = Marian(cfg, p)
    srcs = sources(256, a.src_len, cfg["vocab_size"], cfg["eos_token_id"])
    tname = "%dp" % a.threads if os.environ.get("OMP_WAIT_POLICY", "").lower() == "passive" else str(a.threads)
    with torch.inference_mode():
        if a.check:
            ok = True
            with open(a.check) as f:
                for line in f:
                    s, o = line.split("|")
                    s = [int(x) for x in s.split()]
                    want = [int(x) for x in o.split()]
                    got = m.greedy(torch.tensor([s]), torch.ones(1, len(s), dtype=torch.bool), len(want))[0].tolist()
                    ok &= got == want
            print("check", "ok" if ok else "MISMATCH", "(greedy ids of bench_marian's first sentences)")
        for B in [int(x) for x in a.batches.split(",")]:
            src = torch.tensor(srcs[:B])
            mask = torch.ones(src.shape, dtype=torch.bool)
            times = []
            for r in range(a.rounds + 1):
                t0 = time.perf_counter()
                m.greedy(src, mask, a.max_tokens)
                if r:
                    times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            print("torch threads=%s batch=%d sent_s=%.2f ms_batch=%.1f" % (tname, B, B / med, med * 1e3), flush=True)


if __name__ == "__main__":
    main()
