#!/usr/bin/python3
"""convert_fast_neural_style.py — a pytorch/examples fast_neural_style model
(.pth: candy, mosaic, rain_princess, udnie, or one you trained with their
neural_style.py) -> an inferd model directory:

    <out>/model.safetensors   the state_dict under its own names (F32)
    <out>/config.json         {"task": "image-stylization", "arch": "transformer_net", "width": w}

Usage (Debian's python3-torch; nothing is downloaded):
    /usr/bin/python3 scripts/convert_fast_neural_style.py saved_models/candy.pth models/candy

The in<i>.running_mean / running_var entries that InstanceNorm2d kept in the
PyTorch versions those files were saved with are dropped, as pytorch/examples
does before load_state_dict. The width (channels 32/64/128 times w) is read
from conv1's weight, so slimmer TransformerNets convert the same way.
"""
import json
import os
import re
import struct
import sys

RUNNING = re.compile(r"in\d+\.running_(mean|var)$|num_batches_tracked$")


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, float32 contiguous torch tensor); written
    with a pure-python header (no safetensors package on Debian)."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors:
        data = t.detach().to("cpu").float().contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def convert_state_dict(sd, out_dir):
    """Writes the model directory for state dict `sd`; returns the width."""
    sd = {k: v for k, v in sd.items() if not RUNNING.search(k)}
    if "conv1.conv2d.weight" not in sd:
        raise SystemExit("not a fast_neural_style TransformerNet state_dict: no conv1.conv2d.weight "
                         f"(keys: {', '.join(sorted(sd)[:6])} ...)")
    c1 = sd["conv1.conv2d.weight"].shape[0]
    width = c1 / 32
    c2, c3 = sd["conv2.conv2d.weight"].shape[0], sd["conv3.conv2d.weight"].shape[0]
    if (c2, c3) != (round(64 * width), round(128 * width)):
        raise SystemExit(f"channels {c1}/{c2}/{c3} are not 32/64/128 times one width")
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), sorted(sd.items()),
                      {"format": "pt", "arch": "transformer_net"})
    cfg = {"task": "image-stylization", "arch": "transformer_net"}
    if c1 != 32:
        cfg["width"] = width
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    return width


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    import torch
    sd = torch.load(argv[1], map_location="cpu")
    if not isinstance(sd, dict):
        raise SystemExit(f"{argv[1]}: expected a state_dict (a dict of tensors), got {type(sd).__name__}")
    width = convert_state_dict(sd, argv[2])
    print(f"{argv[2]}: TransformerNet width {width:g}, "
          f"{sum(v.numel() for k, v in sd.items() if not RUNNING.search(k))} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
