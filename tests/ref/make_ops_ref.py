#!/usr/bin/python3
"""make_ops_ref.py — writes tests/ref/ops_ref.txt, the PyTorch reference
values that tests/unit/test_ops.c compares the engine's ops against.

Run from the repository root with the system python that has torch:
    /usr/bin/python3 tests/ref/make_ops_ref.py

Format (plain text, one array per line):
    <name> <count> <v0> <v1> ... <v(count-1)>
Inputs are float32 values (printed with 9 significant digits, so they read
back bit-exactly). References are computed in float64 from those float32
inputs, except AdamW and clip_grad_norm, which run in float32 as training
does. Gradients are of L = sum(out * R) for the fixed array R stored with
each case. Integer arrays (dims, targets) are stored as floats.
"""
import os
import sys

import torch
import torch.nn.functional as F

VERSION = 1
lines = []


def put(name, t):
    """Appends one named array (any shape, flattened)."""
    flat = t.detach().reshape(-1).tolist() if torch.is_tensor(t) else list(t)
    fmt = "%.9g" if (torch.is_tensor(t) and t.dtype == torch.float32) else "%.12g"
    lines.append("%s %d %s" % (name, len(flat), " ".join(fmt % v for v in flat)))


def rand(g, *shape, lo=-1.0, hi=1.0):
    """float32 uniform values in [lo, hi)."""
    return (torch.rand(*shape, generator=g, dtype=torch.float32) * (hi - lo) + lo)


def f64(t):
    return t.double().requires_grad_(True)


