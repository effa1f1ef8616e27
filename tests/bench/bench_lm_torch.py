#!/usr/bin/python3
"""bench_lm_torch.py — the PyTorch baseline for tests/bench/bench_lm.c on a
GPT-2 model directory (what `mkmodel gpt2 OUT VOCAB 768 12 12 1024` writes:
GPT-2-small shape, HF GPT-2 names, with or without the "transformer." prefix).

GPT-2 is written here in plain PyTorch from the published architecture (as
tests/ref/make_transformer_ref.py does; HF transformers is not used):
learned positions, pre-LayerNorm blocks, gelu_new (tanh), a causal
attention over a preallocated KV cache, the head tied to wte. Like the
engine's step, a step returns the logits of each sequence's last position
only (that is all decoding and TTFT need). The Conv1D weights (stored
[in, out], y = x @ W + b) are transposed once at load to nn.Linear's
[out, in]: a step of several rows runs F.linear, a one-row step
torch.addmv / torch.mv, which read the weights 2-4x faster here than the
one-row addmm that nn.Linear and HF's Conv1D call (measured on this
machine: equal speed at 16 and 128 rows), so PyTorch runs at its best.

    bench_lm_torch.py [--threads 2,1] [--batches 1,16] [--steps 48] [--prompt 8] [--rounds 3]
                      [--ttft-prompt 128] [--name NAME] [--check PREFIX] MODEL_DIR

Per thread count T (printed as "2p" when OMP_WAIT_POLICY=passive is set and
T > 1), under torch.inference_mode():
    lm_torch model=NAME threads=T batch=N tok_s_stream=.. tok_s_total=.. ms_step=..
        N sequences prefill --prompt fixed-seed ids in one batched step, then
        --steps greedy decode steps advance all N by one token each (batched,
        KV cache); median of --rounds rounds after a warm-up (bench_lm's protocol)
    lm_torch model=NAME threads=T ttft_prompt=P ttft_ms=.. prefill_tok_s=..
        one fresh sequence prefills bench_lm's P-token TTFT prompt in one step
        and takes the argmax: median of max(--rounds, 5) after a warm-up
--check PREFIX first reads `bench_lm --dump PREFIX`'s PREFIX.ids and
PREFIX.logits.f32 (the engine's logits after prefilling its TTFT prompt, then
after each of its greedy ids), runs the same ids through the cached path
above (and once without a cache, the whole sequence causally), and prints
    check model=NAME rows=G max_abs_diff=.. max_abs_logit=.. greedy_equal=.. cache_vs_full=.. ok|MISMATCH
(ok: max_abs_diff <= 1e-3 * max(1, max_abs_logit) and the same greedy ids);
a mismatch exits 1 before anything is timed.

Threads: torch.set_num_threads(T), one inter-op thread, and OpenBLAS (which
Debian's torch calls for its matmuls and whose pool torch.set_num_threads
does not size) pinned to T as well, as tests/bench/bench_torch.py does.
Run with /usr/bin/python3 (Debian's python3-torch); stdlib + torch only;
asserts nothing about speed.
"""
import argparse
import ctypes
import json
import math
import os
import statistics
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- weights
def read_safetensors(path):
    """name -> float32 tensor, read straight into torch's own memory (no second copy)."""
    out = {}
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
        base = 8 + hlen
        for name, info in sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                                 key=lambda kv: kv[1]["data_offsets"][0]):
            if info["dtype"] != "F32":
                raise SystemExit(f"bench_lm_torch.py: {name}: dtype {info['dtype']}, only F32 is read")
            start, end = info["data_offsets"]
            t = torch.empty(info["shape"], dtype=torch.float32)
            if t.numel() * 4 != end - start:
                raise SystemExit(f"bench_lm_torch.py: {name}: shape and offsets disagree")
            f.seek(base + start)
            if end > start and f.readinto((ctypes.c_char * (end - start)).from_address(t.data_ptr())) != end - start:
                raise SystemExit(f"bench_lm_torch.py: {path} is truncated")
            out[name[len("transformer."):] if name.startswith("transformer.") else name] = t
    return out


# ---------------------------------------------------------------- model
def linear(x, w, b):
    """x [M, in] @ w[out, in]^T + b; one row through addmv (see the module doc)."""
    return torch.addmv(b, w, x[0]).unsqueeze(0) if x.shape[0] == 1 else F.linear(x, w, b)


