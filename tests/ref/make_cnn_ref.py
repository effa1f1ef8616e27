#!/usr/bin/python3
"""make_cnn_ref.py — writes tests/ref/cnn_ref/, the PyTorch reference that
tests/unit/test_cnn.c compares engine/arch/cnn.c (and the tape under it) against.

Run from anywhere with the system python that has torch:
    /usr/bin/python3 tests/ref/make_cnn_ref.py

For each config ("full": every layer type cnn.h supports, including a
batchnorm over flat features; "gap": global_avgpool) it writes
    cnn_ref/<name>/config.json        the layer list, in eng_model_load's format
    cnn_ref/<name>/model.safetensors  the state dict (pure-python writer below),
                                      num_batches_tracked left out, running
                                      stats made non-trivial by a few train-mode
                                      forwards on other data
    cnn_ref/<name>_ref.txt            the fixture, one array per line:
                                      <name> <count> <v0> ... <v(count-1)>
Arrays in the fixture (all float32 computations, as the engine does them;
integers stored as floats):
    version                 [1]
    dims                    [B, C, H, W, n_classes]
    x                       input [B, C, H, W]
    targets                 [B]
    eval.logits             model.eval() logits [B, n_classes]
    train.logits, train.loss                 model.train() forward, F.cross_entropy
    grad.<param>            d loss / d param of that first train-mode forward
    grad.x                  d loss / d input
    run1.<buffer>           running_mean/var after that one train forward
    adamw.hyper             [steps, lr, beta1, beta2, eps, weight_decay]
    adamw.losses            the loss of each step (step 1 = train.loss)
    adamw.<param>           the parameters after the steps (AdamW on the same
                            batch, gradients zeroed and loss recomputed each step)
    adamw.run.<buffer>      running stats after the steps' forwards
The script asserts that no ReLU input lies within MARGIN of 0 and that every
max-pool window's winner beats the runner-up by MARGIN, in every forward it
records, so float32 rounding in the engine cannot pick another branch.
"""
import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

VERSION = 1
MARGIN = 1e-4
WEIGHT_SCALE = 3.0
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "cnn_ref")

