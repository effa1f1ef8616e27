#!/usr/bin/python3
"""make_lstm_attention_ref.py — writes tests/ref/lstm_attention_ref/, the
PyTorch reference tests/unit/test_lstm_attention.c compares
engine/arch/lstm_attention.c against.

Run from anywhere with the system python that has torch:
    /usr/bin/python3 tests/ref/make_lstm_attention_ref.py

The model is written here from the published architecture (Luong, Pham &
Manning 2015: global attention, "general" score, input feeding) with torch.nn
building blocks, one sentence at a time (no padding, no masking):
    src_embed = nn.Embedding(Vs, D); tgt_embed = nn.Embedding(Vt, D)
    encoder   = nn.LSTM(D, H/2, E, bidirectional=True)        memory m [S, H]
    decoder   = nn.LSTMCell(D + H, H)                         input [emb(y); h~]
    attn      = nn.Linear(H, H, bias=False)                    score = h . attn(m_s)
    combine   = nn.Linear(2H, H, bias=False)                   h~ = tanh(combine([ctx; h]))
    out       = nn.Linear(H, Vt)
The directory is a servable model (config.json, model.safetensors,
source_vocab.json, target_vocab.json) plus ref.json:
    sources [[ids]]  (each ends with the source EOS, 2)
    tgt_in  [[ids]]  teacher-forced decoder inputs (start id first)
    logits  [[[Vt floats]]] per source and step
    greedy  [[ids]]  argmax decoding (pad masked) from the start id until EOS
                     (excluded) or max_tokens tokens (then finished only if EOS
                     is the next argmax), and finished flags
"""
import json
import os
import struct

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "lstm_attention_ref")
VS, VT, D, H, E = 12, 14, 8, 10, 2
START, EOS, PAD = 1, 2, 0
MAX_TOKENS = 12
SCALE = 2.0   # times PyTorch's default init: saturated gates, logits spread


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        data = t.detach().contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class Luong(nn.Module):
    def __init__(self):
        super().__init__()
        self.src_embed = nn.Embedding(VS, D)
        self.tgt_embed = nn.Embedding(VT, D)
        self.encoder = nn.LSTM(D, H // 2, E, bidirectional=True)
        self.decoder = nn.LSTMCell(D + H, H)
        self.attn = nn.Linear(H, H, bias=False)
        self.combine = nn.Linear(2 * H, H, bias=False)
        self.out = nn.Linear(H, VT)

    def encode(self, src):
        m, _ = self.encoder(self.src_embed(torch.tensor(src))[:, None, :])   # [S, 1, H]
        m = m[:, 0, :]
        return m, self.attn(m)

    def step(self, m, k, y, state):
        h, c, ht = state
        x = torch.cat([self.tgt_embed(torch.tensor([y]))[0], ht])
        h, c = self.decoder(x[None], (h[None], c[None]))
        h, c = h[0], c[0]
        a = torch.softmax(k @ h, dim=0)
        ctx = a @ m
        ht = torch.tanh(self.combine(torch.cat([ctx, h])))
        return self.out(ht), (h, c, ht)

    def zero(self):
        return torch.zeros(H), torch.zeros(H), torch.zeros(H)


def main():
    torch.manual_seed(1)
    model = Luong()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed" not in name:
                p.mul_(SCALE)
    os.makedirs(OUT, exist_ok=True)
    write_safetensors(os.path.join(OUT, "model.safetensors"), list(model.state_dict().items()))
    config = {"task": "translation", "arch": "lstm-attention", "src_vocab_size": VS, "tgt_vocab_size": VT,
              "embed_size": D, "hidden_size": H, "encoder_layers": E, "max_src_len": 32, "max_tgt_len": 32,
              "start_id": START, "eos_id": EOS, "pad_id": PAD}
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    with open(os.path.join(OUT, "source_vocab.json"), "w") as f:
        json.dump(["<pad>", "<unk>", "</s>"] + list("abcdefghi"), f)
    with open(os.path.join(OUT, "target_vocab.json"), "w") as f:
        json.dump(["<pad>", "<s>", "</s>", "<unk>"] + list("ABCDEFGHIJ"), f)

    g = torch.Generator().manual_seed(1)
    sources, tgt_in, logits, greedy, finished = [], [], [], [], []
    with torch.no_grad():
        for n in (7, 2, 5, 1):
            src = [int(x) for x in torch.randint(3, VS, (n - 1,), generator=g)] + [EOS] if n > 1 else [EOS]
            tin = [START] + [int(x) for x in torch.randint(3, VT, (5,), generator=g)]
            m, k = model.encode(src)
            st, rows = model.zero(), []
            for y in tin:
                lg, st = model.step(m, k, y, st)
                rows.append([float(v) for v in lg])
            st, y, out, fin = model.zero(), START, [], False
            for i in range(MAX_TOKENS + 1):   # after MAX_TOKENS tokens, EOS may still end it
                lg, st = model.step(m, k, y, st)
                lg[PAD] = -float("inf")
                y = int(torch.argmax(lg))
                if y == EOS:
                    fin = True
                    break
                if i == MAX_TOKENS:
                    break
                out.append(y)
            sources.append(src)
            tgt_in.append(tin)
            logits.append(rows)
            greedy.append(out)
            finished.append(fin)
    with open(os.path.join(OUT, "ref.json"), "w") as f:
        json.dump({"version": 1, "max_tokens": MAX_TOKENS, "sources": sources, "tgt_in": tgt_in, "logits": logits,
                   "greedy": greedy, "finished": finished}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
