#!/usr/bin/python3
"""bench_torch.py — the PyTorch baseline for tests/bench/bench_engine.c.

Builds the torch.nn.Sequential that a model directory's config.json "layers"
describes, loads model.safetensors (nn.Sequential state_dict names) with a
small pure-Python reader, and times eval-mode inference under
torch.inference_mode() on fixed-seed random inputs at the same batch sizes
and thread counts as bench_engine. Prints one line per configuration:

    torch threads=T batch=B img_s=<median round> ms_batch=<median round> best_img_s=<best round> calls=N

(T is printed as "2p" when OMP_WAIT_POLICY=passive is set: on a shared 2-core
machine torch's spinning OpenMP workers are up to 100x slower at batch 1 than
with passive waiting, so run.sh measures both.)

    bench_torch.py [--data DIR] [--seconds S] [--batches 1,16,256] [--threads 1,2] MODEL_DIR
        inputs as bench_engine's: the first 256 test images of DIR (MNIST-style
        IDX) normalised as config.json "input" says, else fixed-seed noise;
        each call takes the next batch from that pool of 256
    bench_torch.py --check PREFIX MODEL_DIR
        reads PREFIX.in.f32 / PREFIX.probs.f32 written by `bench_engine --dump`,
        runs the same inputs, prints "check max_abs_diff=... ok|MISMATCH"
        (tolerance 1e-4) and exits 0 (ok) or 1.

Run with /usr/bin/python3 (Debian's python3-torch); asserts nothing about speed.
"""
import ctypes
import gzip
import json
import os
import statistics
import struct
import sys
import time

import torch
import torch.nn as nn

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "F64": torch.float64, "I64": torch.int64, "I32": torch.int32}
ROUNDS = 5
POOL_IMAGES = 256


def read_safetensors(path):
    """name -> float32 tensor. Format: u64 LE header length, JSON header, raw data."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen])
    data = bytearray(blob[8 + hlen:])   # writable: torch.frombuffer warns on read-only buffers
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        count = (end - start) // torch.tensor([], dtype=dtype).element_size()
        t = torch.frombuffer(data, dtype=dtype, count=count, offset=start) if count else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"]).to(torch.float32).clone()
    return out


def build_model(config):
    """nn.Sequential mirroring engine/arch/cnn.c's layer list (same indices, same names)."""
    inp = config["input"]
    c, h, w = inp["channels"], inp["height"], inp["width"]
    spatial = True
    layers = []
    for spec in config["layers"]:
        t = spec["type"]
        if t == "conv2d":
            k, s, p = spec["kernel_size"], spec.get("stride", 1), spec.get("padding", 0)
            layers.append(nn.Conv2d(c, spec["out_channels"], k, stride=s, padding=p, bias=True))
            c = spec["out_channels"]
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif t == "batchnorm":
            eps, mom = spec.get("eps", 1e-5), spec.get("momentum", 0.1)
            layers.append(nn.BatchNorm2d(c, eps=eps, momentum=mom) if spatial else nn.BatchNorm1d(c, eps=eps, momentum=mom))
        elif t == "relu":
            layers.append(nn.ReLU())
        elif t == "gelu":
            layers.append(nn.GELU(approximate="tanh"))   # engine/core/ops.c uses the tanh approximation
        elif t == "tanh":
            layers.append(nn.Tanh())
        elif t == "sigmoid":
            layers.append(nn.Sigmoid())
        elif t in ("maxpool2d", "avgpool2d"):
            k = spec["kernel_size"]
            s = spec.get("stride", k)
            layers.append(nn.MaxPool2d(k, s) if t == "maxpool2d" else nn.AvgPool2d(k, s))
            h, w = (h - k) // s + 1, (w - k) // s + 1
        elif t == "global_avgpool":
            layers.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
            spatial = False
        elif t == "flatten":
            layers.append(nn.Flatten())
            if spatial:
                c = c * h * w
            spatial = False
        elif t == "linear":
            layers.append(nn.Linear(c, spec["out_features"]))
            c = spec["out_features"]
        else:
            raise SystemExit(f"bench_torch.py: unknown layer type {t!r}")
    return nn.Sequential(*layers)


