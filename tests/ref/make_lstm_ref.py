#!/usr/bin/python3
"""make_lstm_ref.py — writes tests/ref/lstm_ref/, the PyTorch reference that
tests/unit/test_lstm.c compares engine/arch/lstm.c against.

Run from anywhere with the system python that has torch:
    /usr/bin/python3 tests/ref/make_lstm_ref.py

The model is the char-rnn lstm.h describes, built from torch.nn:
    embed = nn.Embedding(V, H); lstm = nn.LSTM(H, H, L, batch_first=True); head = nn.Linear(H, V)
(tie_word_embeddings: head.weight is embed.weight). For each config
("untied": V=20, H=16, L=2; "tied": V=20, H=12, L=3) it writes
    lstm_ref/<name>/config.json        in eng_model_load's format
    lstm_ref/<name>/model.safetensors  the state dict (pure-python writer
                                       below; a tied head.weight is left out)
    lstm_ref/<name>_ref.txt            the fixture, one array per line:
                                       <name> <count> <v0> ... <v(count-1)>
Arrays in the fixture (float32 computations; integers stored as floats):
    version          [1]
    dims             [V, H, L, S, TL, B, T, tied]
    tokens           [S, TL]     S reference sequences
    logits           [S, TL, V]  the full forward of each sequence from zero state
    train.tokens     [B, T]      a training batch (windows of T+1 tokens: tokens = w[:, :T])
    train.targets    [B, T]      next tokens (w[:, 1:])
    train.loss       [1]         mean cross-entropy over the B*T positions
    grad.<name>      d loss / d parameter, PyTorch name and layout (a tied
                     embed.weight gets the sum of both uses, as autograd does)
LSTM weights (and an untied head's) are scaled up from PyTorch's default
init so the gates leave their linear range and the logits spread (the tests
then see saturation, not a near-linear model).
"""
import json
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

VERSION = 1
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "lstm_ref")
S, TL = 2, 24      # reference sequences and their length
B, T = 2, 6        # training batch
LSTM_SCALE = 2.5   # times PyTorch's U(-1/sqrt(H), 1/sqrt(H))
HEAD_SCALE = 4.0   # an untied head: logits of order 1, not 0.1

CONFIGS = {
    "untied": dict(vocab_size=20, hidden_size=16, num_layers=2, context_len=64, tie_word_embeddings=False),
    "tied": dict(vocab_size=20, hidden_size=12, num_layers=3, context_len=64, tie_word_embeddings=True),
}


# ---------------------------------------------------------------- safetensors writer
def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, float32 tensor): u64 LE header length, JSON
    header {name: {dtype, shape, data_offsets}} padded with spaces to 8 bytes, data."""
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


# ---------------------------------------------------------------- the model
class CharRNN(nn.Module):
    def __init__(self, c):
        super().__init__()
        V, H, L = c["vocab_size"], c["hidden_size"], c["num_layers"]
        self.embed = nn.Embedding(V, H)
        self.lstm = nn.LSTM(H, H, L, batch_first=True)
        self.head = nn.Linear(H, V)
        if c["tie_word_embeddings"]:
            self.head.weight = self.embed.weight
        with torch.no_grad():
            for p in self.lstm.parameters():
                p.mul_(LSTM_SCALE)
            if not c["tie_word_embeddings"]:
                self.head.weight.mul_(HEAD_SCALE)

    def forward(self, tokens):   # [B, T] -> [B, T, V], state starting at zero
        y, _ = self.lstm(self.embed(tokens))
        return self.head(y)


# ---------------------------------------------------------------- fixture text
class Fixture:
    def __init__(self, path):
        self.path = path
        self.lines = [f"# {os.path.basename(path)} — written by tests/ref/make_lstm_ref.py "
                      f"(torch {torch.__version__}); do not edit", f"version 1 {VERSION}"]

    def add(self, name, t):
        v = torch.as_tensor(t).detach().reshape(-1).tolist()
        self.lines.append(f"{name} {len(v)} " + " ".join(repr(float(x)) if isinstance(x, float) else str(x)
                                                      for x in v))

    def add_f32(self, name, t):
        v = torch.as_tensor(t).detach().to(torch.float32).reshape(-1).tolist()
        self.lines.append(f"{name} {len(v)} " + " ".join(f"{x:.9g}" for x in v))

    def write(self):
        with open(self.path, "w") as f:
            f.write("\n".join(self.lines) + "\n")


def make(name, c, seed):
    torch.manual_seed(seed)
    V, H, L = c["vocab_size"], c["hidden_size"], c["num_layers"]
    model = CharRNN(c)
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    cfg = {"task": "text-generation", "arch": "lstm", **c}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")
    sd = [(k, v) for k, v in model.state_dict().items()
          if not (c["tie_word_embeddings"] and k == "head.weight")]
    write_safetensors(os.path.join(d, "model.safetensors"), sd, {"format": "pt"})

    fx = Fixture(os.path.join(OUT, f"{name}_ref.txt"))
    fx.add("dims", [V, H, L, S, TL, B, T, int(c["tie_word_embeddings"])])
    g = torch.Generator().manual_seed(seed + 100)
    tokens = torch.randint(0, V, (S, TL), generator=g)
    fx.add("tokens", tokens)
    with torch.no_grad():
        fx.add_f32("logits", model(tokens))

    w = torch.randint(0, V, (B, T + 1), generator=g)
    x, y = w[:, :T], w[:, 1:]
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
    loss.backward()
    fx.add("train.tokens", x)
    fx.add("train.targets", y)
    fx.add_f32("train.loss", loss.reshape(1))
    names = []
    for pname, p in model.named_parameters():   # shared (tied) parameters appear once
        fx.add_f32("grad." + pname, p.grad)
        names.append(pname)
    fx.write()
    print(f"{name}: loss {loss.item():.6f}, params {', '.join(names)}")


def main():
    torch.set_num_threads(1)
    for i, (name, c) in enumerate(CONFIGS.items()):
        make(name, c, 1234 + i)


if __name__ == "__main__":
    main()