class Block(nn.Module):
    def __init__(self, p, pre, n_head, eps):
        super().__init__()
        g = lambda n: nn.Parameter(p[pre + n], requires_grad=False)
        gt = lambda n: nn.Parameter(p.pop(pre + n).t().contiguous(), requires_grad=False)   # Conv1D -> [out, in]
        self.ln1_w, self.ln1_b, self.ln2_w, self.ln2_b = g("ln_1.weight"), g("ln_1.bias"), g("ln_2.weight"), g("ln_2.bias")
        self.qkv_w, self.qkv_b = gt("attn.c_attn.weight"), g("attn.c_attn.bias")       # [3C, C]
        self.proj_w, self.proj_b = gt("attn.c_proj.weight"), g("attn.c_proj.bias")     # [C, C]
        self.fc_w, self.fc_b = gt("mlp.c_fc.weight"), g("mlp.c_fc.bias")               # [4C, C]
        self.fc2_w, self.fc2_b = gt("mlp.c_proj.weight"), g("mlp.c_proj.bias")         # [C, 4C]
        self.C, self.H, self.eps = self.ln1_w.shape[0], n_head, eps
        self.hd = self.C // n_head

    def forward(self, x, kc, vc, pos0):
        """x [B, T, C]; kc/vc [B, H, L, hd] this layer's cache, positions pos0.. of x written into it."""
        B, T, C = x.shape
        H, hd = self.H, self.hd
        h = F.layer_norm(x, (C,), self.ln1_w, self.ln1_b, self.eps).view(B * T, C)
        qkv = linear(h, self.qkv_w, self.qkv_b).view(B, T, 3, H, hd)
        q = qkv[:, :, 0].transpose(1, 2)                                   # [B, H, T, hd]
        kc[:, :, pos0:pos0 + T] = qkv[:, :, 1].transpose(1, 2)
        vc[:, :, pos0:pos0 + T] = qkv[:, :, 2].transpose(1, 2)
        k, v = kc[:, :, :pos0 + T], vc[:, :, :pos0 + T]
        att = torch.matmul(q, k.transpose(-1, -2)).mul_(1.0 / math.sqrt(hd))   # [B, H, T, pos0 + T]
        if T > 1:   # causal: query i (position pos0 + i) sees keys 0..pos0 + i
            mask = torch.ones(T, pos0 + T, dtype=torch.bool).triu_(pos0 + 1)
            att.masked_fill_(mask, float("-inf"))
        y = torch.matmul(att.softmax(dim=-1), v).transpose(1, 2).reshape(B * T, C)
        x = x + linear(y, self.proj_w, self.proj_b).view(B, T, C)
        h = F.layer_norm(x, (C,), self.ln2_w, self.ln2_b, self.eps).view(B * T, C)
        f = F.gelu(linear(h, self.fc_w, self.fc_b), approximate="tanh")
        return x + linear(f, self.fc2_w, self.fc2_b).view(B, T, C)


