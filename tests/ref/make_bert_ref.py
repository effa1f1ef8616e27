#!/usr/bin/python3
"""make_bert_ref.py — servable tiny BERT and DistilBERT sequence classifiers
with random weights and their expected outputs, for engine/arch/bert.c
(tests/unit/test_bert.c) and the HTTP test (tests/integration/test_bert.sh).

The models are written here in PyTorch from the published architectures
(Devlin et al. 2019, BERT; Sanh et al. 2019, DistilBERT), not with Hugging
Face's library, and saved the way HF saves *ForSequenceClassification
checkpoints (tensor names, config.json with id2label, vocab.txt):

    tests/ref/bert_tiny/        config.json model.safetensors vocab.txt tokenizer_config.json
                                expected.json
    tests/ref/distilbert_tiny/  config.json model.safetensors vocab.txt expected.json

  BERT:        e = LN(word[id] + pos[t] + type[0]); per layer (post-LN):
               x = LN(x + Wo attn(x)); x = LN(x + W2 gelu(W1 x)); gelu with erf;
               pooled = tanh(Wp x[CLS]); logits = Wc pooled
  DistilBERT:  e = LN(word[id] + pos[t]); per layer: x = sa_LN(x + out_lin attn(x));
               x = out_LN(x + lin2 gelu(lin1 x)); logits = Wc relu(Wpre x[CLS])
  attn:        per head softmax(q k^T / sqrt(dh) + mask) v, mask = -inf on padding

expected.json: the texts, their ids (tests/ref/make_wordpiece_ref.py's
tokenizer on this vocab.txt), and logits + probabilities computed one text
at a time; the script also runs the whole list as one padded, masked batch
and checks it agrees (the engine runs it packed). Weights are drawn larger
than BERT's init (std 0.2) and LayerNorm gains around 1 so that the
probabilities are far from uniform.

Run from the repository root with Debian's torch (tests never need it):

    /usr/bin/python3 tests/ref/make_bert_ref.py
"""
import json
import math
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_wordpiece_ref import encode   # noqa: E402  (the reference tokenizer)

REF = "tests/ref"

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
    "the", "a", "movie", "film", "was", "is", "great", "terrible", "good", "bad", "not", "very",
    "i", "it", "this", "that", "and", "but", "love", "hate", "loved", "plot", "acting", "story",
    "boring", "fun", "really", "ok", "okay", "so", "of", "to", "in", "on", "with", "for", "at",
    "un", "##believ", "##able", "##s", "##ed", "##ing", "##ly", "##er", "##est", "pre", "##dict",
    ".", ",", "!", "?", "'", "-", "(", ")", ":", ";",
    "cafe", "naive", "resume", "world", "hello", "fantastic", "awful", "worst", "best", "ever",
    "mo", "##vie", "##ie", "wonder", "##ful", "dis", "##appoint", "##ment",
    "c", "a", "t", "##c", "##a", "##t", "e", "##e", "o", "##o", "r", "##r", "s", "##d", "##n",
    "n", "d", "l", "##l", "u", "##u", "m", "##m", "p", "##p", "b", "##b", "g", "##g", "h", "##h",
    "на", "##ш", "фильм", "我", "爱", "电", "影",
]

