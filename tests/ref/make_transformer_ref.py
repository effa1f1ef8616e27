#!/usr/bin/python3
"""make_transformer_ref.py — writes tests/ref/transformer_ref/, the PyTorch
reference that tests/unit/test_transformer.c compares engine/arch/transformer.c
(and ops_seq.c / tape_seq.c under it) against.

Run from anywhere with the system python that has torch (HF transformers is
NOT used: both models are written from scratch below):
    /usr/bin/python3 tests/ref/make_transformer_ref.py

It writes tiny random checkpoints in the layouts the engine loads:
    gpt2/config.json, gpt2/model.safetensors        HF GPT-2 (Conv1D weights
        stored [in, out]; names with the "transformer." prefix that
        GPT2LMHeadModel saves, plus a legacy attn.masked_bias buffer to ignore)
    llama/config.json, llama/model.safetensors      HF Llama, grouped-query
        attention (4 heads, 2 kv heads), untied lm_head, rotate-half RoPE
        (plus a legacy rotary_emb.inv_freq buffer to ignore)
    llama2c/config.json, llama2c/model.bin          the SAME Llama weights as a
        llama2.c legacy checkpoint: 7 int32 header, fp32 weights in run.c's
        order, q/k rows permuted to llama2.c's interleaved RoPE layout exactly
        as llama2.c's export.py does (permute_reverse), negative vocab_size
        (unshared classifier). The script checks that an interleaved-RoPE
        forward over the permuted weights gives the HF logits.
and one fixture per family, <family>_ref.safetensors (F32 tensors; integer
token ids stored as floats; __metadata__ {"version": "1"}):
    tokens         [S, TL]    S token sequences
    logits         [S, TL, V] full causal forward of each sequence
    train.tokens   [B, T]     a training batch (B=2, T=8)
    train.targets  [B, T]     next tokens
    train.loss     [1]        mean cross-entropy
    grad.<name>    d loss / d parameter, HF name and HF layout
    adamw.hyper    [steps, lr, beta1, beta2, eps, weight_decay]
    adamw.losses   [steps+1]  the batch's loss before each torch.optim.AdamW
                              step over every parameter, and after the last
All computations are float32.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

VERSION = 1
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "transformer_ref")
S, TL = 2, 24          # reference sequences and their length (> 16: the sgemm paths)
B, T = 2, 8            # training batch
ADAM_STEPS = 3

GPT2 = dict(n_embd=32, n_layer=2, n_head=4, n_positions=64, vocab_size=97, layer_norm_epsilon=1e-5)
LLAMA = dict(hidden_size=40, intermediate_size=72, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
             vocab_size=101, tie_word_embeddings=False)


# ---------------------------------------------------------------- safetensors writer
def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, float32 tensor); written in order, header padded with spaces to 8 bytes."""
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        data = t.detach().contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


# ---------------------------------------------------------------- shared pieces
def causal_attention(q, k, v):
    """q [B, NH, T, hd], k/v [B, NKV, T, hd] -> [B, T, NH*hd]; kv heads repeated for GQA."""
    Bq, NH, Tq, hd = q.shape
    rep = NH // k.shape[1]
    k = k.repeat_interleave(rep, dim=1)
    v = v.repeat_interleave(rep, dim=1)
    att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
    mask = torch.ones(Tq, Tq, dtype=torch.bool).tril()
    att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    return (att @ v).transpose(1, 2).reshape(Bq, Tq, NH * hd)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


