#!/usr/bin/python3
"""make_marian_ref.py — writes tests/ref/marian_tiny/ (a servable Hugging Face
MarianMT directory with random weights) and tests/ref/marian_ref.* (what
tests/unit/test_marian.c and the translation tests compare
engine/arch/marian.c against).

    /usr/bin/python3 tests/ref/make_marian_ref.py     (needs python3-torch, sentencepiece CLI;
                                                       run make_spm_ref.py first)

The model is written below in plain PyTorch from the published architecture
(Vaswani et al. 2017 post-LN transformer as MarianMT uses it: Junczys-Dowmunt
et al. 2018; the HF MarianMTModel checkpoint layout), not with HF's library:
  - shared token embeddings (encoder, decoder, output projection), scaled by
    sqrt(d_model); sinusoidal positions, first half of the features sin,
    second half cos, positions from 0;
  - encoder layer: x = LN(x + SelfAttn(x)); x = LN(x + FC2(act(FC1(x))))
  - decoder layer: x = LN(x + CausalSelfAttn(x)); x = LN(x + CrossAttn(x, enc));
    x = LN(x + FC2(act(FC1(x)))); no final norm in either stack;
  - attention: q scaled by head_dim^-0.5, padding keys masked;
  - logits = x E^T + final_logits_bias; decoding starts with pad.

marian_tiny/: config.json, model.safetensors (HF names), source.spm and
target.spm (= tests/ref/spm/tiny.model), vocab.json (Marian order: "</s>" 0,
"<unk>" 1, the model's other pieces, "<pad>" last; so piece ids and model
ids differ, as in opus-mt).

marian_ref.safetensors (F32; ids stored as floats; __metadata__ version):
  src [P, S]  source ids (text pieces -> vocab.json ids, then </s>), padded with pad
  src_len [P]
  tgt [P, T]  decoder inputs: start (= pad) then target ids, padded with pad
  tgt_len [P]
  logits [P, T, V]  teacher-forced logits of the batch of P pairs (padded + masked)
  greedy [P, 20], greedy_len [P]  greedy decoding (pad masked, stop at </s>, at most 20
                  tokens, </s> excluded), padded with -1; greedy_finished [P]
marian_ref_greedy.json: the same greedy decodes with the source texts, for the
HTTP / eng_translate tests: [{"text", "src_ids", "ids", "finished",
"beam4_max8_ids"}]; the last: beam search, beam 4, max_tokens 8 (see beam()).
"""
import json
import math
import os
import struct
import subprocess

import torch
import torch.nn.functional as F

VERSION = 1
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "marian_tiny")
SPM = os.path.join(HERE, "spm", "tiny.model")
D, LAYERS, HEADS, FFN, MAXPOS = 32, 2, 4, 64, 64
GREEDY_MAX = 20
BEAM_K, BEAM_T = 4, 8   # beam search reference: beam 4, 8 tokens
EMB_STD = 0.3
W_STD = 0.6
BIAS_STD = 0.05
SOURCES = [   # (source text, target text): targets only feed teacher forcing
    ("Hello world.", "Hallo Welt."),
    ("The house is very small and the water is cold.", "Das Haus ist sehr klein."),
    ("Good morning!", "Guten Morgen, wie geht es dir heute?"),
    ("Мир", "Frieden und Freude"),
]


def write_safetensors(path, tensors, metadata=None):
    header, off, blobs = {}, 0, []
    for name, t in tensors:
        b = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def spm_pieces(text):
    r = subprocess.run(["spm_encode", "--model=" + SPM, "--output_format=piece"], input=(text + "\n").encode(),
                       check=True, capture_output=True)
    return r.stdout.decode().rstrip("\n").split(" ") if text else []


def spm_vocab():
    r = subprocess.run(["spm_export_vocab", "--model=" + SPM], check=True, capture_output=True)
    return [line.split("\t")[0] for line in r.stdout.decode().splitlines()]