CONFIGS = {
    # [3,3,10,12] -> conv s2 p1 [4,5,6] -> conv p1 [6,5,6] -> avgpool k2 s1 [6,4,5]
    # -> maxpool k2 [6,2,2] -> flatten 24 -> 16 -> bn1d -> 8 -> 3
    "full": {
        "input": {"channels": 3, "height": 10, "width": 12,
                  "mean": [0.5, 0.4, 0.3], "std": [0.25, 0.2, 0.3]},
        "layers": [
            {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1},
            {"type": "batchnorm"},
            {"type": "relu"},
            {"type": "conv2d", "out_channels": 6, "kernel_size": 3, "padding": 1},
            {"type": "gelu"},
            {"type": "avgpool2d", "kernel_size": 2, "stride": 1},
            {"type": "maxpool2d", "kernel_size": 2},
            {"type": "flatten"},
            {"type": "linear", "out_features": 16},
            {"type": "tanh"},
            {"type": "batchnorm", "momentum": 0.2, "eps": 1e-3},
            {"type": "linear", "out_features": 8},
            {"type": "sigmoid"},
            {"type": "linear", "out_features": 3},
        ],
        "labels": ["ant", "bee", "cat"],
        "batch": 3,
        "targets": [2, 0, 1],
    },
    # [4,1,9,7] -> conv p1 [5,9,7] -> conv s2 [6,4,3] -> global avg [6] -> 4
    "gap": {
        "input": {"channels": 1, "height": 9, "width": 7, "mean": [0.2], "std": [0.5]},
        "layers": [
            {"type": "conv2d", "out_channels": 5, "kernel_size": 3, "padding": 1},
            {"type": "tanh"},
            {"type": "batchnorm"},
            {"type": "conv2d", "out_channels": 6, "kernel_size": 3, "stride": 2},
            {"type": "gelu"},
            {"type": "global_avgpool"},
            {"type": "linear", "out_features": 4},
        ],
        "labels": ["w", "x", "y", "z"],
        "batch": 4,
        "targets": [3, 1, 0, 1],
    },
}
ADAMW = {"steps": 3, "lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1}


class GlobalAvgPool(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


class Net(nn.Module):
    """nn.Sequential under the attribute `layers`, so names are layers.<i>.*"""

    def __init__(self, cfg):
        super().__init__()
        c, h = cfg["input"]["channels"], cfg["input"]["height"]
        w = cfg["input"]["width"]
        mods = []
        for L in cfg["layers"]:
            t = L["type"]
            if t == "conv2d":
                k, s, p = L["kernel_size"], L.get("stride", 1), L.get("padding", 0)
                mods.append(nn.Conv2d(c, L["out_channels"], k, stride=s, padding=p))
                c, h, w = L["out_channels"], (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            elif t == "batchnorm":
                kw = {"eps": L.get("eps", 1e-5), "momentum": L.get("momentum", 0.1)}
                mods.append(nn.BatchNorm2d(c, **kw) if h else nn.BatchNorm1d(c, **kw))
            elif t == "relu":
                mods.append(nn.ReLU())
            elif t == "gelu":
                mods.append(nn.GELU(approximate="tanh"))
            elif t == "tanh":
                mods.append(nn.Tanh())
            elif t == "sigmoid":
                mods.append(nn.Sigmoid())
            elif t in ("maxpool2d", "avgpool2d"):
                k, s = L["kernel_size"], L.get("stride", L["kernel_size"])
                mods.append((nn.MaxPool2d if t == "maxpool2d" else nn.AvgPool2d)(k, s))
                h, w = (h - k) // s + 1, (w - k) // s + 1
            elif t == "global_avgpool":
                mods.append(GlobalAvgPool())
                h = w = 0
            elif t == "flatten":
                mods.append(nn.Flatten())
                c, h, w = c * max(h, 1) * max(w, 1), 0, 0
            elif t == "linear":
                mods.append(nn.Linear(c, L["out_features"]))
                c = L["out_features"]
            else:
                raise ValueError(t)
        self.layers = nn.Sequential(*mods)

    def forward(self, x):
        return self.layers(x)


CHECKING = [False]   # margins matter only in the forwards the fixture records


def check_margins(module, inp, _out):
    """Forward hook: no ReLU input near its kink, no near-tie in a max-pool window."""
    if not CHECKING[0]:
        return
    x = inp[0].detach()
    if isinstance(module, nn.ReLU):
        m = x.abs().min().item()
        assert m > MARGIN, "ReLU input %.3g within the margin of 0: change the seed" % m
    elif isinstance(module, nn.MaxPool2d):
        k, s = module.kernel_size, module.stride
        win = x.unfold(2, k, s).unfold(3, k, s).reshape(*x.shape[:2], -1, k * k)
        top2 = win.topk(2, dim=-1).values
        gap = (top2[..., 0] - top2[..., 1]).min().item()
        assert gap > MARGIN, "max-pool near-tie (%.3g): change the seed" % gap


# ---------------------------------------------------------------- output helpers
def safetensors_bytes(tensors):
    """The safetensors format with struct + json: u64 LE header length, JSON
    header {name: {dtype, shape, data_offsets}}, raw little-endian data.
    Header padded with spaces to a multiple of 8 so F32 data stays aligned."""
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        vals = t.detach().float().reshape(-1).tolist()
        raw = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt", "source": "tests/ref/make_cnn_ref.py"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


class Fixture:
    def __init__(self):
        self.lines = []

    def put(self, name, t):
        flat = t.detach().reshape(-1).tolist() if torch.is_tensor(t) else list(t)
        fmt = "%.9g" if (torch.is_tensor(t) and t.dtype == torch.float32) else "%.12g"
        self.lines.append("%s %d %s" % (name, len(flat), " ".join(fmt % v for v in flat)))


# ---------------------------------------------------------------- one config
def make(name, cfg, seed):
    torch.manual_seed(seed)
    net = Net(cfg)
    for m in net.modules():
        m.register_forward_hook(check_margins)
    inp = cfg["input"]
    B, C, H, W = cfg["batch"], inp["channels"], inp["height"], inp["width"]
    # Weights 3x PyTorch's default scale (so the logits depend visibly on the
    # input), non-trivial batch-norm affine parameters and running statistics.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(WEIGHT_SCALE)
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.uniform_(0.6, 1.4)
                m.bias.uniform_(-0.3, 0.3)
        net.train()
        for _ in range(4):
            net(torch.randn(5, C, H, W) * 1.5 + 0.3)

    state = [(k, v.clone()) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")]
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(safetensors_bytes(state))
    conf = {"task": "image-classification", "arch": "cnn", "input": inp,
            "layers": cfg["layers"], "labels": cfg["labels"]}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)
        f.write("\n")

    CHECKING[0] = True
    fx = Fixture()
    fx.put("version", [VERSION])
    fx.put("dims", [B, C, H, W, len(cfg["labels"])])
    x = torch.randn(B, C, H, W)
    targets = torch.tensor(cfg["targets"])
    fx.put("x", x)
    fx.put("targets", [float(t) for t in cfg["targets"]])

    net.eval()
    with torch.no_grad():
        fx.put("eval.logits", net(x))

    # One train-mode forward + backward (batch statistics), then AdamW on the same batch.
    net.train()
    xg = x.clone().requires_grad_(True)
    logits = net(xg)
    loss = F.cross_entropy(logits, targets)
    loss.backward()
    fx.put("train.logits", logits)
    fx.put("train.loss", [loss.item()])
    params = [(k, p) for k, p in net.named_parameters()]
    buffers = [(k, b) for k, b in net.named_buffers() if not k.endswith("num_batches_tracked")]
    for k, p in params:
        fx.put("grad." + k, p.grad)
    fx.put("grad.x", xg.grad)
    for k, b in buffers:
        fx.put("run1." + k, b)

    a = ADAMW
    opt = torch.optim.AdamW(net.parameters(), lr=a["lr"], betas=(a["beta1"], a["beta2"]),
                            eps=a["eps"], weight_decay=a["weight_decay"])
    losses = [loss.item()]
    opt.step()
    for _ in range(a["steps"] - 1):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), targets)
        loss.backward()
        losses.append(loss.item())
        opt.step()
    fx.put("adamw.hyper", [a["steps"], a["lr"], a["beta1"], a["beta2"], a["eps"], a["weight_decay"]])
    fx.put("adamw.losses", losses)
    for k, p in params:
        fx.put("adamw." + k, p)
    for k, b in buffers:
        fx.put("adamw.run." + k, b)

    CHECKING[0] = False
    path = os.path.join(OUT, name + "_ref.txt")
    with open(path, "w") as f:
        f.write("# %s_ref.txt — written by tests/ref/make_cnn_ref.py (torch %s); do not edit\n"
                % (name, torch.__version__))
        f.write("\n".join(fx.lines) + "\n")
    print("wrote %s (%d arrays, %d bytes) and %s/" % (path, len(fx.lines), os.path.getsize(path), d),
          file=sys.stderr)


def main():
    torch.set_num_threads(1)
    make("full", CONFIGS["full"], seed=1)
    make("gap", CONFIGS["gap"], seed=1)


if __name__ == "__main__":
    main()