# ---------------------------------------------------------------- GPT-2
def gpt2_params(c, g):
    C, V, P, L = c["n_embd"], c["vocab_size"], c["n_positions"], c["n_layer"]
    H = 4 * C
    p = {"wte.weight": 0.3 * torch.randn(V, C, generator=g), "wpe.weight": 0.3 * torch.randn(P, C, generator=g)}
    for l in range(L):
        pre = f"h.{l}."
        for ln in ("ln_1", "ln_2"):
            p[pre + ln + ".weight"] = 1.0 + 0.2 * torch.randn(C, generator=g)
            p[pre + ln + ".bias"] = 0.1 * torch.randn(C, generator=g)
        # Conv1D: weight [in, out], y = x @ W + b
        p[pre + "attn.c_attn.weight"] = torch.randn(C, 3 * C, generator=g) / math.sqrt(C)
        p[pre + "attn.c_attn.bias"] = 0.1 * torch.randn(3 * C, generator=g)
        p[pre + "attn.c_proj.weight"] = 0.5 * torch.randn(C, C, generator=g) / math.sqrt(C)
        p[pre + "attn.c_proj.bias"] = 0.1 * torch.randn(C, generator=g)
        p[pre + "mlp.c_fc.weight"] = torch.randn(C, H, generator=g) / math.sqrt(C)
        p[pre + "mlp.c_fc.bias"] = 0.1 * torch.randn(H, generator=g)
        p[pre + "mlp.c_proj.weight"] = 0.5 * torch.randn(H, C, generator=g) / math.sqrt(H)
        p[pre + "mlp.c_proj.bias"] = 0.1 * torch.randn(C, generator=g)
    p["ln_f.weight"] = 1.0 + 0.2 * torch.randn(C, generator=g)
    p["ln_f.bias"] = 0.1 * torch.randn(C, generator=g)
    return p


def gpt2_forward(c, p, tokens):
    Bt, Tt = tokens.shape
    C, NH, eps = c["n_embd"], c["n_head"], c["layer_norm_epsilon"]
    hd = C // NH
    x = p["wte.weight"][tokens] + p["wpe.weight"][torch.arange(Tt)]
    for l in range(c["n_layer"]):
        pre = f"h.{l}."
        h = F.layer_norm(x, (C,), p[pre + "ln_1.weight"], p[pre + "ln_1.bias"], eps)
        qkv = h @ p[pre + "attn.c_attn.weight"] + p[pre + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=-1)
        q, k, v = (t.view(Bt, Tt, NH, hd).transpose(1, 2) for t in (q, k, v))
        y = causal_attention(q, k, v)
        x = x + y @ p[pre + "attn.c_proj.weight"] + p[pre + "attn.c_proj.bias"]
        h = F.layer_norm(x, (C,), p[pre + "ln_2.weight"], p[pre + "ln_2.bias"], eps)
        f = gelu_tanh(h @ p[pre + "mlp.c_fc.weight"] + p[pre + "mlp.c_fc.bias"])
        x = x + f @ p[pre + "mlp.c_proj.weight"] + p[pre + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (C,), p["ln_f.weight"], p["ln_f.bias"], eps)
    return x @ p["wte.weight"].t()


# ---------------------------------------------------------------- Llama
def llama_params(c, g):
    C, H, V, L = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_hidden_layers"]
    hd = C // c["num_attention_heads"]
    qd, kvd = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    p = {"model.embed_tokens.weight": 0.5 * torch.randn(V, C, generator=g)}
    for l in range(L):
        pre = f"model.layers.{l}."
        p[pre + "input_layernorm.weight"] = 1.0 + 0.2 * torch.randn(C, generator=g)
        p[pre + "self_attn.q_proj.weight"] = 1.5 * torch.randn(qd, C, generator=g) / math.sqrt(C)
        p[pre + "self_attn.k_proj.weight"] = 1.5 * torch.randn(kvd, C, generator=g) / math.sqrt(C)
        p[pre + "self_attn.v_proj.weight"] = torch.randn(kvd, C, generator=g) / math.sqrt(C)
        p[pre + "self_attn.o_proj.weight"] = 0.5 * torch.randn(C, qd, generator=g) / math.sqrt(qd)
        p[pre + "post_attention_layernorm.weight"] = 1.0 + 0.2 * torch.randn(C, generator=g)
        p[pre + "mlp.gate_proj.weight"] = torch.randn(H, C, generator=g) / math.sqrt(C)
        p[pre + "mlp.up_proj.weight"] = torch.randn(H, C, generator=g) / math.sqrt(C)
        p[pre + "mlp.down_proj.weight"] = 0.5 * torch.randn(C, H, generator=g) / math.sqrt(H)
    p["model.norm.weight"] = 1.0 + 0.2 * torch.randn(C, generator=g)
    p["lm_head.weight"] = 0.3 * torch.randn(V, C, generator=g)
    return p


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rope_tables(c, Tt):
    """HF LlamaRotaryEmbedding: float32 inv_freq, angles t * inv_freq, cos/sin [T, hd/2]."""
    hd = c["hidden_size"] // c["num_attention_heads"]
    inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd))
    freqs = torch.outer(torch.arange(Tt).float(), inv_freq)
    return freqs.cos(), freqs.sin()