TEXTS = [
    "This movie was great!",
    "Terrible acting, boring plot.",
    "I loved it",
    "The film is not very good, but the story was fun and the acting really unbelievable. "
    "Worst? Best! Ever... pre-dicted, disappointment; wonderful movies (so bad it's good).",
    "ok",
    "Café naïve résumé — Hello WORLD",
    "наш фильм: 我爱电影",
    "",
]


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, tensor): u64 LE header length, JSON header
    {name: {dtype, shape, data_offsets}} padded with spaces to 8 bytes, data."""
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        if t.dtype == torch.int64:
            data, dt = t.contiguous().numpy().tobytes(), "I64"
        else:
            data, dt = t.detach().contiguous().to(torch.float32).numpy().tobytes(), "F32"
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
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


def layer_norm(x, g, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * g + b


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def linear(x, w, b):
    return x @ w.T + b


def attention(x, mask, wq, bq, wk, bk, wv, bv, heads):
    B, T, H = x.shape
    dh = H // heads

    def split(y):
        return y.view(B, T, heads, dh).transpose(1, 2)   # [B, heads, T, dh]

    q, k, v = split(linear(x, wq, bq)), split(linear(x, wk, bk)), split(linear(x, wv, bv))
    s = q @ k.transpose(-1, -2) / math.sqrt(dh)
    s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
    p = torch.softmax(s, dim=-1)
    return (p @ v).transpose(1, 2).reshape(B, T, H)


def forward(kind, P, cfg, ids, mask):
    """ids [B, T] (padded with 0), mask [B, T] bool -> logits [B, labels]."""
    pre = "distilbert." if kind == "distilbert" else "bert."
    W = lambda n: P[pre + n]   # noqa: E731
    B, T = ids.shape
    pos = torch.arange(T)
    x = W("embeddings.word_embeddings.weight")[ids] + W("embeddings.position_embeddings.weight")[pos][None]
    if kind == "bert":
        eps = cfg["layer_norm_eps"]
        x = x + W("embeddings.token_type_embeddings.weight")[0]
        L, heads = cfg["num_hidden_layers"], cfg["num_attention_heads"]
    else:
        eps = 1e-12
        L, heads = cfg["n_layers"], cfg["n_heads"]
    x = layer_norm(x, W("embeddings.LayerNorm.weight"), W("embeddings.LayerNorm.bias"), eps)
    for i in range(L):
        if kind == "bert":
            p = "encoder.layer.%d." % i
            a = attention(x, mask, *[W(p + "attention.self.%s.%s" % (m, t)) for m in ("query", "key", "value")
                                     for t in ("weight", "bias")], heads)
            a = linear(a, W(p + "attention.output.dense.weight"), W(p + "attention.output.dense.bias"))
            x = layer_norm(x + a, W(p + "attention.output.LayerNorm.weight"), W(p + "attention.output.LayerNorm.bias"), eps)
            f = gelu(linear(x, W(p + "intermediate.dense.weight"), W(p + "intermediate.dense.bias")))
            f = linear(f, W(p + "output.dense.weight"), W(p + "output.dense.bias"))
            x = layer_norm(x + f, W(p + "output.LayerNorm.weight"), W(p + "output.LayerNorm.bias"), eps)
        else:
            p = "transformer.layer.%d." % i
            a = attention(x, mask, *[W(p + "attention.%s.%s" % (m, t)) for m in ("q_lin", "k_lin", "v_lin")
                                     for t in ("weight", "bias")], heads)
            a = linear(a, W(p + "attention.out_lin.weight"), W(p + "attention.out_lin.bias"))
            x = layer_norm(x + a, W(p + "sa_layer_norm.weight"), W(p + "sa_layer_norm.bias"), eps)
            f = gelu(linear(x, W(p + "ffn.lin1.weight"), W(p + "ffn.lin1.bias")))
            f = linear(f, W(p + "ffn.lin2.weight"), W(p + "ffn.lin2.bias"))
            x = layer_norm(x + f, W(p + "output_layer_norm.weight"), W(p + "output_layer_norm.bias"), eps)
    c = x[:, 0]
    if kind == "bert":
        h = torch.tanh(linear(c, W("pooler.dense.weight"), W("pooler.dense.bias")))
    else:
        h = torch.relu(linear(c, P["pre_classifier.weight"], P["pre_classifier.bias"]))
    return linear(h, P["classifier.weight"], P["classifier.bias"])


def params(kind, cfg, n_labels, gen):
    """HF state-dict names and shapes, random values."""
    pre = "distilbert." if kind == "distilbert" else "bert."
    if kind == "bert":
        H, FF, L, V, Pn = (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"],
                           cfg["vocab_size"], cfg["max_position_embeddings"])
    else:
        H, FF, L, V, Pn = cfg["dim"], cfg["hidden_dim"], cfg["n_layers"], cfg["vocab_size"], cfg["max_position_embeddings"]
    out = []

    def mat(name, *shape):
        out.append((name, torch.randn(*shape, generator=gen) * 0.2))

    def ln(name):
        out.append((name + ".weight", 1.0 + 0.1 * torch.randn(H, generator=gen)))
        out.append((name + ".bias", 0.1 * torch.randn(H, generator=gen)))

    def lin(name, o, i):
        mat(name + ".weight", o, i)
        mat(name + ".bias", o)

    mat(pre + "embeddings.word_embeddings.weight", V, H)
    mat(pre + "embeddings.position_embeddings.weight", Pn, H)
    if kind == "bert":
        mat(pre + "embeddings.token_type_embeddings.weight", cfg["type_vocab_size"], H)
    ln(pre + "embeddings.LayerNorm")
    for i in range(L):
        if kind == "bert":
            p = pre + "encoder.layer.%d." % i
            for m in ("query", "key", "value"):
                lin(p + "attention.self." + m, H, H)
            lin(p + "attention.output.dense", H, H)
            ln(p + "attention.output.LayerNorm")
            lin(p + "intermediate.dense", FF, H)
            lin(p + "output.dense", H, FF)
            ln(p + "output.LayerNorm")
        else:
            p = pre + "transformer.layer.%d." % i
            for m in ("q_lin", "k_lin", "v_lin", "out_lin"):
                lin(p + "attention." + m, H, H)
            ln(p + "sa_layer_norm")
            lin(p + "ffn.lin1", FF, H)
            lin(p + "ffn.lin2", H, FF)
            ln(p + "output_layer_norm")
    if kind == "bert":
        lin(pre + "pooler.dense", H, H)
    else:
        lin("pre_classifier", H, H)
    lin("classifier", n_labels, H)
    return out


def make(kind, name, cfg, labels, tok_cfg, seed):
    d = os.path.join(REF, name)
    os.makedirs(d, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    tensors = params(kind, cfg, len(labels), gen)
    P = dict(tensors)
    if kind == "bert":   # HF keeps this buffer in the file; the engine ignores integer tensors
        tensors.append(("bert.embeddings.position_ids", torch.arange(cfg["max_position_embeddings"])[None]))
    write_safetensors(os.path.join(d, "model.safetensors"), tensors, {"format": "pt"})
    full = dict(cfg, id2label={str(i): l for i, l in enumerate(labels)},
                label2id={l: i for i, l in enumerate(labels)})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(full, f, indent=2)
    with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(VOCAB) + "\n")
    if tok_cfg is not None:
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(tok_cfg, f, indent=2)
    vocab = {t: i for i, t in enumerate(VOCAB)}
    lower = (tok_cfg or {}).get("do_lower_case", True)
    ids = [encode(t.encode("utf-8"), vocab, lower=lower) for t in TEXTS]
    with torch.no_grad():
        one = [forward(kind, P, cfg, torch.tensor([x]), torch.ones(1, len(x), dtype=torch.bool))[0] for x in ids]
        T = max(len(x) for x in ids)
        padded = torch.tensor([x + [0] * (T - len(x)) for x in ids])
        mask = torch.tensor([[i < len(x) for i in range(T)] for x in ids])
        batch = forward(kind, P, cfg, padded, mask)
    logits = torch.stack(one)
    diff = (batch - logits).abs().max().item()
    assert diff < 1e-5, diff
    probs = torch.softmax(logits, -1)
    exp = {"texts": TEXTS, "ids": ids, "labels": labels, "logits": logits.tolist(), "probs": probs.tolist(),
           "padded_batch_max_abs_diff": diff}
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1, ensure_ascii=False)
    print("%s: %d texts (lengths %s), padded batch vs one by one %.2g, probs[0] %s"
          % (d, len(TEXTS), [len(x) for x in ids], diff, [round(p, 4) for p in probs[0].tolist()]))


def main():
    torch.set_num_threads(1)
    bert = {"model_type": "bert", "architectures": ["BertForSequenceClassification"], "vocab_size": len(VOCAB),
            "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
            "hidden_act": "gelu", "max_position_embeddings": 64, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
            "position_embedding_type": "absolute", "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1, "pad_token_id": 0}
    distil = {"model_type": "distilbert", "architectures": ["DistilBertForSequenceClassification"],
              "vocab_size": len(VOCAB), "dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64,
              "activation": "gelu", "max_position_embeddings": 64, "sinusoidal_pos_embds": False,
              "dropout": 0.1, "attention_dropout": 0.1, "seq_classif_dropout": 0.2, "pad_token_id": 0}
    make("bert", "bert_tiny", bert, ["negative", "neutral", "positive"], {"do_lower_case": True}, 8)
    make("distilbert", "distilbert_tiny", distil, ["NEGATIVE", "POSITIVE"], None, 9)


if __name__ == "__main__":
    main()
