#!/usr/bin/python3
"""make_transformer_net_ref.py — writes tests/ref/transformer_net_tiny/, the
PyTorch reference that tests/unit/test_transformer_net.c and
tests/integration/test_stylizations.sh compare engine/arch/transformer_net.c
against.

Run with the system python that has torch (and PIL, python3-pil):
    /usr/bin/python3 tests/ref/make_transformer_net_ref.py

TransformerNet below is written from the published architecture
(pytorch/examples fast_neural_style/neural_style/transformer_net.py: Johnson
et al. 2016 with instance norm), with a width multiplier (0.25 here: channels
8/16/32, to keep the fixture small). Its parameters are random: PyTorch's
default conv init, instance-norm scales in 0.5..1.5 and shifts in -0.5..0.5,
and the last convolution scaled so the output spans roughly 0..255 (a 1/255
tolerance then means something). The state dict, with InstanceNorm running
statistics added the way old checkpoints carry them, is saved as a .pth and
converted by scripts/convert_fast_neural_style.py, the path users take.

Writes, in transformer_net_tiny/:
    config.json, model.safetensors   the converted model directory
    ref.txt      one array per line, "<name> <count> <v0> ...":
                 dims [B, H, W]; x [B,3,H,W] input pixels 0..255 (integers);
                 y [B,3,H,W] PyTorch's output cropped to H x W (not clamped);
                 full_dims [Hn, Wn] the network's own output size;
                 big_dims [H2, W2], big_x [1,3,H2,W2], big_y: one 37x61 image
    input.png    image 0 as RGBA, alpha a gradient (the integration test)
    expected.png round(clamp(y[0], 0, 255)) with image 0's alpha
    input.jpg    image 1 as JPEG (quality 95)
    expected_jpg.png  the output for input.jpg as PIL decodes it (RGB)
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "transformer_net_tiny")
CONVERT = os.path.join(HERE, "..", "..", "scripts", "convert_fast_neural_style.py")
WIDTH = 0.25
B, H, W = 2, 18, 23   # not multiples of 4: the network's output is 20 x 24, cropped
BIG_H, BIG_W = 37, 61  # over one im2col tile of the 9x9 convolutions (the engine's tiles split rows)


class ConvLayer(torch.nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.reflection_pad = torch.nn.ReflectionPad2d(k // 2)
        self.conv2d = torch.nn.Conv2d(cin, cout, k, stride)

    def forward(self, x):
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = ConvLayer(c, c, 3, 1)
        self.in1 = torch.nn.InstanceNorm2d(c, affine=True)
        self.conv2 = ConvLayer(c, c, 3, 1)
        self.in2 = torch.nn.InstanceNorm2d(c, affine=True)
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        out = self.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(out)) + x


class UpsampleConvLayer(torch.nn.Module):
    def __init__(self, cin, cout, k, stride, upsample):
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = torch.nn.ReflectionPad2d(k // 2)
        self.conv2d = torch.nn.Conv2d(cin, cout, k, stride)

    def forward(self, x):
        x = torch.nn.functional.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class TransformerNet(torch.nn.Module):
    def __init__(self, width=1.0):
        super().__init__()
        c1, c2, c3 = round(32 * width), round(64 * width), round(128 * width)
        self.conv1 = ConvLayer(3, c1, 9, 1)
        self.in1 = torch.nn.InstanceNorm2d(c1, affine=True)
        self.conv2 = ConvLayer(c1, c2, 3, 2)
        self.in2 = torch.nn.InstanceNorm2d(c2, affine=True)
        self.conv3 = ConvLayer(c2, c3, 3, 2)
        self.in3 = torch.nn.InstanceNorm2d(c3, affine=True)
        self.res1, self.res2, self.res3, self.res4, self.res5 = (ResidualBlock(c3) for _ in range(5))
        self.deconv1 = UpsampleConvLayer(c3, c2, 3, 1, 2)
        self.in4 = torch.nn.InstanceNorm2d(c2, affine=True)
        self.deconv2 = UpsampleConvLayer(c2, c1, 3, 1, 2)
        self.in5 = torch.nn.InstanceNorm2d(c1, affine=True)
        self.deconv3 = ConvLayer(c1, 3, 9, 1)
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


def randomise(net, gen):
    """Non-trivial instance-norm affines; an output spanning about 0..255."""
    with torch.no_grad():
        for name, m in net.named_modules():
            if isinstance(m, torch.nn.InstanceNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) - 0.5)
        net.deconv3.conv2d.weight.mul_(150.0)
        net.deconv3.conv2d.bias.fill_(128.0)


def test_image(seed, h, w):
    """Smooth shapes plus noise, uint8 [h, w, 3]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([128 + 100 * np.sin(xx / (3 + c) + yy / (4 + 2 * c) + seed) for c in range(3)], axis=-1)
    img += rng.normal(0, 20, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def run(net, pixels):
    """pixels uint8 [N, h, w, 3] -> network output float32 [N, 3, Hn, Wn]."""
    x = torch.from_numpy(pixels.astype(np.float32)).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        return net(x)


def arr(f, name, a):
    a = np.asarray(a, dtype=np.float64).ravel()
    f.write(f"{name} {a.size} " + " ".join(f"{v:.9g}" for v in a) + "\n")


def to_png_pixels(y):
    """[3, h, w] float -> uint8 [h, w, 3]: clamp to 0..255, round."""
    return np.clip(np.round(y.numpy()), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def main():
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(99)
    net = TransformerNet(WIDTH).eval()
    randomise(net, gen)
    sd = net.state_dict()
    for k in list(sd):   # what old InstanceNorm2d checkpoints carry; the converter drops it
        if k.startswith("in") and k.endswith(".weight"):
            p = k[: -len(".weight")]
            sd[p + ".running_mean"] = torch.zeros_like(sd[k])
            sd[p + ".running_var"] = torch.ones_like(sd[k])
    with tempfile.TemporaryDirectory() as tmp:
        pth = os.path.join(tmp, "tiny.pth")
        torch.save(sd, pth)
        subprocess.run([sys.executable, CONVERT, pth, OUT], check=True)

    pixels = np.stack([test_image(s, H, W) for s in range(B)])
    y = run(net, pixels)
    hn, wn = y.shape[2], y.shape[3]
    assert (hn, wn) == (20, 24), (hn, wn)
    y = y[:, :, :H, :W]
    lo, hi = float(y.min()), float(y.max())
    print(f"output range {lo:.1f}..{hi:.1f}")
    assert lo < 40 and hi > 215, "output should span most of 0..255"
    with open(os.path.join(OUT, "ref.txt"), "w") as f:
        arr(f, "dims", [B, H, W])
        arr(f, "x", pixels.transpose(0, 3, 1, 2))
        arr(f, "y", y.numpy())
        arr(f, "full_dims", [hn, wn])
        big = test_image(7, BIG_H, BIG_W)[None]
        arr(f, "big_dims", [BIG_H, BIG_W])
        arr(f, "big_x", big.transpose(0, 3, 1, 2))
        arr(f, "big_y", run(net, big)[:, :, :BIG_H, :BIG_W].numpy())

    # the integration test's images: image 0 with an alpha gradient as PNG
    alpha = np.tile(np.linspace(0, 255, W).round().astype(np.uint8), (H, 1))[..., None]
    Image.fromarray(np.concatenate([pixels[0], alpha], axis=-1), "RGBA").save(os.path.join(OUT, "input.png"))
    Image.fromarray(np.concatenate([to_png_pixels(y[0]), alpha], axis=-1), "RGBA").save(
        os.path.join(OUT, "expected.png"))
    # image 1 as JPEG, and the output for its pixels as PIL (libjpeg-turbo) decodes them
    jpg = os.path.join(OUT, "input.jpg")
    Image.fromarray(pixels[1], "RGB").save(jpg, quality=95)
    dec = np.asarray(Image.open(jpg).convert("RGB"))[None]
    yj = run(net, dec)[:, :, :H, :W]
    Image.fromarray(to_png_pixels(yj[0]), "RGB").save(os.path.join(OUT, "expected_jpg.png"))


if __name__ == "__main__":
    main()
