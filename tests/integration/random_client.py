#!/usr/bin/env python3
"""random_client.py — randomized traffic against a live inferd (issue 6).

Several client threads send random requests to every endpoint of API.md and of
server/http.c's route table until a time budget runs out:

  completions   every field of /v1/completions with values of the right and the
                wrong type, in and out of range; string / token-array / empty /
                batched prompts; streamed or not; clients that vanish while
                queued or mid-stream
  images        PNGs written here (zlib + struct): 1xN and Nx1 shapes, gray
                1..16 bit, RGB(A) 8/16, gray+alpha, palette (with tRNS, missing
                PLTE), Adam7, every filter type, truncated, lying IHDR sizes,
                bad CRCs, bad depths, junk chunks; JPEGs from mkimg, truncated,
                with flipped bytes and lying SOF sizes; as raw bodies and
                base64 in JSON (one or a batch)
  models        list / get / load / unload with random ids and paths ('..',
                absolute, broken model directories), reloads under an existing id
  the rest      probes, /metrics, the 501 endpoints, OPTIONS/HEAD, junk methods,
                paths and headers, wrong or huge Content-Length, chunked bodies,
                malformed HTTP, keep-alive sequences

Every answer must be 2xx or 4xx (501 on the unbuilt endpoints; 503 with
Retry-After and 504 only as load answers), every error in the API.md shape
with the type its status calls for, every 2xx in its endpoint's shape, every
stream framed as SSE and ended by `data: [DONE]`. The daemon must stay up and
its peak RSS (VmHWM after the warm-up) must stay within --rss-margin-mb of the
RSS measured after the warm-up.

Each request is generated from its own RNG, seeded by (seed, client, index),
so a failure prints the request and the line that replays it:
  random_client.py --base URL --seed S --replay CLIENT:INDEX
Exit status: 0 when every check held, 1 otherwise. The last line is a JSON
summary (requests, failures, RSS figures) for the calling script.
"""
import argparse
import base64
import http.client
import json
import os
import random
import socket
import struct
import sys
import threading
import time
import zlib

ERROR_TYPES = {
    400: "invalid_request_error", 404: "invalid_request_error", 405: "invalid_request_error",
    413: "invalid_request_error", 415: "invalid_request_error", 422: "invalid_request_error",
    401: "authentication_error", 429: "rate_limit_error", 504: "timeout_error", 500: "server_error",
}
TYPES = {"invalid_request_error", "authentication_error", "rate_limit_error", "timeout_error", "server_error"}
UNBUILT = ("/v1/images/generations",)   # translations, stylizations, files, jobs are built: a 501 there is a finding
IMAGE_MODEL, TEXT_MODEL = "fashion-cnn", "fortune-gpt"
N_LABELS, VOCAB, CONTEXT = 10, 113, 256
RANDOM_IDS = ["rnd-a", "rnd-b", "rnd-c", "rnd.d_e"]


# ----------------------------------------------------------------------------- PNG / JPEG

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


PNG_SIG = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))

_png_cache = {}
_png_cache_lock = threading.Lock()


def png_scanlines(rng, w, h, color, depth, filt, flat):
    """Filtered scanline bytes of one (sub)image. flat: every row the same
    (cheap for huge images)."""
    rowbytes = (w * CHANNELS[color] * depth + 7) // 8
    if flat or w * h > 300000:
        ftype = 0 if filt == "none" else (rng.randrange(5) if filt == "random" else rng.randrange(5, 256))
        row = bytes([ftype]) + bytes([rng.randrange(256)]) * rowbytes
        return row * h
    out = bytearray()
    for _ in range(h):
        ftype = 0 if filt == "none" else (rng.randrange(5) if filt == "random" else rng.randrange(5, 256))
        out.append(ftype)
        out += rng.randbytes(rowbytes)
    return bytes(out)


def make_png(rng, w, h, color=0, depth=8, interlace=0, filt="none", palette=None, trns=False,
             level=6, flat=False, extra_chunks=()):
    key = None
    if w * h > 300000:   # big pictures are flat: cache them (compressing 80 MB takes a while)
        key = (w, h, color, depth, interlace, filt, palette, trns)
        with _png_cache_lock:
            if key in _png_cache:
                return _png_cache[key]
    raw = bytearray()
    if interlace:
        for xs, ys, dx, dy in ADAM7:
            sw, sh = (w - xs + dx - 1) // dx, (h - ys + dy - 1) // dy
            if sw > 0 and sh > 0:
                raw += png_scanlines(rng, sw, sh, color, depth, filt, flat)
    else:
        raw = png_scanlines(rng, w, h, color, depth, filt, flat)
    out = bytearray(PNG_SIG)
    out += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace))
    for kind, data in extra_chunks:
        out += png_chunk(kind, data)
    if color == 3 or palette:
        n = palette if palette is not None else 1 << min(depth, 8)
        if n:
            out += png_chunk(b"PLTE", rng.randbytes(3 * n))
        if trns and n:
            out += png_chunk(b"tRNS", rng.randbytes(rng.randint(1, n)))
    elif trns:
        out += png_chunk(b"tRNS", rng.randbytes(2 if color == 0 else 6))
    z = zlib.compress(bytes(raw), level)
    if len(z) > 70000 and rng.random() < 0.5:   # several IDAT chunks
        for i in range(0, len(z), 65536):
            out += png_chunk(b"IDAT", z[i:i + 65536])
    else:
        out += png_chunk(b"IDAT", z)
    out += png_chunk(b"IEND", b"")
    data = bytes(out)
    if key:
        with _png_cache_lock:
            _png_cache[key] = data
    return data


def set_ihdr(png, w=None, h=None, depth=None, color=None, interlace=None, fix_crc=True):
    """A copy of png with IHDR fields replaced (a lying header)."""
    b = bytearray(png)
    f = list(struct.unpack(">IIBBBBB", b[16:29]))
    for i, v in ((0, w), (1, h), (2, depth), (3, color), (6, interlace)):
        if v is not None:
            f[i] = v
    b[16:29] = struct.pack(">IIBBBBB", *f)
    if fix_crc:
        b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])) & 0xFFFFFFFF)
    return bytes(b)


def mutate(rng, data, what):
    b = bytearray(data)
    if what == "truncate":
        return bytes(b[:rng.randrange(0, max(1, len(b)))])
    if what == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    if what == "garbage_tail":
        return bytes(b) + rng.randbytes(rng.randint(1, 500))
    if what == "zero_run":
        i = rng.randrange(len(b))
        n = rng.randint(1, 64)
        b[i:i + n] = bytes(min(n, len(b) - i))
        return bytes(b)
    return bytes(b)


