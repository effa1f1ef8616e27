#!/usr/bin/python3
"""bench_stylize.py — the PyTorch side of the stylization benchmark.

    bench_stylize.py make OUT_DIR
        a full-width TransformerNet (pytorch/examples' architecture, as
        tests/ref/make_transformer_net_ref.py writes it) with random weights,
        through scripts/convert_fast_neural_style.py into OUT_DIR
    bench_stylize.py run [--sizes 256,512] [--batch 1] [--threads 2] [--rounds 3] [--check DUMP] MODEL_DIR
        the same network on MODEL_DIR's weights (read back from its
        safetensors), torch.inference_mode; prints
            torch threads=T size=S batch=B ms_image=.. img_s=..
        (T printed as "2p" under OMP_WAIT_POLICY=passive). --check DUMP reads
        bench_stylize's dump and prints "check ok|MISMATCH max_diff=.." (outputs
        within 1/255 after clamping).
Asserts nothing about speed.
"""
import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ref"))
from make_transformer_net_ref import TransformerNet  # noqa: E402  (the architecture, written once)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    sd = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        sd[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).copy().reshape(e["shape"]))
    return sd


def make(out):
    torch.manual_seed(5)
    net = TransformerNet(1.0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
        net.deconv3.conv2d.weight.mul_(150.0)
        net.deconv3.conv2d.bias.fill_(128.0)
    with tempfile.TemporaryDirectory() as tmp:
        pth = os.path.join(tmp, "bench.pth")
        torch.save(net.state_dict(), pth)
        subprocess.run([sys.executable, os.path.join(HERE, "..", "..", "scripts", "convert_fast_neural_style.py"), pth, out],
                       check=True, stdout=subprocess.DEVNULL)


def run(a):
    torch.set_num_threads(a.threads)
    net = TransformerNet(1.0).eval()
    net.load_state_dict(load_safetensors(os.path.join(a.model, "model.safetensors")))
    tname = f"{a.threads}p" if os.environ.get("OMP_WAIT_POLICY", "").lower() == "passive" else str(a.threads)
    with torch.inference_mode():
        if a.check:
            with open(a.check, "rb") as f:
                h, w = struct.unpack("<ii", f.read(8))
                v = np.frombuffer(f.read(), dtype=np.float32)
            x = torch.from_numpy(v[: 3 * h * w].copy()).reshape(1, 3, h, w)
            want = v[3 * h * w:].reshape(3, h, w)
            got = net(x)[0, :, :h, :w].numpy()
            d = float(np.abs(np.clip(got, 0, 255) - np.clip(want, 0, 255)).max())
            print(f"check {'ok' if d <= 1.0 else 'MISMATCH'} max_diff={d:.3g} (engine vs PyTorch, {h}x{w}, of 0..255)")
        for s in [int(v) for v in a.sizes.split(",")]:
            x = torch.rand(a.batch, 3, s, s) * 255
            net(x)
            ms = []
            for _ in range(a.rounds):
                t0 = time.perf_counter()
                net(x)
                ms.append((time.perf_counter() - t0) * 1000 / a.batch)
            med = statistics.median(ms)
            print(f"torch threads={tname} size={s} batch={a.batch} ms_image={med:.1f} img_s={1000 / med:.2f} "
                  f"best_ms={min(ms):.1f}", flush=True)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "make":
        make(sys.argv[2])
        return
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["run"])
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--check")
    p.add_argument("model")
    run(p.parse_args())


if __name__ == "__main__":
    main()