def rope_rotate_half(x, cos, sin):
    """HF: x * cat(cos, cos) + rotate_half(x) * cat(sin, sin), x [B, H, T, hd]."""
    h2 = x.shape[-1] // 2
    x1, x2 = x[..., :h2], x[..., h2:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def rope_interleaved(x, cos, sin):
    """llama2.c model.py / run.c: rotate pairs (2j, 2j+1)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


def llama_forward(c, p, tokens, rope=rope_rotate_half):
    Bt, Tt = tokens.shape
    C, NH, NKV, eps = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["rms_norm_eps"]
    hd = C // NH
    cos, sin = rope_tables(c, Tt)
    x = p["model.embed_tokens.weight"][tokens]
    for l in range(c["num_hidden_layers"]):
        pre = f"model.layers.{l}."
        h = rms_norm(x, p[pre + "input_layernorm.weight"], eps)
        q = (h @ p[pre + "self_attn.q_proj.weight"].t()).view(Bt, Tt, NH, hd).transpose(1, 2)
        k = (h @ p[pre + "self_attn.k_proj.weight"].t()).view(Bt, Tt, NKV, hd).transpose(1, 2)
        v = (h @ p[pre + "self_attn.v_proj.weight"].t()).view(Bt, Tt, NKV, hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        x = x + causal_attention(q, k, v) @ p[pre + "self_attn.o_proj.weight"].t()
        h = rms_norm(x, p[pre + "post_attention_layernorm.weight"], eps)
        f = F.silu(h @ p[pre + "mlp.gate_proj.weight"].t()) * (h @ p[pre + "mlp.up_proj.weight"].t())
        x = x + f @ p[pre + "mlp.down_proj.weight"].t()
    x = rms_norm(x, p["model.norm.weight"], eps)
    return x @ p["lm_head.weight"].t()


def permute_reverse(w, n_heads, hd):
    """llama2.c export.py: HF (rotate-half) q/k rows -> Meta/llama2.c (interleaved) rows."""
    return w.view(n_heads, 2, hd // 2, w.shape[1]).transpose(1, 2).reshape(n_heads * hd, w.shape[1])


def write_llama2c(path, c, p):
    C, H, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    NH, NKV, V, P = c["num_attention_heads"], c["num_key_value_heads"], c["vocab_size"], c["max_position_embeddings"]
    hd = C // NH
    lay = lambda name: [p[f"model.layers.{l}.{name}"] for l in range(L)]
    q = [permute_reverse(w, NH, hd) for w in lay("self_attn.q_proj.weight")]
    k = [permute_reverse(w, NKV, hd) for w in lay("self_attn.k_proj.weight")]
    cos, sin = rope_tables(c, P)
    parts = ([p["model.embed_tokens.weight"]] + lay("input_layernorm.weight") + q + k +
             lay("self_attn.v_proj.weight") + lay("self_attn.o_proj.weight") +
             lay("post_attention_layernorm.weight") + lay("mlp.gate_proj.weight") +
             lay("mlp.down_proj.weight") + lay("mlp.up_proj.weight") + [p["model.norm.weight"], cos, sin,
                                                                       p["lm_head.weight"]])
    with open(path, "wb") as f:
        f.write(struct.pack("<7i", C, H, L, NH, NKV, -V, P))   # -V: unshared classifier
        for t in parts:
            f.write(t.detach().contiguous().to(torch.float32).numpy().tobytes())
    # The permuted weights with interleaved RoPE must be the same model.
    pp = dict(p)
    for l in range(L):
        pp[f"model.layers.{l}.self_attn.q_proj.weight"] = q[l]
        pp[f"model.layers.{l}.self_attn.k_proj.weight"] = k[l]
    return pp


# ---------------------------------------------------------------- fixtures
def fixture(path, forward, c, p, V, g):
    """Reference logits of S sequences and the loss + gradients of a training batch."""
    tokens = torch.randint(0, V, (S, TL), generator=g)
    with torch.no_grad():
        logits = forward(c, p, tokens)
    window = torch.randint(0, V, (B, T + 1), generator=g)
    x, y = window[:, :T], window[:, 1:]
    leaves = {k: v.clone().requires_grad_(True) for k, v in p.items()}
    loss = F.cross_entropy(forward(c, leaves, x).reshape(-1, V), y.reshape(-1))
    loss.backward()
    out = [("tokens", tokens.float()), ("logits", logits), ("train.tokens", x.float()),
           ("train.targets", y.float()), ("train.loss", loss.detach().reshape(1))]
    out += [("grad." + k, leaves[k].grad) for k in p]
    hyper = [ADAM_STEPS, 1e-2, 0.9, 0.999, 1e-8, 0.1]
    leaves = [v.clone().requires_grad_(True) for v in p.values()]
    opt = torch.optim.AdamW(leaves, lr=hyper[1], betas=(hyper[2], hyper[3]), eps=hyper[4], weight_decay=hyper[5])
    losses = []
    for step in range(ADAM_STEPS + 1):
        opt.zero_grad()
        loss = F.cross_entropy(forward(c, dict(zip(p.keys(), leaves)), x).reshape(-1, V), y.reshape(-1))
        losses.append(loss.item())
        if step < ADAM_STEPS:
            loss.backward()
            opt.step()
    out += [("adamw.hyper", torch.tensor(hyper)), ("adamw.losses", torch.tensor(losses))]
    write_safetensors(path, out, {"version": str(VERSION)})
    return tokens, logits


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1234)
    for d in ("gpt2", "llama", "llama2c"):
        os.makedirs(os.path.join(OUT, d), exist_ok=True)

    # GPT-2 (the script's tensors are already HF/Conv1D layout)
    c = GPT2
    p = gpt2_params(c, g)
    write_json(os.path.join(OUT, "gpt2", "config.json"),
               dict(model_type="gpt2", architectures=["GPT2LMHeadModel"], n_ctx=c["n_positions"], n_inner=None,
                    activation_function="gelu_new", bos_token_id=0, eos_token_id=1, **c))
    tensors = [("transformer." + k, v) for k, v in p.items()]
    tensors += [(f"transformer.h.{l}.attn.masked_bias", torch.tensor(-1e4)) for l in range(c["n_layer"])]
    write_safetensors(os.path.join(OUT, "gpt2", "model.safetensors"), tensors, {"format": "pt"})
    fixture(os.path.join(OUT, "gpt2_ref.safetensors"), gpt2_forward, c, p, c["vocab_size"], g)

    # Llama (HF) and the same weights as a llama2.c checkpoint
    c = LLAMA
    p = llama_params(c, g)
    write_json(os.path.join(OUT, "llama", "config.json"),
               dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_act="silu", bos_token_id=1,
                    eos_token_id=2, rope_scaling=None, attention_bias=False, **c))
    hd = c["hidden_size"] // c["num_attention_heads"]
    tensors = list(p.items())
    tensors += [(f"model.layers.{l}.self_attn.rotary_emb.inv_freq",
                 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd)))
                for l in range(c["num_hidden_layers"])]
    write_safetensors(os.path.join(OUT, "llama", "model.safetensors"), tensors, {"format": "pt"})
    tokens, logits = fixture(os.path.join(OUT, "llama_ref.safetensors"), llama_forward, c, p, c["vocab_size"], g)
    pp = write_llama2c(os.path.join(OUT, "llama2c", "model.bin"), c, p)
    write_json(os.path.join(OUT, "llama2c", "config.json"), {"format": "llama2c"})
    with torch.no_grad():
        from_bin = llama_forward(c, pp, tokens, rope=rope_interleaved)
    err = (from_bin - logits).abs().max().item()
    assert err < 1e-4, f"permuted weights + interleaved RoPE differ from HF by {err}"
    print(f"wrote {OUT} (llama2.c layout check: max diff {err:.2e})")


if __name__ == "__main__":
    sys.exit(main())