# ---------------------------------------------------------------- the model
def sinusoids(n, d):
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(d // 2, dtype=torch.float64)[None, :]
    ang = pos / torch.pow(10000.0, 2 * j / d)
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=1).float()


def attention(p, pre, xq, xkv, key_mask, causal):
    """xq [B, Tq, D], xkv [B, Tk, D]; key_mask [B, Tk] True = real key."""
    B, Tq, _ = xq.shape
    Tk = xkv.shape[1]
    hd = D // HEADS
    q = (xq @ p[pre + "q_proj.weight"].T + p[pre + "q_proj.bias"]) * hd ** -0.5
    k = xkv @ p[pre + "k_proj.weight"].T + p[pre + "k_proj.bias"]
    v = xkv @ p[pre + "v_proj.weight"].T + p[pre + "v_proj.bias"]
    q, k, v = (t.view(B, -1, HEADS, hd).transpose(1, 2) for t in (q, k, v))
    s = q @ k.transpose(-1, -2)                                   # [B, H, Tq, Tk]
    allowed = key_mask[:, None, None, :].expand(B, HEADS, Tq, Tk)
    if causal:
        allowed = allowed & torch.ones(Tq, Tk, dtype=torch.bool).tril()
    s = s.masked_fill(~allowed, float("-inf"))
    o = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, Tq, D)
    return o @ p[pre + "out_proj.weight"].T + p[pre + "out_proj.bias"]


def ln(p, pre, x):
    return F.layer_norm(x, (D,), p[pre + ".weight"], p[pre + ".bias"], 1e-5)


def ffn(p, pre, x):
    h = F.silu(x @ p[pre + "fc1.weight"].T + p[pre + "fc1.bias"])   # "swish"
    return h @ p[pre + "fc2.weight"].T + p[pre + "fc2.bias"]


def embed(p, ids):
    return p["model.shared.weight"][ids] * math.sqrt(D) + sinusoids(ids.shape[1], D)[None]


def encode(p, src, src_mask):
    x = embed(p, src)
    for l in range(LAYERS):
        pre = "model.encoder.layers.%d." % l
        x = ln(p, pre + "self_attn_layer_norm", x + attention(p, pre + "self_attn.", x, x, src_mask, False))
        x = ln(p, pre + "final_layer_norm", x + ffn(p, pre, x))
    return x


def decode(p, tgt, enc, src_mask):
    x = embed(p, tgt)
    tmask = torch.ones(tgt.shape, dtype=torch.bool)   # causal: padded targets only see real ones before them
    for l in range(LAYERS):
        pre = "model.decoder.layers.%d." % l
        x = ln(p, pre + "self_attn_layer_norm", x + attention(p, pre + "self_attn.", x, x, tmask, True))
        x = ln(p, pre + "encoder_attn_layer_norm", x + attention(p, pre + "encoder_attn.", x, enc, src_mask, False))
        x = ln(p, pre + "final_layer_norm", x + ffn(p, pre, x))
    return x @ p["model.shared.weight"].T + p["final_logits_bias"][0]


def params(V, g):
    def n(*shape, std=0.15):
        return torch.randn(*shape, generator=g) * std
    p = {"model.shared.weight": n(V, D, std=EMB_STD), "final_logits_bias": n(1, V, std=BIAS_STD)}
    for side, L in (("encoder", LAYERS), ("decoder", LAYERS)):
        for l in range(L):
            pre = "model.%s.layers.%d." % (side, l)
            atts = ["self_attn"] + (["encoder_attn"] if side == "decoder" else [])
            for a in atts:
                for w in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    p[pre + a + "." + w + ".weight"] = n(D, D, std=W_STD)
                    p[pre + a + "." + w + ".bias"] = n(D, std=0.1)
                p[pre + a + "_layer_norm.weight"] = 1 + n(D, std=0.1)
                p[pre + a + "_layer_norm.bias"] = n(D, std=0.1)
            p[pre + "fc1.weight"], p[pre + "fc1.bias"] = n(FFN, D, std=0.3), n(FFN, std=0.1)
            p[pre + "fc2.weight"], p[pre + "fc2.bias"] = n(D, FFN, std=0.2), n(D, std=0.1)
            p[pre + "final_layer_norm.weight"] = 1 + n(D, std=0.1)
            p[pre + "final_layer_norm.bias"] = n(D, std=0.1)
    return p