class Net(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layers = build_model(config)

    def forward(self, x):
        return torch.softmax(self.layers(x), dim=1)   # classify_images returns probabilities


def load(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    net = Net(config)
    state = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    expected = net.state_dict()
    # BatchNorm's num_batches_tracked is not stored by inferd; keep torch's.
    for k, v in expected.items():
        if k not in state and k.endswith("num_batches_tracked"):
            state[k] = v
    net.load_state_dict(state, strict=True)
    net.eval()
    return net, config


def fill_random(n, seed):
    """Same generator as bench_engine.c (LCG)."""
    vals = []
    for _ in range(n):
        seed = (seed * 1664525 + 1013904223) & 0xFFFFFFFF
        vals.append(-0.81 + 2.83 * (((seed >> 8) & 0xFFFFFF) / 16777216.0))
    return torch.tensor(vals, dtype=torch.float32)


def load_images(data_dir, inp):
    """The first POOL_IMAGES test images of an MNIST-style directory, normalised."""
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte", "train-images-idx3-ubyte.gz"):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            break
    else:
        raise SystemExit(f"bench_torch.py: no IDX images in {data_dir}")
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        head = f.read(16)
        _, n, h, w = struct.unpack(">IIII", head)
        if inp["channels"] != 1 or (h, w) != (inp["height"], inp["width"]):
            raise SystemExit(f"bench_torch.py: {path} does not match the model's input")
        n = min(n, POOL_IMAGES)
        raw = bytearray(f.read(n * h * w))
    x = torch.frombuffer(raw, dtype=torch.uint8).to(torch.float32) / 255.0
    mean, std = inp.get("mean", [0.0]), inp.get("std", [1.0])
    mean = mean[0] if isinstance(mean, list) else mean
    std = std[0] if isinstance(std, list) else std
    return ((x - mean) / std).reshape(n, 1, h, w)


def make_batches(pool, B, shape):
    """Batches of B taken in turn from the pool (bench_engine.c's runner)."""
    n_batches = 1 if B >= POOL_IMAGES else POOL_IMAGES // B
    if pool is None:
        x = fill_random(n_batches * B * shape[0] * shape[1] * shape[2], 12345)
        x = x.reshape(n_batches * B, *shape)
    else:
        idx = torch.arange(n_batches * B) % pool.shape[0]
        x = pool[idx].contiguous()
    return [x[i * B:(i + 1) * B] for i in range(n_batches)]


def time_config(net, xs, seconds):
    nb = len(xs)
    with torch.inference_mode():
        t0 = time.perf_counter()
        n = 0
        while n < 3 or time.perf_counter() - t0 < 0.3:   # warm-up
            net(xs[n % nb])
            n += 1
        rates, calls = [], 0
        for _ in range(ROUNDS):
            k = 0
            t0 = time.perf_counter()
            while True:
                net(xs[(calls + k) % nb])
                k += 1
                t = time.perf_counter() - t0
                if t >= seconds / ROUNDS:
                    break
            rates.append(k / t)
            calls += k
    return rates, calls


def openblas():
    """Debian's torch does its non-oneDNN convolutions (thnn, used at small
    batches) and linear layers through libblas.so.3 = OpenBLAS (pthreads),
    whose thread count torch.set_num_threads does NOT set: left alone it
    runs 2 OpenBLAS threads beside torch's OpenMP ones and is ~3x slower at
    batch 1 on 2 cores. Returns the library loaded in this process, or None."""
    for name in ("libopenblas.so.0", "libopenblas.so"):
        try:
            lib = ctypes.CDLL(name)
            lib.openblas_set_num_threads.argtypes = [ctypes.c_int]
            return lib
        except (OSError, AttributeError):
            continue
    return None


def set_threads(T, ob):
    torch.set_num_threads(T)
    if ob is not None:
        ob.openblas_set_num_threads(T)


def parse_list(s):
    return [int(v) for v in s.split(",") if v]


def main(argv):
    if len(argv) == 4 and argv[1] == "--check":
        prefix, model_dir = argv[2], argv[3]
        set_threads(1, openblas())
        net, config = load(model_dir)
        inp = config["input"]
        chw = inp["channels"] * inp["height"] * inp["width"]
        with open(prefix + ".in.f32", "rb") as f:
            x = torch.frombuffer(bytearray(f.read()), dtype=torch.float32)
        with open(prefix + ".probs.f32", "rb") as f:
            ref = torch.frombuffer(bytearray(f.read()), dtype=torch.float32)
        B = x.numel() // chw
        x = x.reshape(B, inp["channels"], inp["height"], inp["width"])
        with torch.inference_mode():
            p = net(x)
        ref = ref.reshape(p.shape)
        diff = (p - ref).abs().max().item()
        same_top1 = bool((p.argmax(1) == ref.argmax(1)).all())
        ok = diff <= 1e-4
        print(f"check B={B} max_abs_diff={diff:.3g} top1_equal={same_top1} {'ok' if ok else 'MISMATCH'}")
        return 0 if ok else 1

    seconds, batches, threads, model_dir, data = 2.0, [1, 16, 256], [1, 2], None, None
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "--seconds":
            seconds = float(argv[i + 1]); i += 1
        elif a == "--batches":
            batches = parse_list(argv[i + 1]); i += 1
        elif a == "--data":
            data = argv[i + 1]; i += 1
        elif a == "--threads":
            threads = parse_list(argv[i + 1]); i += 1
        elif not a.startswith("-") and model_dir is None:
            model_dir = a
        else:
            print(__doc__, file=sys.stderr)
            return 2
        i += 1
    if model_dir is None:
        print(__doc__, file=sys.stderr)
        return 2

    torch.set_num_interop_threads(1)
    ob = openblas()
    net, config = load(model_dir)
    inp = config["input"]
    print(f"torch {torch.__version__} model {model_dir} mkldnn={torch.backends.mkldnn.is_available()} "
          f"openblas_threads_pinned={ob is not None} inputs={'dataset' if data else 'random'}", flush=True)
    shape = (inp["channels"], inp["height"], inp["width"])
    pool = load_images(data, inp) if data else None
    inputs = {B: make_batches(pool, B, shape) for B in batches}
    passive = os.environ.get("OMP_WAIT_POLICY", "").lower() == "passive"
    for T in threads:
        set_threads(T, ob)
        tname = f"{T}p" if passive and T > 1 else str(T)
        for B in batches:
            rates, calls = time_config(net, inputs[B], seconds)
            med, best = statistics.median(rates), max(rates)
            print(f"torch threads={tname} batch={B} img_s={med * B:.1f} ms_batch={1000.0 / med:.4f} "
                  f"best_img_s={best * B:.1f} calls={calls}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