def random_png(rng, scale, avoid):
    """Returns (bytes, description)."""
    color = rng.choice((0, 0, 2, 3, 3, 4, 6))
    depth = rng.choice(DEPTHS[color])
    shape = rng.random()
    if shape < 0.45:
        w, h = rng.randint(1, 64), rng.randint(1, 64)
    elif shape < 0.65:
        w, h = rng.randint(1, 600 // scale), rng.randint(1, 600 // scale)
    elif shape < 0.85:   # 1xN / Nx1
        n = rng.choice((2, 100, 5000, 100000, 1000000, 4000000))
        if "resize" in avoid:
            n = min(n, 5000)
        w, h = (1, n) if rng.random() < 0.5 else (n, 1)
    elif shape < 0.95:
        w, h = rng.randint(1, 5), rng.randint(1, 5)
    else:   # wide but not 1-pixel: 3 x 200000 etc.
        n = rng.choice((3, 7, 28, 29))
        m = rng.choice((20000, 200000)) if "resize" not in avoid else 2000
        w, h = (n, m) if rng.random() < 0.5 else (m, n)
    if w * h * depth > 200_000_000:
        depth = min(depth, 8)
    interlace = 1 if rng.random() < 0.15 and w * h < 300000 else 0
    filt = rng.choice(("none", "none", "random")) if rng.random() < 0.97 else "bad"
    palette = None
    if color == 3 and rng.random() < 0.1:
        palette = rng.choice((0, 1, 3, 256))   # 0: PLTE missing
    trns = rng.random() < 0.2
    extra = []
    if rng.random() < 0.1:
        extra.append((rng.choice((b"tEXt", b"zTXt", b"iCCP", b"gAMA", b"pHYs", b"sBIT", b"aBcD")), rng.randbytes(rng.randint(0, 40))))
    png = make_png(rng, w, h, color, depth, interlace, filt, palette, trns, flat=rng.random() < 0.3, extra_chunks=extra)
    desc = f"PNG {w}x{h} color={color} depth={depth} interlace={interlace} filter={filt} palette={palette} trns={trns} extra={[k for k, _ in extra]}"
    r = rng.random()
    if r < 0.10:
        png = mutate(rng, png, "truncate"); desc += " truncated"
    elif r < 0.16:
        png = mutate(rng, png, "flip"); desc += " flipped-bits"
    elif r < 0.19:
        png = mutate(rng, png, "garbage_tail"); desc += " garbage-after-IEND"
    elif r < 0.32:   # lying header
        lw, lh = rng.choice(((w * 2, h), (w, h + 1), (max(1, w // 2), h), (1, 4000000), (4000000, 1),
                             (100000, 100000), (0, h), (w, 0), (2**31 - 1, 1), (2**32 - 1, 2**32 - 1),
                             (6325, 6325), (40000000, 1)))
        if "resize" in avoid:
            lw, lh = min(lw, 5000), min(lh, 5000)
        png = set_ihdr(png, w=lw, h=lh, fix_crc=rng.random() < 0.9); desc += f" IHDR-says {lw}x{lh}"
    elif r < 0.36:
        c = rng.choice((1, 5, 7, 2, 6)); d = rng.choice((1, 3, 4, 8, 16, 32, 0))
        png = set_ihdr(png, depth=d, color=c); desc += f" IHDR-says color={c} depth={d}"
    elif r < 0.38:
        png = set_ihdr(png, interlace=rng.choice((1, 2, 255))); desc += " IHDR-says interlace"
    elif r < 0.40:
        png = png[:8] + png_chunk(b"IHDR", rng.randbytes(13)) + png[33:]; desc += " random-IHDR"
    elif r < 0.42:
        png = png[:33] + struct.pack(">I", 0x7FFFFFF0) + b"IDAT" + png[41:]; desc += " huge-chunk-length"
    return png, desc


def random_jpeg(rng, jpegs):
    name = rng.choice(sorted(jpegs))
    data = jpegs[name]
    desc = f"JPEG {name}"
    r = rng.random()
    if r < 0.15:
        data = mutate(rng, data, "truncate"); desc += " truncated"
    elif r < 0.30:
        data = mutate(rng, data, "flip"); desc += " flipped-bits"
    elif r < 0.45:   # lying SOF: patch the frame's height/width
        b = bytearray(data)
        for i in range(2, len(b) - 9):
            if b[i] == 0xFF and b[i + 1] in (0xC0, 0xC1, 0xC2):
                hh, ww = rng.choice(((1, 65535), (65535, 1), (0, 28), (28, 0), (65535, 65535), (1, 1), (60000, 700), (7000, 5000)))
                b[i + 5:i + 9] = struct.pack(">HH", hh, ww)
                desc += f" SOF-says {ww}x{hh}"
                break
        data = bytes(b)
    elif r < 0.5:
        data = data[:-2]; desc += " no-EOI"
    elif r < 0.55:
        data = data[:2] + data[2:200] * 3 + data[200:]; desc += " repeated-segments"
    return data, desc


def random_image(rng, ctx):
    r = rng.random()
    if r < 0.7:
        return random_png(rng, ctx.scale, ctx.avoid)
    if r < 0.9 and ctx.jpegs:
        return random_jpeg(rng, ctx.jpegs)
    if r < 0.95:
        return rng.randbytes(rng.randint(0, 300)), "random bytes"
    if r < 0.97:
        return PNG_SIG, "PNG signature only"
    return b"\xff\xd8\xff" + rng.randbytes(rng.randint(0, 100)), "JPEG SOI + junk"


# ----------------------------------------------------------------------------- values

def rand_text(rng, n):
    pools = ("The quick brown fox. ", "Q: what? A: ", "été ünïcödé ", "日本語のテキスト", "😀🎉 ", "\n\t\"\\", "\u0000\u0001", "a")
    s = ""
    while len(s) < n:
        s += rng.choice(pools)
    return s[:n]


def wrong_value(rng):
    return rng.choice(([], {}, "x", "", "1", True, False, None, -1, 0, 1.5, 1e308, -1e308, 2**63, -(2**63), 2**64,
                       [1, 2], {"a": 1}, "🙂" * 3, 1e-320))


def pick(rng, right, wrong_p=0.15):
    """A right value (callable) most of the time, else a wrong one."""
    return wrong_value(rng) if rng.random() < wrong_p else right()


def _f(*choices):
    """A generator picking one of choices (callables are called with rng)."""
    return lambda rng: (lambda c: c(rng) if callable(c) else c)(rng.choice(choices))


# /v1/completions fields: (right values, wrong values). Right values are in
# range for fortune-gpt (context 256, vocabulary 113); wrong ones have the
# wrong type or are out of range.
COMPLETION_FIELDS = {
    "model": (_f(TEXT_MODEL, TEXT_MODEL, TEXT_MODEL, TEXT_MODEL, TEXT_MODEL, TEXT_MODEL, TEXT_MODEL, TEXT_MODEL, "rnd-a", "rnd-b"),
              _f(IMAGE_MODEL, "nope", "", "a/b", "x" * 65, "..", 5, None, [TEXT_MODEL], {})),
    "prompt": (_f(lambda r: rand_text(r, r.choice((0, 1, 2, 5, 20, 60, 150))),
                  lambda r: [r.randrange(VOCAB) for _ in range(r.choice((1, 2, 10, 100, 150)))], "", " ", "\n"),
               _f(lambda r: [rand_text(r, 5), rand_text(r, 7)], [[1, 2], [3]], ["a"], [[]], [""], [],
                  lambda r: rand_text(r, r.choice((256, 257, 300, 1000, 5000))),
                  lambda r: [r.randrange(VOCAB) for _ in range(r.choice((256, 257, 1000)))],
                  lambda r: [1, 2, r.choice((-1, VOCAB, 10**12, 2**64, 1.5, "a", None, True, [1]))], wrong_value)),
    "max_tokens": (_f(1, 2, 5, 16, 32, 64, lambda r: r.randint(1, 40)),
                   _f(0, -1, 4096, 4097, 255, 256, 10**9, 1.5, "5", True, None, wrong_value)),
    "temperature": (_f(0, 0.0, 0.5, 1.0, 1.7, 2, lambda r: r.uniform(0, 2), 1e-30, 1e-40, 1e-6, 0.01),
                    _f(-0.1, 2.0001, 3, -1e-9, "1", True, [], 1e308)),
    "top_p": (_f(1, 1.0, 0.9, 0.5, 0.1, 0.01, 1e-9, 1e-300, lambda r: r.uniform(1e-6, 1)),
              _f(0, -0.5, 1.5, "0.5", True, [])),
    "top_k": (_f(0, 1, 2, 3, 5, 40, 112, 113, 114, 1000, 1000000),
              _f(-1, 1000001, 2**40, 1.5, "3", True)),
    "seed": (_f(0, 1, 42, -1, -5, 2**53 - 1, -(2**53) + 1, lambda r: r.randrange(2**32)),
             _f(2**53, 2**63 - 1, 2**64, -(2**63), 1.5, "1")),
    "stop": (_f(lambda r: rand_text(r, r.randint(1, 3)), lambda r: [rand_text(r, r.randint(1, 4)) for _ in range(r.randint(0, 4))],
                "\n", ["e", " ", "t"], "x" * 256, "🎉", ". "),
             _f(lambda r: [rand_text(r, 2) for _ in range(5)], "", [""], "x" * 257, [1, 2], {}, 5, [None])),
    "n": (_f(1, 1, 2, 3, 4, 8), _f(0, 9, 17, -1, "2", 1.0)),
    "stream": (_f(True, False), _f("true", 1, [], {})),
    "stream_options": (_f({"include_usage": True}, {"include_usage": False}, {}, None, {"other": 1}),
                       _f({"include_usage": "yes"}, "x", [], 1)),
    "echo": (_f(True, False), _f("no", 0, [])),
    "logprobs": (_f(0, 1, 2, 3, 4, 5, None), _f(6, -1, 100, True, "1", 1.5)),
}


def completion_body(rng, ctx):
    """A random /v1/completions JSON object: about half valid, the rest with
    one to three fields wrong."""
    b = {"model": COMPLETION_FIELDS["model"][0](rng), "prompt": COMPLETION_FIELDS["prompt"][0](rng)}
    for k, (right, _) in COMPLETION_FIELDS.items():
        if k not in b and rng.random() < 0.4:
            b[k] = right(rng)
    if rng.random() < 0.25:
        b["stream"] = True
    if rng.random() < 0.45:
        for k in rng.sample(sorted(COMPLETION_FIELDS), rng.randint(1, 3)):
            if rng.random() < 0.1:
                b.pop(k, None)
            else:
                b[k] = COMPLETION_FIELDS[k][1](rng)
    for _ in range(rng.choice((0, 0, 0, 1, 3))):   # fields OpenAI has and inferd ignores
        b[rng.choice(("user", "suffix", "best_of", "presence_penalty", "frequency_penalty", "logit_bias", "x" * 50, "", "é"))] = wrong_value(rng)
    if "sample" in ctx.avoid:   # the known engine/text/sample.c crashes (issue 6): no top_p cut after top_k, no tiny temperature
        if "top_k" in b and "top_p" in b:
            del b["top_k"]
        t = b.get("temperature")
        if isinstance(t, float) and 0 < t < 1e-3:
            b["temperature"] = 0.5
    return b


def image_json_body(rng, ctx):
    b = {}
    r = rng.random()
    b["model"] = IMAGE_MODEL if r < 0.85 else rng.choice(RANDOM_IDS + [TEXT_MODEL, "nope", "", "../x", 7, None])
    if rng.random() < 0.03:
        del b["model"]
    descs = []
    r = rng.random()
    if r < 0.6:
        img, d = random_image(rng, ctx)
        b["image"] = base64.b64encode(img).decode()
        descs.append(d)
    elif r < 0.8:
        n = rng.choice((1, 2, 3, 8, 64, 65))
        imgs = []
        for i in range(n):
            if i < 4:
                img, d = random_image(rng, ctx)
                descs.append(d)
            else:   # the rest small, so the body stays below max_body_bytes
                img = make_png(rng, 28, 28, 0, 8)
            imgs.append(base64.b64encode(img).decode())
        b["image"] = imgs
        if n > 4:
            descs.append(f"... {n} images")
    elif r < 0.88:
        b["image"] = rng.choice(("", "!!!!", "QUJD", "a", "====", "iVBORw0KGgo=", "/9j/", "Zm9v\nYmFy", " " * 10,
                                 "QUJD" * 10000 + "!"))
        descs.append("bad base64")
    elif r < 0.95:
        b["image"] = wrong_value(rng)
        descs.append("wrong type")
    else:
        b["input"] = rand_text(rng, 10)
    if rng.random() < 0.3:
        b["top_k"] = pick(rng, lambda: rng.randint(1, N_LABELS), 0.2) if rng.random() < 0.8 else rng.choice((0, 11, -1, 1000))
    return b, "; ".join(descs)


# ----------------------------------------------------------------------------- requests

class Req:
    def __init__(self, kind, method, path, headers=None, body=b"", mode="http", desc=""):
        self.kind, self.method, self.path = kind, method, path
        self.headers = dict(headers or {})
        self.body = body
        self.mode = mode      # http | stream | vanish | raw | keepalive
        self.desc = desc      # what the body is, for a failure report
        self.raw = None       # mode raw: the bytes to send
        self.read_lines = 0   # mode stream: lines to read before hanging up (0 = all)
        self.sequence = None  # mode keepalive: list of Req

    def show(self):
        body = self.body if isinstance(self.body, bytes) else str(self.body).encode()
        preview = body[:400]
        more = f" ... ({len(body)} bytes)" if len(body) > 400 else ""
        s = f"{self.kind}: {self.method} {self.path[:200]} mode={self.mode} headers={self.headers}"
        if self.desc:
            s += f"\n         body is: {self.desc}"
        if self.raw is not None:
            s += f"\n         raw bytes: {self.raw[:300]!r}"
        if preview:
            s += f"\n         body: {preview!r}{more}"
        if self.sequence:
            s += "\n         sequence:\n" + "\n".join("           " + q.show() for q in self.sequence)
        return s


def json_bytes(rng, obj):
    s = json.dumps(obj, ensure_ascii=rng.random() < 0.5)
    return s.encode("utf-8", "surrogatepass")


def gen_completion(rng, ctx):
    b = completion_body(rng, ctx)
    body = json_bytes(rng, b)
    hdrs = {"Content-Type": rng.choice(("application/json",) * 30 + ("text/plain", "application/json; charset=utf-8",
                                                                      "application/x-www-form-urlencoded", "", b"application/\xff\xfe"))}
    if rng.random() < 0.03:
        body = body[:rng.randrange(len(body))]   # broken JSON
    stream = b.get("stream") is True
    q = Req("completions", "POST", "/v1/completions", hdrs, body, "stream" if stream else "http")
    r = rng.random()
    if stream and r < 0.3:
        q.read_lines = rng.randint(1, 12)   # hang up mid-stream
    elif r < 0.06:
        q.mode = "vanish"   # hang up before the answer (queued or running)
    return q


def gen_classify_json(rng, ctx):
    b, desc = image_json_body(rng, ctx)
    q = Req("classify-json", "POST", "/v1/classifications", {"Content-Type": "application/json"}, json_bytes(rng, b), desc=desc)
    if rng.random() < 0.04:
        q.mode = "vanish"
    return q


def gen_classify_raw(rng, ctx):
    img, desc = random_image(rng, ctx)
    model = IMAGE_MODEL if rng.random() < 0.85 else rng.choice(RANDOM_IDS + [TEXT_MODEL, "", "%2e%2e", "a%2Fb", "x" * 70, "%FF%FEx", "%C3%28"])
    qs = []
    if rng.random() < 0.97:
        qs.append("model=" + model)
    if rng.random() < 0.3:
        qs.append("top_k=" + rng.choice(("1", "3", "10", "0", "11", "-1", "", "abc", "3x", "99999999999999999999", "%00")))
    ct = rng.choice(("image/png", "image/jpeg", "image/png", "application/octet-stream", "image/gif", "IMAGE/PNG", "image/"))
    if rng.random() < 0.05:
        ct = rng.choice(("application/json", "text/plain", "multipart/form-data; boundary=x"))
    q = Req("classify-raw", "POST", "/v1/classifications?" + "&".join(qs), {"Content-Type": ct}, img, desc=desc)
    if rng.random() < 0.04:
        q.mode = "vanish"
    return q


def gen_models(rng, ctx):
    r = rng.random()
    if r < 0.25:
        return Req("models", "GET", "/v1/models")
    if r < 0.45:
        mid = rng.choice(RANDOM_IDS + [IMAGE_MODEL, TEXT_MODEL, "nope", "..", ".", "a%2Fb", "a/b", "%00", "x" * 65,
                                       "%C3%A9", "fashion-cnn/", "fashion-cnn?x=1", "", "%ff%fe", "a%80b"])
        return Req("models", "GET", "/v1/models/" + mid)
    if r < 0.8:
        b = {}
        if rng.random() < 0.95:
            b["id"] = rng.choice(RANDOM_IDS * 3 + ["", "a/b", "..", "x" * 65, "é", 5, None, [], IMAGE_MODEL, TEXT_MODEL])
        if rng.random() < 0.9:
            if b.get("id") in (IMAGE_MODEL, TEXT_MODEL):
                b["path"] = b["id"]   # reload in place: never swap the base models for something else
            else:
                b["path"] = rng.choice([IMAGE_MODEL, TEXT_MODEL] * 3 + [
                    "..", "../models/fashion-cnn", "/etc", "/", "./fashion-cnn", "fashion-cnn/", "fashion-cnn/..",
                    "fashion-cnn/../fortune-gpt", "", ".", "nonexistent", "broken-json", "truncated-weights",
                    "empty-dir", "gpt-no-vocab", "gpt-bad-config", "x" * 1100, "a\nb", "%2e%2e", 5, None, {}])
        body = json_bytes(rng, b)
        if rng.random() < 0.05:
            body = rng.choice((b"", b"{", b"[]", b"null", b'{"id":"rnd-a","id":"rnd-b"}'))
        return Req("models", "POST", "/v1/models", {"Content-Type": "application/json"}, body)
    mid = rng.choice(RANDOM_IDS * 4 + ["nope", "..", "a%2Fb", "", "x" * 65])
    return Req("models", "DELETE", "/v1/models/" + mid)


TRANSLATION_MODEL = "en-de"


def gen_translation(rng, ctx):
    """A /v1/translations body: mostly right, with wrong fields (types, ranges, models, inputs) mixed in."""
    b = {"model": TRANSLATION_MODEL if rng.random() < 0.85 else rng.choice((IMAGE_MODEL, TEXT_MODEL, "nope", "", "../x", 7, None))}
    r = rng.random()
    if r < 0.5:
        b["input"] = rand_text(rng, rng.choice((1, 5, 12, 40)))
    elif r < 0.8:
        b["input"] = [rand_text(rng, rng.randint(1, 20)) for _ in range(rng.choice((1, 2, 5, 16)))]
    elif r < 0.9:
        b["input"] = rand_text(rng, rng.choice((300, 3000)))          # over the model's length limit
    else:
        b["input"] = wrong_value(rng)
    if rng.random() < 0.4:
        b["beam_size"] = pick(rng, lambda: rng.randint(1, 8)) if rng.random() < 0.8 else wrong_value(rng)
    if rng.random() < 0.3:
        b["max_tokens"] = pick(rng, lambda: rng.randint(1, 40)) if rng.random() < 0.8 else wrong_value(rng)
    if rng.random() < 0.2:
        b["length_penalty"] = pick(rng, lambda: rng.uniform(0, 2)) if rng.random() < 0.8 else wrong_value(rng)
    body = json_bytes(rng, b)
    if rng.random() < 0.03:
        body = body[:rng.randrange(len(body))]   # broken JSON
    q = Req("translations", "POST", "/v1/translations", {"Content-Type": "application/json"}, body)
    if rng.random() < 0.04:
        q.mode = "vanish"
    return q


def gen_probe(rng, ctx):
    path = rng.choice(("/healthz", "/readyz", "/metrics", "/healthz?verbose=1", "/metrics?x"))
    return Req("probes", rng.choice(("GET",) * 5 + ("HEAD",)), path)


def gen_unbuilt(rng, ctx):
    r = rng.random()
    method, path = rng.choice((("POST", "/v1/stylizations"), ("POST", "/v1/images/generations"),
                               ("GET", "/v1/files"), ("POST", "/v1/files"), ("GET", "/v1/files/file-123"),
                               ("DELETE", "/v1/files/file-123"), ("GET", "/v1/jobs"), ("POST", "/v1/jobs"),
                               ("GET", "/v1/jobs/job-1"), ("POST", "/v1/jobs/job-1/cancel"), ("GET", "/v1/jobs/job-1/events"),
                               ("GET", "/v1/jobs/job-1/loss.png"), ("POST", "/v1/files?purpose=train&filename=a.txt")))
    body = b""
    hdrs = {}
    if method == "POST":
        if r < 0.5:
            body = json_bytes(rng, {"model": rng.choice(("en-de", "mosaic", IMAGE_MODEL)), "input": rand_text(rng, 20), "n": 4})
            hdrs["Content-Type"] = "application/json"
        else:
            img, _ = random_image(rng, ctx)
            body = img
            hdrs["Content-Type"] = rng.choice(("image/png", "application/octet-stream", "multipart/form-data; boundary=zz"))
    return Req("unbuilt", method, path, hdrs, body)


def gen_junk(rng, ctx):
    r = rng.random()
    if r < 0.35:   # well-formed HTTP, odd method/path/headers: answered by the daemon's own code
        method = rng.choice(("PUT", "PATCH", "TRACE", "FOO", "get", "OPTIONS", "OPTIONS", "DELETE", "HEAD", "POST", "GET"))
        path = rng.choice(("/", "/v1", "/v1/", "//v1/models", "/v1/models/", "/v1/models/a/b", "/healthz/", "/%zz",
                           "/v1/completions/extra", "/v1/classifications", "/v1/completions", "/metrics", "/readyz",
                           "/v1/models", "/v1/models/fashion-cnn", "/v1/jobs", "/v1/files/x/y", "/" + "a" * 3000,
                           "/v1/models/" + "%41" * 100, "/?" + "x=1&" * 200, "/v1/classifications?model=" + "a" * 2000))
        if method == "DELETE" and path.startswith("/v1/models/"):
            path = "/v1/models/rnd-b"   # never unload the models the other requests use
        hdrs = {}
        for _ in range(rng.randint(0, 4)):
            k, v = rng.choice((("X-Request-Id", rng.choice(("abc", "x" * 64, "x" * 65, "has space", "é", "", "a:b.c-d_e"))),
                               ("Origin", rng.choice(("https://a.example", "https://evil.example", "null", "", "*"))),
                               ("Authorization", rng.choice(("Bearer wrong", "Basic eA==", "Bearer", ""))),
                               ("Content-Type", rng.choice(("application/json", "image/png", "", ";;;", "x" * 300, b"text/\xff\xfe",
                                                            b"image/\xc3\x28"))),
                               ("Accept", rng.choice(("image/png", "*/*", "text/event-stream"))),
                               ("X-" + "y" * rng.randint(1, 100), "z" * rng.randint(0, 2000)),
                               ("Access-Control-Request-Method", "POST")))
            hdrs[k] = v
        body = b""
        if method in ("POST", "PUT", "PATCH") and rng.random() < 0.7:
            body = rng.choice((b"{}", b"{\"model\":\"fashion-cnn\"}", rng.randbytes(rng.randint(0, 200)), b"[" * 5000 + b"]" * 5000))
            hdrs.setdefault("Content-Type", "application/json")
        q = Req("junk", method, path, hdrs, body)
        if method == "HEAD":
            q.mode = "http"
        return q
    # raw bytes on a socket
    q = Req("junk-raw", "RAW", "", mode="raw")
    host = "Host: x\r\n"
    r = rng.random()
    if r < 0.2:   # Content-Length far beyond max_body_bytes, no body: 413 at once
        cl = rng.choice(("40000000", "1000000000000", "18446744073709551615", "99999999999999999999999"))
        path = rng.choice(("/v1/completions", "/v1/classifications?model=fashion-cnn", "/v1/models", "/nope", "/v1/jobs"))
        q.raw = f"POST {path} HTTP/1.1\r\n{host}Content-Type: application/json\r\nContent-Length: {cl}\r\n\r\n".encode()
        q.path = path
        # a value beyond 2^64 is refused by libmicrohttpd itself (its own HTML 413): no API shape to check
        q.expect = "413" if len(cl) < 21 else "any"
    elif r < 0.35:   # Content-Length larger than what is sent, then hang up
        q.raw = f"POST /v1/completions HTTP/1.1\r\n{host}Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{{\"model\":".encode()
        q.expect = "hangup"
    elif r < 0.5:   # chunked body, valid
        if rng.random() < 0.5:
            b = completion_body(rng, ctx)
            b["stream"] = False
            path = "/v1/completions"
        else:
            b = image_json_body(rng, ctx)[0]
            path = "/v1/classifications"
        body = json_bytes(rng, b)
        q.path = path
        chunks = b""
        i = 0
        while i < len(body):
            n = rng.randint(1, 64)
            chunks += b"%x\r\n" % len(body[i:i + n]) + body[i:i + n] + b"\r\n"
            i += n
        q.raw = f"POST {path} HTTP/1.1\r\n{host}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode() + chunks + b"0\r\n\r\n"
        q.expect = "api"
    elif r < 0.6:   # bad chunk framing
        q.raw = f"POST /v1/completions HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n".encode()
        q.expect = "any"
    elif r < 0.7:   # negative / junk Content-Length
        cl = rng.choice(("-1", "abc", "1e3", " 5", "5, 5", "0x10"))
        q.raw = f"POST /v1/completions HTTP/1.1\r\n{host}Content-Type: application/json\r\nContent-Length: {cl}\r\nConnection: close\r\n\r\n{{}}".encode()
        q.expect = "any"
    elif r < 0.8:   # malformed request lines / header blocks
        q.raw = rng.choice((b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /healthz HTTP/1.0\r\n\r\n",
                            b"\x00\x01\x02\r\n\r\n", b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
                            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 40000 + b"\r\n\r\n",
                            b"GET /healthz HTTP/1.1\r\n" + b"X-A: b\r\n" * 3000 + b"\r\n",
                            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", rng.randbytes(rng.randint(1, 300))))
        q.expect = "any"
    elif r < 0.9:   # pipelined requests on one connection
        q.raw = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * rng.randint(2, 5)) + b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        q.expect = "any"
    else:   # connect and hang up, or send half a request line
        q.raw = rng.choice((b"", b"POST /v1/compl", b"GET /healthz HTTP/1.1\r\nHost:"))
        q.expect = "hangup"
    return q


def gen_keepalive(rng, ctx):
    q = Req("keepalive", "SEQ", "", mode="keepalive")
    q.sequence = []
    for _ in range(rng.randint(2, 5)):
        g = rng.choice((gen_probe, gen_models, gen_classify_raw, gen_completion, gen_translation, gen_unbuilt))
        s = g(rng, ctx)
        if s.mode != "http":
            s.mode = "http"
            s.read_lines = 0
        if s.kind == "completions":   # no streams inside a keep-alive sequence
            try:
                b = json.loads(s.body)
                if isinstance(b, dict) and b.get("stream") is True:
                    b["stream"] = False
                    s.body = json.dumps(b).encode()
            except ValueError:
                pass
        q.sequence.append(s)
    return q


KINDS = ((gen_completion, 36), (gen_classify_json, 15), (gen_classify_raw, 17), (gen_translation, 8), (gen_models, 10),
         (gen_probe, 4), (gen_unbuilt, 5), (gen_junk, 10), (gen_keepalive, 3))


def generate(seed, client, index, ctx):
    rng = random.Random(f"{seed}:{client}:{index}")
    gens, weights = zip(*[(g, w) for g, w in KINDS if not ctx.kinds or g.__name__[4:] in ctx.kinds])
    g = rng.choices(gens, weights)[0]
    q = g(rng, ctx)
    decorate(rng, q, ctx, client, index)
    return q


def decorate(rng, q, ctx, client=0, index=0):
    """Authorization (mostly right), Origin and X-Request-Id headers."""
    if ctx.api_key and q.mode != "raw":
        for s in (q.sequence or [q]):
            r = rng.random()
            if r < 0.95:
                s.headers["Authorization"] = "Bearer " + ctx.api_key
            elif r < 0.97:
                s.headers["Authorization"] = "Bearer " + ctx.api_key + "x"
    if rng.random() < 0.1 and q.mode != "raw":
        q.headers["Origin"] = rng.choice(("https://a.example", "https://b.example", "https://c.example"))
    if rng.random() < 0.1 and q.mode != "raw":
        q.headers["X-Request-Id"] = rng.choice(("t-%d-%d" % (client, index), "bad id", "x" * 80))


# ----------------------------------------------------------------------------- checks

def check_error_shape(status, body):
    try:
        v = json.loads(body)
    except ValueError:
        return f"{status} body is not JSON: {body[:200]!r}"
    if not isinstance(v, dict) or not isinstance(v.get("error"), dict) or set(v) != {"error"}:
        return f"{status} body is not {{\"error\":{{...}}}}: {body[:300]!r}"
    e = v["error"]
    if not isinstance(e.get("message"), str) or not e["message"].strip():
        return f"error.message missing or empty: {e}"
    if e.get("type") not in TYPES:
        return f"error.type {e.get('type')!r} is not one of API.md's: {e}"
    if not isinstance(e.get("code"), str) or not e["code"]:
        return f"error.code missing: {e}"
    if "param" not in e or not (e["param"] is None or isinstance(e["param"], str)):
        return f"error.param missing or not string/null: {e}"
    want = ERROR_TYPES.get(status)
    if want and e["type"] != want:
        return f"status {status} with error.type {e['type']!r} (API.md: {want})"
    if status == 503 and e["type"] not in ("rate_limit_error", "server_error"):
        return f"503 with error.type {e['type']!r}"
    return None


def is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_ok(q, status, headers, body):
    """Shape of a 2xx answer."""
    if q.method == "HEAD" or status == 204:
        return None
    path = q.path.split("?")[0]
    if path == "/metrics":
        return None if b"# TYPE" in body or b"# HELP" in body else "metrics without # TYPE lines"
    try:
        v = json.loads(body)
    except ValueError:
        return f"2xx body is not JSON: {body[:200]!r}"
    if not isinstance(v, dict):
        return "2xx body is not an object"
    if path == "/v1/completions":
        if v.get("object") != "text_completion" or not isinstance(v.get("choices"), list) or not v["choices"]:
            return f"completion without object/choices: {str(v)[:300]}"
        for c in v["choices"]:
            if not isinstance(c.get("text"), str) or c.get("finish_reason") not in ("length", "stop") or \
                    not isinstance(c.get("tokens"), list) or not all(isinstance(t, int) and 0 <= t < VOCAB for t in c["tokens"]):
                return f"bad choice: {str(c)[:300]}"
        u = v.get("usage")
        if not isinstance(u, dict) or u.get("total_tokens") != u.get("prompt_tokens", 0) + u.get("completion_tokens", 0):
            return f"bad usage: {u}"
    elif path == "/v1/translations":
        data = v.get("data")
        if v.get("object") != "list" or not isinstance(data, list) or not data:
            return f"translation without data: {str(v)[:300]}"
        if [d.get("index") for d in data] != list(range(len(data))):
            return f"translation data out of order: {str(v)[:300]}"
        for d in data:
            if not isinstance(d.get("text"), str) or not isinstance(d.get("finished"), bool) or \
                    not isinstance(d.get("tokens"), list) or not all(isinstance(t, int) and t >= 0 for t in d["tokens"]):
                return f"bad translation: {str(d)[:300]}"
        u = v.get("usage")
        if not isinstance(u, dict) or u.get("total_tokens") != u.get("prompt_tokens", 0) + u.get("completion_tokens", 0):
            return f"bad usage: {u}"
    elif path == "/v1/classifications":
        if v.get("object") != "list" or not isinstance(v.get("data"), list) or not v["data"]:
            return f"classification without data: {str(v)[:300]}"
        for d in v["data"]:
            labels = d.get("labels")
            if not isinstance(labels, list) or not labels:
                return f"no labels: {d}"
            scores = [lab.get("score") for lab in labels]
            if not all(is_num(s) and 0 <= s <= 1 for s in scores) or scores != sorted(scores, reverse=True) or sum(scores) > 1.001:
                return f"bad scores: {scores}"
    elif path.startswith("/v1/models"):
        if q.method == "GET" and path == "/v1/models":
            if v.get("object") != "list" or not isinstance(v.get("data"), list):
                return "model list shape"
        elif not isinstance(v.get("id"), str):
            return f"model answer without id: {str(v)[:200]}"
    return None


def check_answer(q, status, headers, body):
    """None when (status, body) is acceptable for q, else why not."""
    path = q.path.split("?")[0]
    hl = {k.lower(): v for k, v in headers}
    if "x-request-id" not in hl:
        return f"{status} without X-Request-Id"
    if 200 <= status < 300:
        return check_ok(q, status, headers, body)
    if q.method == "HEAD":
        return None if 400 <= status < 500 or (status == 501 and path.startswith(UNBUILT)) else f"HEAD answered {status}"
    if status == 503 and path == "/readyz":
        return None
    if 400 <= status < 500 or status in (501, 503, 504):
        if status == 501 and not any(path.startswith(p) for p in UNBUILT):
            return f"501 on {path}, which is not one of the unbuilt endpoints"
        if status == 503 and "retry-after" not in hl and b"queue" in body:
            return "503 (queue full) without Retry-After"
        if status == 405 and "allow" not in hl:
            return "405 without Allow"
        if not hl.get("content-type", "").startswith("application/json"):
            return f"{status} with Content-Type {hl.get('content-type')!r}"
        return check_error_shape(status, body)
    return f"unexpected status {status}: {body[:300]!r}"


def check_sse(text, n_lines_read, complete):
    """Checks the SSE lines read so far; complete: the stream ended."""
    events = []
    done = 0
    for line in text.split("\n"):
        if line.startswith("data: "):
            if done:
                return "data after [DONE]"
            d = line[6:]
            if d == "[DONE]":
                done += 1
                continue
            try:
                v = json.loads(d)
            except ValueError:
                return f"SSE data is not JSON: {d[:200]!r}"
            if "error" in v:
                err = check_error_shape(400, json.dumps(v))
                if err and "API.md" not in err:
                    return "SSE error event: " + err
            elif v.get("object") != "text_completion" or not isinstance(v.get("choices"), list):
                return f"SSE chunk shape: {d[:200]}"
            events.append(v)
        elif line == "" or line.startswith(":"):
            continue
        else:
            return f"unexpected SSE line {line[:200]!r}"
    if complete and done != 1:
        return "stream ended without data: [DONE]"
    return None


# ----------------------------------------------------------------------------- the client

class Ctx:
    pass


class Failure(Exception):
    pass


class Client:
    def __init__(self, ctx):
        self.ctx = ctx

    def conn(self):
        return http.client.HTTPConnection(self.ctx.host, self.ctx.port, timeout=self.ctx.timeout)

    def run(self, q):
        """Sends q; returns (status or None, note). Raises Failure."""
        if q.mode == "raw":
            return self.run_raw(q)
        if q.mode == "keepalive":
            c = self.conn()
            try:
                for s in q.sequence:
                    st, _ = self.run_http(s, c)
                    if st is None:
                        break
            finally:
                c.close()
            return 200, "sequence"
        c = self.conn()
        try:
            if q.mode == "stream":
                return self.run_stream(q, c)
            if q.mode == "vanish":
                c.connect()
                c.sock.sendall(self.request_bytes(q))
                time.sleep(random.random() * 0.02)
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # RST
                return None, "vanished"
            return self.run_http(q, c)
        finally:
            c.close()

    def request_bytes(self, q):
        lines = [f"{q.method} {q.path} HTTP/1.1", f"Host: {self.ctx.host}:{self.ctx.port}", f"Content-Length: {len(q.body)}"]
        lines += [f"{k}: {v}" for k, v in q.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + q.body

    def send(self, q, c):
        c.putrequest(q.method, q.path, skip_host=False, skip_accept_encoding=True)
        for k, v in q.headers.items():
            c.putheader(k, v.encode("utf-8") if isinstance(v, str) else v)
        if q.method in ("POST", "PUT", "PATCH", "DELETE") or q.body:
            c.putheader("Content-Length", str(len(q.body)))
        c.endheaders(q.body if q.body else None)

    def transport_error(self, q, e):
        if not self.ctx.daemon_alive():
            raise Failure(f"daemon died ({type(e).__name__}: {e})")
        raise Failure(f"transport error {type(e).__name__}: {e}")

    def run_http(self, q, c):
        try:
            self.send(q, c)
            resp = c.getresponse()
            body = resp.read()
        except (socket.timeout, TimeoutError) as e:
            raise Failure(f"no answer within {self.ctx.timeout:.0f} s ({e})")
        except (OSError, http.client.HTTPException) as e:
            self.transport_error(q, e)
        why = check_answer(q, resp.status, resp.getheaders(), body)
        if why:
            raise Failure(f"HTTP {resp.status}: {why}")
        return resp.status, ""

    def run_stream(self, q, c):
        try:
            self.send(q, c)
            resp = c.getresponse()
            if resp.status != 200 or not (resp.getheader("Content-Type") or "").startswith("text/event-stream"):
                body = resp.read()
                why = check_answer(q, resp.status, resp.getheaders(), body)
                if why:
                    raise Failure(f"HTTP {resp.status}: {why}")
                return resp.status, ""
            lines = []
            complete = False
            while True:
                line = resp.readline()
                if not line:
                    complete = True
                    break
                lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
                if q.read_lines and len(lines) >= q.read_lines:
                    break
            if not complete:   # hang up mid-stream
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (socket.timeout, TimeoutError) as e:
            raise Failure(f"stream stalled for {self.ctx.timeout:.0f} s ({e})")
        except (OSError, http.client.HTTPException) as e:
            self.transport_error(q, e)
        why = check_sse("\n".join(lines), len(lines), complete)
        if why:
            raise Failure(f"stream: {why}")
        return 200, "stream" if complete else "hung up mid-stream"

    def run_raw(self, q):
        s = socket.create_connection((self.ctx.host, self.ctx.port), timeout=self.ctx.timeout)
        try:
            if q.raw:
                try:
                    s.sendall(q.raw)
                except OSError:
                    pass   # the daemon may answer and close before reading everything
            if q.expect == "hangup":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return None, "hung up"
            data = b""
            if q.expect == "any":   # garbage may get no answer at all: do not wait for the connection timeout
                s.settimeout(3.0 * self.ctx.scale)
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    data += d
                    if q.expect == "any":
                        s.settimeout(0.5)
                    if q.expect == "413" and b"\r\n\r\n" in data and b"}}" in data:
                        break
                    if q.expect == "any" and len(data) > 1 << 20:
                        break
            except ConnectionResetError:
                pass
            except (socket.timeout, TimeoutError):
                if q.expect == "any" and data:
                    pass
                elif q.expect != "any" or not data:
                    if not self.ctx.daemon_alive():
                        raise Failure("daemon died")
                    if q.expect == "any":
                        return None, "no answer (raw)"
                    raise Failure(f"no answer within {self.ctx.timeout:.0f} s")
        finally:
            s.close()
        if q.expect == "any":
            return (int(data[9:12]) if data[:5] == b"HTTP/" and data[9:12].isdigit() else None), "raw"
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1."):
            if not self.ctx.daemon_alive():
                raise Failure("daemon died")
            raise Failure(f"no HTTP answer: {data[:200]!r}")
        status = int(head[9:12])
        hdrs = [tuple(x.decode("latin-1").split(":", 1)) for x in head.split(b"\r\n")[1:] if b":" in x]
        hdrs = [(k.strip(), v.strip()) for k, v in hdrs]
        if any(k.lower() == "transfer-encoding" and "chunked" in v for k, v in hdrs):
            body = dechunk(body)
        if q.expect == "413" and status != 413:
            raise Failure(f"HTTP {status} for a Content-Length beyond max_body_bytes (want 413)")
        fake = Req(q.kind, "POST", q.path or "/v1/completions")
        why = check_answer(fake, status, hdrs, body)
        if why:
            raise Failure(f"HTTP {status}: {why}")
        return status, "raw"


def dechunk(b):
    out = b""
    while b:
        line, _, rest = b.partition(b"\r\n")
        try:
            n = int(line.split(b";")[0], 16)
        except ValueError:
            return out
        if n == 0:
            return out
        out += rest[:n]
        b = rest[n + 2:]
    return out


def rss_kb(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def warm_up(ctx, client):
    """A fixed set of requests of every kind, sequentially, before the RSS baseline."""
    rng = random.Random(f"{ctx.seed}:warmup")
    for i in range(3):
        for g in (gen_classify_raw, gen_classify_json, gen_completion, gen_models, gen_probe):
            q = g(rng, ctx)
            decorate(random.Random(0), q, ctx)
            if q.mode == "vanish":
                q.mode = "http"
            try:
                client.run(q)
            except Failure:
                pass   # counted in the real run
    c = client.conn()
    for _ in range(3):   # streams and a batch of completions, so the KV caches are allocated
        q = Req("completions", "POST", "/v1/completions", {"Content-Type": "application/json"},
                json.dumps({"model": TEXT_MODEL, "prompt": "The ", "max_tokens": 64, "stream": True, "n": 4}).encode(), "stream")
        if ctx.api_key:
            q.headers["Authorization"] = "Bearer " + ctx.api_key
        try:
            client.run(q)
        except Failure:
            pass
    c.close()


def rss_after_big_images(ctx, client, pid, rounds=3):
    """Deterministic: rounds of 4 concurrent raw PNG classifications of big
    pictures (1 x 4,000,000, 4,000,000 x 1, 2000 x 2000 RGBA and 1000 x 1000
    RGB, all within max_image_pixels 4,000,000); returns (RSS before, peak RSS
    seen, RSS 1 s after) in kB, and the statuses."""
    rng = random.Random(1)
    pngs = [make_png(rng, 1, 4000000, 0, 8, flat=True), make_png(rng, 4000000, 1, 6, 8, flat=True),
            make_png(rng, 2000, 2000, 6, 8, flat=True), make_png(rng, 1000, 1000, 2, 8)]
    before = rss_kb(pid)
    statuses, peak = [], [before]

    def one(png):
        q = Req("classify-raw", "POST", "/v1/classifications?model=" + IMAGE_MODEL, {"Content-Type": "image/png"}, png)
        decorate(random.Random(0), q, ctx)
        q.headers["Authorization"] = "Bearer " + ctx.api_key if ctx.api_key else ""
        try:
            statuses.append(client.run(q)[0])
        except Failure as e:
            statuses.append(str(e))
        peak.append(rss_kb(pid))

    for _ in range(rounds):
        ts = [threading.Thread(target=one, args=(p,)) for p in pngs]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    time.sleep(1)
    return before, max(x for x in peak if x), rss_kb(pid), statuses


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--pid", type=int, default=0, help="daemon pid (RSS and liveness)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--scale", type=int, default=1, help="slow build (ASan): smaller images, longer timeouts")
    ap.add_argument("--jpeg-dir", default="", help="directory of .jpg files to send and mutate")
    ap.add_argument("--api-key", default="")
    ap.add_argument("--rss-margin-mb", type=float, default=256)
    ap.add_argument("--avoid", default="", help="comma list of known crash classes not to send: sample,resize")
    ap.add_argument("--kinds", default="", help="comma list: only these generators (completion, classify_json, "
                    "classify_raw, translation, models, probe, unbuilt, junk, keepalive)")
    ap.add_argument("--big-images", action="store_true", help="only rss_after_big_images: print its figures")
    ap.add_argument("--replay", default="", help="CLIENT:INDEX — send that one request and report")
    ap.add_argument("--max-failures", type=int, default=20)
    a = ap.parse_args()

    ctx = Ctx()
    u = a.base.split("//", 1)[-1].rstrip("/")
    ctx.host, ctx.port = u.rsplit(":", 1)[0], int(u.rsplit(":", 1)[1])
    ctx.seed = a.seed if a.seed is not None else int(time.time() * 1000) % 1_000_000_007
    ctx.scale = max(1, a.scale)
    ctx.timeout = 30.0 * ctx.scale
    ctx.api_key = a.api_key
    ctx.avoid = {x for x in a.avoid.split(",") if x}
    ctx.kinds = {x for x in a.kinds.split(",") if x}
    ctx.jpegs = {}
    if a.jpeg_dir:
        for name in sorted(os.listdir(a.jpeg_dir)):
            if name.endswith(".jpg"):
                with open(os.path.join(a.jpeg_dir, name), "rb") as f:
                    ctx.jpegs[name] = f.read()
    ctx.daemon_alive = lambda: a.pid == 0 or os.path.exists(f"/proc/{a.pid}") and \
        (open(f"/proc/{a.pid}/stat").read().split(")")[-1].split()[0] != "Z")
    client = Client(ctx)

    if a.big_images:
        before, peak, after, statuses = rss_after_big_images(ctx, client, a.pid)
        print(f"BIGIMAGES {json.dumps({'before_kb': before, 'peak_kb': peak, 'after_kb': after, 'statuses': statuses})}")
        return 0

    if a.replay:
        cl, idx = (int(x) for x in a.replay.split(":"))
        q = generate(ctx.seed, cl, idx, ctx)
        print(f"replay seed={ctx.seed} {cl}:{idx}\n  " + q.show())
        try:
            st, note = client.run(q)
            print(f"  -> {st} {note}: ok")
            return 0
        except Failure as e:
            print(f"  -> FAIL: {e}")
            return 1

    print(f"random_client: seed {ctx.seed} (replay one request: {sys.argv[0]} --base {a.base} --seed {ctx.seed} "
          f"--replay CLIENT:INDEX{' --scale %d' % ctx.scale if ctx.scale > 1 else ''}{' --jpeg-dir ' + a.jpeg_dir if a.jpeg_dir else ''}"
          f"{' --api-key ' + a.api_key if a.api_key else ''})", flush=True)
    print(f"random_client: {a.clients} clients for {a.seconds:.0f} s, scale {ctx.scale}, avoid {sorted(ctx.avoid) or 'nothing'}", flush=True)

    t0 = time.time()
    warm_up(ctx, client)
    rss_warm = rss_kb(a.pid) if a.pid else None
    hwm_reset = False
    if a.pid:
        try:
            with open(f"/proc/{a.pid}/clear_refs", "w") as f:
                f.write("5")   # reset VmHWM: from now on it is the peak since the warm-up
            hwm_reset = True
        except OSError:
            pass
    print(f"random_client: warm-up done in {time.time() - t0:.1f} s, RSS {rss_warm and rss_warm / 1024:.1f} MB", flush=True)

    lock = threading.Lock()
    stats = {}      # kind -> {status -> count}
    failures = []
    slowest = []    # (seconds, client, index, kind, status, what)
    inflight = {}   # client -> (index, Req)
    samples = []
    stop = threading.Event()
    deadline = time.time() + a.seconds
    count = [0]
    died = [False]
    at_death = {}   # client -> (index, Req) in flight when the death was noticed
    at_death_recent = {}
    recent = {}     # client -> its last three request indices (a vanished client's request runs on)

    def worker(cl):
        i = 0
        while time.time() < deadline and not stop.is_set():
            q = generate(ctx.seed, cl, i, ctx)
            with lock:
                inflight[cl] = (i, q)
                recent.setdefault(cl, []).append(i)
                del recent[cl][:-3]
            try:
                tq = time.time()
                st, note = client.run(q)
                dt = time.time() - tq
                key = str(st) if st is not None else note
                with lock:
                    slowest.append((dt, cl, i, q.kind, st, q.desc or q.path[:80]))
                    slowest.sort(key=lambda x: -x[0])
                    del slowest[5:]
                    stats.setdefault(q.kind, {}).setdefault(key, 0)
                    stats[q.kind][key] += 1
                    count[0] += 1
            except Failure as e:
                with lock:
                    count[0] += 1
                    failures.append((cl, i, q, str(e)))
                    if str(e).startswith("daemon died") or len(failures) >= a.max_failures:
                        if str(e).startswith("daemon died") and not died[0]:
                            died[0] = True
                            at_death.update(inflight)   # the request that killed it is one of these
                            at_death_recent.update({c: list(v) for c, v in recent.items()})
                        stop.set()
            except Exception as e:   # a bug in this client: report it, as a failure
                with lock:
                    failures.append((cl, i, q, f"client exception {type(e).__name__}: {e}"))
                    stop.set()
            with lock:
                inflight.pop(cl, None)
            i += 1

    def sampler():
        while not stop.is_set() and time.time() < deadline + 1:
            v = rss_kb(a.pid)
            if v is None:
                break
            samples.append((time.time(), v))
            time.sleep(0.1)

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in range(a.clients)]
    st = threading.Thread(target=sampler, daemon=True)
    t1 = time.time()
    for t in threads:
        t.start()
    if a.pid:
        st.start()
    for t in threads:
        t.join(a.seconds + ctx.timeout * 3)
    stop.set()
    elapsed = time.time() - t1
    if died[0]:
        with lock:
            print("random_client: requests in flight when the daemon died (one of them killed it):")
            for cl, (i, q) in sorted(at_death.items()):
                print(f"  client {cl} request {i}: " + q.show())
            print("random_client: each client's last requests then (replay each with --replay CLIENT:INDEX): " +
                  ", ".join(f"{c}:{i}" for c, v in sorted(at_death_recent.items()) for i in v))

    # after the run: still up and still serving
    final = {}
    if not failures or not died[0]:
        for name, q in (("healthz", Req("probes", "GET", "/healthz")),
                        ("completion", Req("completions", "POST", "/v1/completions", {"Content-Type": "application/json"},
                                           json.dumps({"model": TEXT_MODEL, "prompt": "The ", "max_tokens": 5, "seed": 1}).encode())),
                        ("classification", Req("classify-json", "POST", "/v1/classifications", {"Content-Type": "application/json"},
                                               json.dumps({"model": IMAGE_MODEL, "image": base64.b64encode(
                                                   make_png(random.Random(1), 28, 28)).decode()}).encode()))):
            if ctx.api_key:
                q.headers["Authorization"] = "Bearer " + ctx.api_key
            try:
                s, _ = client.run(q)
                final[name] = s
                if s != 200:
                    failures.append((-1, -1, q, f"after the run: {name} answered {s}"))
            except Failure as e:
                final[name] = None
                failures.append((-1, -1, q, f"after the run: {name}: {e}"))

    rss_end = rss_kb(a.pid) if a.pid else None
    hwm = rss_kb(a.pid, "VmHWM") if a.pid else None
    peak_sampled = max((v for _, v in samples), default=None)
    peak = max(x for x in (hwm if hwm_reset else None, peak_sampled, 0) if x is not None) if a.pid else None
    bound_kb = (rss_warm + a.rss_margin_mb * 1024) if rss_warm else None

    print(f"random_client: {count[0]} requests in {elapsed:.1f} s ({count[0] / max(elapsed, 1e-9):.0f}/s), seed {ctx.seed}")
    for kind in sorted(stats):
        print(f"  {kind:14s} " + ", ".join(f"{k}: {v}" for k, v in sorted(stats[kind].items())))
    print("random_client: slowest: " + "; ".join(f"{dt:.1f} s {cl}:{i} {kind} {st} {what}" for dt, cl, i, kind, st, what in slowest))
    if a.pid and rss_warm and peak:
        print(f"random_client: RSS after warm-up {rss_warm / 1024:.1f} MB, peak {peak / 1024:.1f} MB "
              f"({'VmHWM' if hwm_reset else 'sampled'}), end {rss_end and rss_end / 1024:.1f} MB, "
              f"bound {bound_kb / 1024:.1f} MB (warm-up + {a.rss_margin_mb:.0f} MB)")
    for cl, i, q, why in failures:
        print(f"FAILURE client {cl} request {i}: {why}\n    " + q.show())
        if cl >= 0:
            print(f"    replay: {sys.argv[0]} --base {a.base} --seed {ctx.seed} --replay {cl}:{i}"
                  f"{' --scale %d' % ctx.scale if ctx.scale > 1 else ''}{' --jpeg-dir ' + a.jpeg_dir if a.jpeg_dir else ''}"
                  f"{' --api-key ' + a.api_key if a.api_key else ''}")
    summary = {"seed": ctx.seed, "requests": count[0], "seconds": round(elapsed, 1), "failures": len(failures),
               "died": died[0], "rss_warm_kb": rss_warm, "rss_peak_kb": peak, "rss_end_kb": rss_end,
               "rss_bound_kb": bound_kb, "final": final,
               "statuses": {k: sum(v.values()) for k, v in stats.items()}}
    print("SUMMARY " + json.dumps(summary))
    ok = not failures and (bound_kb is None or (peak or 0) <= bound_kb)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