def pad_batch(seqs, pad):
    L = max(len(s) for s in seqs)
    return torch.tensor([s + [pad] * (L - len(s)) for s in seqs]), torch.tensor([[1] * len(s) + [0] * (L - len(s)) for s in seqs]).bool()


def greedy(p, src_ids, start, eos, pad):
    src, mask = pad_batch([src_ids], pad)
    enc = encode(p, src, mask)
    out, gaps = [start], []
    while len(out) - 1 < GREEDY_MAX:
        logits = decode(p, torch.tensor([out]), enc, mask)[0, -1].clone()
        logits[pad] = float("-inf")
        top = torch.topk(logits, 2).values
        gaps.append(float(top[0] - top[1]))
        nxt = int(torch.argmax(logits))
        if nxt == eos:
            return out[1:], True, min(gaps)
        out.append(nxt)
    return out[1:], False, min(gaps)


def beam(p, src_ids, start, eos, pad, K, T):
    """Beam search as the engine defines it (engine/arch/translate.h, HF's
    definition): each live hypothesis proposes its 2K best next tokens
    (log-softmax, pad masked), candidates sorted by total log-probability;
    EOS candidates join the finished list (score logp / (len+1)^1.0), the
    best K others form the next beam; at T tokens nothing more is extended.
    Here no candidate below the beam ends (asserted), so the answer is the
    best live hypothesis: its ids and the smallest gap between the K-th and
    (K+1)-th candidate (how far the choice is from a tie)."""
    src, mask = pad_batch([src_ids], pad)
    enc = encode(p, src, mask)
    live, gaps = [([start], 0.0)], []
    for t in range(T):
        cands = []
        for seq, lp in live:
            logits = decode(p, torch.tensor([seq]), enc, mask)[0, -1].clone()
            logits[pad] = float("-inf")
            logp = torch.log_softmax(logits.double(), -1)
            top = torch.topk(logp, 2 * K)
            for v, i in zip(top.values.tolist(), top.indices.tolist()):
                cands.append((lp + v, seq, i))
        cands.sort(key=lambda c: -c[0])
        assert all(c[2] != eos for c in cands[:2 * K]), "a beam candidate ended: pick other sources"
        gaps.append(cands[K - 1][0] - cands[K][0])
        live = [(seq + [tok], lp) for lp, seq, tok in cands[:K]]
    for seq, lp in live:   # the engine's last step at T tokens only lets EOS finish: none may
        logits = decode(p, torch.tensor([seq]), enc, mask)[0, -1].clone()
        logits[pad] = float("-inf")
        assert eos not in torch.topk(logits, 2 * K).indices.tolist(), "a final hypothesis could end: pick other sources"
    best = max(live, key=lambda h: h[1])
    return best[0][1:], min(gaps)


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)   # a seed whose greedy decodes vary (random models tend to repeat one token)
    pieces = spm_vocab()
    vocab = ["</s>", "<unk>"] + [x for x in pieces if x not in ("<unk>", "<s>", "</s>")] + ["<pad>"]
    V = len(vocab)
    ids = {x: i for i, x in enumerate(vocab)}
    EOS, UNK, PAD = ids["</s>"], ids["<unk>"], ids["<pad>"]
    p = params(V, g)
    p["model.shared.weight"][PAD] = 0   # HF's padding_idx row (decoding starts from it)

    os.makedirs(OUT, exist_ok=True)
    cfg = {
        "architectures": ["MarianMTModel"], "model_type": "marian", "vocab_size": V, "decoder_vocab_size": V,
        "d_model": D, "encoder_layers": LAYERS, "decoder_layers": LAYERS, "encoder_attention_heads": HEADS,
        "decoder_attention_heads": HEADS, "encoder_ffn_dim": FFN, "decoder_ffn_dim": FFN,
        "activation_function": "swish", "max_position_embeddings": MAXPOS, "max_length": MAXPOS,
        "scale_embedding": True, "static_position_embeddings": True, "normalize_embedding": False,
        "share_encoder_decoder_embeddings": True, "tie_word_embeddings": True, "pad_token_id": PAD,
        "eos_token_id": EOS, "decoder_start_token_id": PAD, "bad_words_ids": [[PAD]], "num_beams": 4,
        "torch_dtype": "float32",
    }
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(OUT, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(ids, f, ensure_ascii=False, indent=1)
    with open(SPM, "rb") as f:
        model = f.read()
    for name in ("source.spm", "target.spm"):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(model)
    # as HF saves it: the shared matrix once, plus the buffers some exports carry
    tensors = sorted(p.items())
    tensors.append(("model.encoder.embed_positions.weight", sinusoids(MAXPOS, D)))
    tensors.append(("model.decoder.embed_positions.weight", sinusoids(MAXPOS, D)))
    write_safetensors(os.path.join(OUT, "model.safetensors"), tensors, {"format": "pt"})

    def text_ids(t):
        return [ids.get(x, UNK) for x in spm_pieces(t)] + [EOS]
    srcs = [text_ids(s) for s, _ in SOURCES]
    tgts = [[PAD] + text_ids(t)[:-1] for _, t in SOURCES]   # decoder inputs: start, then the target pieces
    src, smask = pad_batch(srcs, PAD)
    tgt, _ = pad_batch(tgts, PAD)
    with torch.no_grad():
        logits = decode(p, tgt, encode(p, src, smask), smask)
        for i in range(len(SOURCES)):   # the batch gives each pair's own forward
            s1, m1 = pad_batch([srcs[i]], PAD)
            one = decode(p, torch.tensor([tgts[i]]), encode(p, s1, m1), m1)
            assert torch.allclose(one[0], logits[i, :len(tgts[i])], rtol=1e-4, atol=1e-4), i
        dec = [greedy(p, s, PAD, EOS, PAD) for s in srcs]
        beams = [beam(p, s, PAD, EOS, PAD, BEAM_K, BEAM_T) for s in srcs]
    print("greedy min top-2 gaps:", [round(d[2], 4) for d in dec])
    print("beam min K/K+1 gaps:", [round(b[1], 4) for b in beams])
    G = torch.full((len(SOURCES), GREEDY_MAX), -1.0)
    for i, (o, _, _) in enumerate(dec):
        G[i, :len(o)] = torch.tensor(o, dtype=torch.float32)
    write_safetensors(os.path.join(HERE, "marian_ref.safetensors"), [
        ("src", src.float()), ("src_len", torch.tensor([float(len(s)) for s in srcs])),
        ("tgt", tgt.float()), ("tgt_len", torch.tensor([float(len(t)) for t in tgts])),
        ("logits", logits), ("greedy", G), ("greedy_len", torch.tensor([float(len(d[0])) for d in dec])),
        ("greedy_finished", torch.tensor([float(d[1]) for d in dec])),
    ], {"version": str(VERSION)})
    with open(os.path.join(HERE, "marian_ref_greedy.json"), "w", encoding="utf-8") as f:
        json.dump([{"text": s, "src_ids": srcs[i], "ids": dec[i][0], "finished": dec[i][1],
                    "beam4_max8_ids": beams[i][0]}
                   for i, (s, _) in enumerate(SOURCES)], f, ensure_ascii=False, indent=1)
    print("wrote", OUT, "vocab", V, "greedy", [(len(d[0]), d[1]) for d in dec])


if __name__ == "__main__":
    main()