def main():
    g = torch.Generator().manual_seed(1234)
    put("version", [VERSION])

    # ---- linear: out[N,OC] = in[N,C] @ w[OC,C]^T + b
    N, C, OC = 5, 7, 3
    x, w, b, R = rand(g, N, C), rand(g, OC, C), rand(g, OC), rand(g, N, OC)
    xd, wd, bd = f64(x), f64(w), f64(b)
    out = F.linear(xd, wd, bd)
    (out * R.double()).sum().backward()
    put("lin.dims", [N, C, OC])
    for k, v in [("in", x), ("w", w), ("b", b), ("R", R), ("out", out), ("din", xd.grad),
                 ("dw", wd.grad), ("db", bd.grad)]:
        put("lin." + k, v)

    # ---- conv2d: stride 2 + pad; rectangular kernel; pointwise; stride 1 + pad
    convs = {
        "conv_a": (2, 3, 7, 5, 4, 3, 3, 2, 1),
        "conv_b": (2, 2, 6, 9, 3, 2, 3, 1, 0),
        "conv_c": (2, 4, 3, 5, 3, 1, 1, 1, 0),
        "conv_d": (3, 5, 8, 6, 6, 3, 3, 1, 1),
    }
    for name, (B, C, H, W, OC, KH, KW, S, P) in convs.items():
        x, w, b = rand(g, B, C, H, W), rand(g, OC, C, KH, KW), rand(g, OC)
        xd, wd, bd = f64(x), f64(w), f64(b)
        out = F.conv2d(xd, wd, bd, stride=S, padding=P)
        R = rand(g, *out.shape)
        (out * R.double()).sum().backward()
        put(name + ".dims", [B, C, H, W, OC, KH, KW, S, P])
        for k, v in [("in", x), ("w", w), ("b", b), ("R", R), ("out", out), ("din", xd.grad),
                     ("dw", wd.grad), ("db", bd.grad)]:
            put(name + "." + k, v)

    # ---- pooling: values well apart so the max of a window is unambiguous
    B, C, H, W, K, S = 2, 3, 7, 6, 3, 2
    x = (torch.randperm(B * C * H * W, generator=g).float() * 0.05 - 3.0).reshape(B, C, H, W)
    xd = f64(x)
    out = F.max_pool2d(xd, K, S)
    R = rand(g, *out.shape)
    (out * R.double()).sum().backward()
    put("mp.dims", [B, C, H, W, K, S])
    for k, v in [("in", x), ("R", R), ("out", out), ("din", xd.grad)]:
        put("mp." + k, v)

    B, C, H, W, K, S = 2, 3, 6, 7, 2, 2
    x = rand(g, B, C, H, W)
    xd = f64(x)
    out = F.avg_pool2d(xd, K, S)
    R = rand(g, *out.shape)
    (out * R.double()).sum().backward()
    put("ap.dims", [B, C, H, W, K, S])
    for k, v in [("in", x), ("R", R), ("out", out), ("din", xd.grad)]:
        put("ap." + k, v)

    B, C, H, W = 3, 4, 5, 3
    x = rand(g, B, C, H, W)
    put("gap.dims", [B, C, H * W])
    put("gap.in", x)
    put("gap.out", x.double().mean(dim=(2, 3)))

    # ---- activations over [-6, 6], plus extremes for sigmoid / tanh
    x = torch.cat([torch.linspace(-6, 6, 49), torch.tensor([-90.0, -20.0, 20.0, 90.0])]).float()
    xd = x.double()
    put("act.x", x)
    put("act.relu", F.relu(xd))
    put("act.gelu", F.gelu(xd, approximate="tanh"))
    put("act.tanh", torch.tanh(xd))
    put("act.sigmoid", torch.sigmoid(xd))

    # ---- batchnorm2d: two training steps, then inference with the running stats
    B, C, H, W = 3, 4, 3, 5
    momentum, eps = 0.1, 1e-5
    bn = torch.nn.BatchNorm2d(C, eps=eps, momentum=momentum).double()
    gamma, beta = rand(g, C, lo=0.5, hi=1.5), rand(g, C)
    rm0, rv0 = rand(g, C), rand(g, C, lo=0.5, hi=2.0)
    with torch.no_grad():
        bn.weight.copy_(gamma.double())
        bn.bias.copy_(beta.double())
        bn.running_mean.copy_(rm0.double())
        bn.running_var.copy_(rv0.double())
    x1 = rand(g, B, C, H, W) * 2.0 + 0.5     # mean and scale away from 0 and 1
    x2 = rand(g, B, C, H, W) * 0.5 - 1.0
    bn.train()
    x1d = f64(x1)
    out1 = bn(x1d)
    R = rand(g, *out1.shape)
    (out1 * R.double()).sum().backward()
    rm1, rv1 = bn.running_mean.clone(), bn.running_var.clone()
    out2 = bn(x2.double())
    rm2, rv2 = bn.running_mean.clone(), bn.running_var.clone()
    bn.eval()
    with torch.no_grad():
        out_inf = bn(x1.double())
    put("bn.dims", [B, C, H * W])
    put("bn.hyper", [momentum, eps])
    for k, v in [("gamma", gamma), ("beta", beta), ("rm0", rm0), ("rv0", rv0), ("x1", x1), ("x2", x2),
                 ("R", R), ("out1", out1), ("rm1", rm1), ("rv1", rv1), ("out2", out2), ("rm2", rm2),
                 ("rv2", rv2), ("out_infer", out_inf), ("din", x1d.grad), ("dgamma", bn.weight.grad),
                 ("dbeta", bn.bias.grad)]:
        put("bn." + k, v)

    # ---- softmax / log-softmax / cross-entropy
    N, C = 4, 9
    x = rand(g, N, C, lo=-4.0, hi=4.0)
    put("sm.dims", [N, C])
    put("sm.in", x)
    put("sm.softmax", F.softmax(x.double(), dim=1))
    put("sm.log_softmax", F.log_softmax(x.double(), dim=1))

    N, C = 6, 5
    x = rand(g, N, C, lo=-3.0, hi=3.0)
    t = torch.randint(0, C, (N,), generator=g)
    xd = f64(x)
    loss = F.cross_entropy(xd, t)
    loss.backward()
    put("ce.dims", [N, C])
    put("ce.logits", x)
    put("ce.targets", t.double())
    put("ce.loss", [loss.item()])
    put("ce.probs", F.softmax(x.double(), dim=1))
    put("ce.dlogits", xd.grad)

    # ---- AdamW: 6 steps of torch.optim.AdamW on float32 params
    n, steps = 13, 6
    lr, b1, b2, eps, wd = 0.05, 0.9, 0.95, 1e-8, 0.1
    p0 = rand(g, n)
    grads = [rand(g, n, lo=-2.0, hi=2.0) for _ in range(steps)]
    grads[2][:3] = 0.0   # zero gradients: only weight decay and momentum move these
    param = torch.nn.Parameter(p0.clone())
    opt = torch.optim.AdamW([param], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    put("adam.hyper", [n, steps, lr, b1, b2, eps, wd])
    put("adam.p0", p0)
    for s in range(steps):
        param.grad = grads[s].clone()
        opt.step()
        put("adam.g%d" % (s + 1), grads[s])
        put("adam.p%d" % (s + 1), param.detach())

    # ---- clip_grad_norm_: one case that clips, one that does not
    for name, scale, max_norm in [("clip1", 3.0, 1.0), ("clip2", 0.1, 5.0)]:
        gv = rand(g, 20) * scale
        prm = torch.nn.Parameter(torch.zeros(20))
        prm.grad = gv.clone()
        norm = torch.nn.utils.clip_grad_norm_([prm], max_norm)
        put(name + ".max_norm", [max_norm])
        put(name + ".g", gv)
        put(name + ".norm", [norm.item()])
        put(name + ".out", prm.grad)

    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "ops_ref.txt")
    with open(path, "w") as f:
        f.write("# ops_ref.txt — written by tests/ref/make_ops_ref.py (torch %s); do not edit\n"
                % torch.__version__)
        f.write("\n".join(lines) + "\n")
    print("wrote %s (%d arrays, %d bytes)" % (path, len(lines), os.path.getsize(path)), file=sys.stderr)


if __name__ == "__main__":
    main()