class GPT2(nn.Module):
    def __init__(self, cfg, p):
        super().__init__()
        self.C, self.H, self.L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
        self.ctx, self.V = cfg.get("n_positions", cfg.get("n_ctx", 1024)), cfg["vocab_size"]
        eps = cfg.get("layer_norm_epsilon", 1e-5)
        self.eps = eps
        self.wte = nn.Parameter(p["wte.weight"], requires_grad=False)   # [V, C], also the head
        self.wpe = nn.Parameter(p["wpe.weight"], requires_grad=False)
        self.blocks = nn.ModuleList(Block(p, f"h.{l}.", self.H, eps) for l in range(self.L))
        self.lnf_w = nn.Parameter(p["ln_f.weight"], requires_grad=False)
        self.lnf_b = nn.Parameter(p["ln_f.bias"], requires_grad=False)
        if "lm_head.weight" in p and not torch.equal(p["lm_head.weight"], p["wte.weight"]):
            raise SystemExit("bench_lm_torch.py: an untied lm_head is not GPT-2")

    def new_cache(self, B, max_len):
        shape = (B, self.H, max_len, self.C // self.H)
        return [(torch.empty(shape), torch.empty(shape)) for _ in range(self.L)]

    def forward(self, ids, cache, pos0, all_positions=False):
        """ids [B, T] at positions pos0..pos0+T-1 -> logits [B, V] of the last position ([B, T, V] if all_positions)."""
        B, T = ids.shape
        x = self.wte[ids] + self.wpe[pos0:pos0 + T]
        for blk, (kc, vc) in zip(self.blocks, cache):
            x = blk(x, kc, vc, pos0)
        if not all_positions:
            x = x[:, -1]
        x = F.layer_norm(x, (self.C,), self.lnf_w, self.lnf_b, self.eps)
        if x.dim() == 2 and x.shape[0] == 1:
            return torch.mv(self.wte, x[0]).unsqueeze(0)
        return F.linear(x, self.wte)


def load(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("model_type", "gpt2") != "gpt2":
        raise SystemExit(f"bench_lm_torch.py: {model_dir} is {cfg.get('model_type')!r}, not gpt2")
    if cfg.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        raise SystemExit(f"bench_lm_torch.py: activation {cfg['activation_function']!r} is not GPT-2's gelu_new")
    return GPT2(cfg, read_safetensors(os.path.join(model_dir, "model.safetensors"))).eval()


# ---------------------------------------------------------------- threads
# openblas() / set_threads(): bench_torch.py's (torch's OpenBLAS pinned too)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import openblas, parse_list, set_threads  # noqa: E402


# ---------------------------------------------------------------- check
def check(net, prefix, name):
    with open(prefix + ".ids") as f:
        P, G, V = (int(v) for v in f.readline().split())
        prompt = [int(v) for v in f.readline().split()]
        greedy = [int(v) for v in f.readline().split()]
    with open(prefix + ".logits.f32", "rb") as f:
        ref = torch.frombuffer(bytearray(f.read()), dtype=torch.float32)
    if V != net.V or len(prompt) != P or len(greedy) != G or ref.numel() != G * V:
        print(f"check model={name} the dump {prefix} does not match this model MISMATCH", flush=True)
        return False
    ref = ref.view(G, V)
    cache = net.new_cache(1, P + G)
    rows = [net(torch.tensor([prompt]), cache, 0)[0]]
    for i in range(G - 1):
        rows.append(net(torch.tensor([[greedy[i]]]), cache, P + i)[0])
    got = torch.stack(rows)
    full = net(torch.tensor([prompt + greedy[:-1]]), net.new_cache(1, P + G), 0, all_positions=True)[0, P - 1:]
    diff = (got - ref).abs().max().item()
    big = ref.abs().max().item()
    same = got.argmax(dim=1).tolist() == greedy
    ok = diff <= 1e-3 * max(1.0, big) and same
    print(f"check model={name} rows={G} prompt={P} max_abs_diff={diff:.3g} max_abs_logit={big:.3g} "
          f"greedy_equal={same} cache_vs_full={(got - full).abs().max().item():.3g} {'ok' if ok else 'MISMATCH'}",
          flush=True)
    return ok


# ---------------------------------------------------------------- timings
def lcg_ids(seed, n, V):
    """bench_lm.c's decode_round prompt ids."""
    out = []
    for _ in range(n):
        seed = (seed * 1664525 + 1013904223) & 0xFFFFFFFF
        out.append((seed >> 8) % V)
    return out, seed


def decode_round(net, N, prompt, steps, seed):
    """N sequences prefill `prompt` ids in one step, then `steps` batched greedy steps: their seconds."""
    rows = []
    for _ in range(N):
        r, seed = lcg_ids(seed, prompt, net.V)
        rows.append(r)
    cache = net.new_cache(N, prompt + steps)
    logits = net(torch.tensor(rows), cache, 0)
    t0 = time.perf_counter()
    for s in range(steps):
        nxt = logits.argmax(dim=1, keepdim=True)
        logits = net(nxt, cache, prompt + s)
    return time.perf_counter() - t0


def ttft_once(net, ids):
    t0 = time.perf_counter()
    cache = net.new_cache(1, ids.shape[1] + 1)
    int(net(ids, cache, 0).argmax(dim=1)[0])
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description="PyTorch GPT-2 decode/prefill beside bench_lm (see the module doc)")
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--prompt", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ttft-prompt", type=int, default=128)
    ap.add_argument("--name")
    ap.add_argument("--check", metavar="PREFIX")
    ap.add_argument("model_dir")
    a = ap.parse_args()
    threads, batches = parse_list(a.threads), parse_list(a.batches)
    name = a.name or os.path.basename(os.path.normpath(a.model_dir))
    if min([a.steps, a.prompt, a.rounds, a.ttft_prompt] + threads + batches) < 1:
        ap.error("every count must be >= 1")

    torch.set_num_interop_threads(1)
    ob = openblas()
    net = load(a.model_dir)
    if a.prompt + a.steps > net.ctx or a.ttft_prompt >= net.ctx:
        ap.error(f"need prompt + steps <= context {net.ctx} and ttft-prompt < context")
    passive = os.environ.get("OMP_WAIT_POLICY", "").lower() == "passive"
    print(f"lm_torch torch={torch.__version__} model={name} params={sum(p.numel() for p in net.parameters())} "
          f"openblas_threads_pinned={ob is not None} omp_wait_policy={'passive' if passive else 'default'}", flush=True)
    with torch.inference_mode():
        if a.check:
            set_threads(max(threads), ob)
            if not check(net, a.check, name):
                return 1
        ttft_ids = torch.tensor([[3 + (j * 7919) % (net.V - 3) for j in range(a.ttft_prompt)]])   # bench_lm's
        for T in threads:
            set_threads(T, ob)
            tname = f"{T}p" if passive and T > 1 else str(T)
            for N in batches:
                decode_round(net, N, a.prompt, min(a.steps, 8), 7)   # warm-up
                sec = statistics.median(decode_round(net, N, a.prompt, a.steps, 11 + r) for r in range(a.rounds))
                per_step = sec / a.steps
                print(f"lm_torch model={name} threads={tname} batch={N} tok_s_stream={1 / per_step:.1f} "
                      f"tok_s_total={N / per_step:.1f} ms_step={1e3 * per_step:.3f}", flush=True)
            ttft_once(net, ttft_ids)   # warm-up
            tt = statistics.median(ttft_once(net, ttft_ids) for _ in range(max(a.rounds, 5)))
            print(f"lm_torch model={name} threads={tname} ttft_prompt={a.ttft_prompt} ttft_ms={1e3 * tt:.1f} "
                  f"prefill_tok_s={a.ttft_prompt / tt:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
