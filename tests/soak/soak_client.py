#!/usr/bin/env python3
"""soak_client.py — mixed load at high concurrency against a live inferd
(`make soak`, issue 6). Every request is valid: the only acceptable answers are
2xx, and 503 (queue full, with Retry-After) / 504 (timeout) as load answers.

  --clients N threads, each sending back to back, a mix of:
    classify-raw     one 28x28 PNG or JPEG body
    classify-json    1-4 base64 images in JSON
    completion       /v1/completions, 8-32 tokens, random sampling settings
    stream           the same streamed (include_usage), read to data: [DONE]
    vanish           a stream abandoned after 1-3 lines, or a request abandoned
                     right after sending it (queued or running)
  one manager thread, every few seconds: load a model under a spare id (from
  fashion-cnn or fortune-gpt), use it, unload it; reload fashion-cnn or
  fortune-gpt in place under load; every 60 s a SIGHUP (reload from disk).

Samples VmRSS every second. RSS drift = median RSS over the last
--window seconds / median RSS over the --window seconds after the warm-up - 1.
Prints requests/s by kind, status counts, RSS figures; the last line is a JSON
summary. Exits 1 on a crash, an unexpected 5xx, a malformed answer or a drift
of --max-drift or more.
"""
import argparse
import base64
import http.client
import json
import os
import random
import signal
import socket
import statistics
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import random_client as rc  # noqa: E402  (make_png, check_error_shape, check_sse, rss_kb)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--warmup", type=float, default=60)
    ap.add_argument("--window", type=float, default=30)
    ap.add_argument("--clients", type=int, default=256)
    ap.add_argument("--jpeg-dir", default="")
    ap.add_argument("--max-drift", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    u = a.base.split("//", 1)[-1].rstrip("/")
    host, port = u.rsplit(":", 1)[0], int(u.rsplit(":", 1)[1])

    rng0 = random.Random(a.seed)
    images = [rc.make_png(rng0, 28, 28, c, 8) for c in (0, 0, 2, 6, 3, 4) for _ in range(3)]
    if a.jpeg_dir:
        for name in sorted(os.listdir(a.jpeg_dir)):
            if name.endswith(".jpg"):
                with open(os.path.join(a.jpeg_dir, name), "rb") as f:
                    images.append(f.read())
    prompts = ["The ", "Q: What is the meaning of life?\nA: ", "\n", "It was a dark and stormy night", "Hello, world. ",
               "Fortune favours ", "A: ", "Why?"]

    lock = threading.Lock()
    stats = {}        # kind -> {status: count}
    bad = []          # (kind, why)
    stop = threading.Event()
    died = threading.Event()
    t_start = time.time()
    deadline = t_start + a.seconds

    def alive():
        try:
            with open(f"/proc/{a.pid}/stat") as f:
                return f.read().split(")")[-1].split()[0] != "Z"
        except OSError:
            return False

    def record(kind, status, why=None):
        with lock:
            d = stats.setdefault(kind, {})
            d[status] = d.get(status, 0) + 1
            if why and len(bad) < 1000:
                bad.append((kind, status, why))

    def conn():
        return http.client.HTTPConnection(host, port, timeout=180)

    def request(c, method, path, body=None, ctype="application/json"):
        hdrs = {"Content-Type": ctype} if body is not None else {}
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        return r, r.read()

    def judge(kind, r, body, ok=(200,)):
        if r.status in ok:
            record(kind, r.status)
            return True
        if r.status in (503, 504):
            why = rc.check_error_shape(r.status, body)
            if r.status == 503 and not r.getheader("Retry-After"):
                why = "503 without Retry-After"
            record(kind, r.status, why)
            return False
        record(kind, r.status, f"HTTP {r.status}: {body[:300]!r}")
        return False

    def completion_body(rng, stream):
        b = {"model": rc.TEXT_MODEL, "prompt": rng.choice(prompts), "max_tokens": rng.randint(8, 32 if not stream else 48)}
        if rng.random() < 0.5:
            b["temperature"] = rng.choice((0, 0.7, 1.0, 1.5))
        if rng.random() < 0.3:
            b["top_k"] = rng.choice((1, 5, 40))
        if rng.random() < 0.3:
            b["top_p"] = rng.choice((0.1, 0.5, 0.9))
        if rng.random() < 0.3:
            b["seed"] = rng.randrange(1000)
        if rng.random() < 0.2:
            b["n"] = rng.randint(2, 3)
        if rng.random() < 0.1:
            b["logprobs"] = 2
        if rng.random() < 0.1:
            b["stop"] = ["\n"]
        if stream:
            b["stream"] = True
            b["stream_options"] = {"include_usage": True}
        return json.dumps(b).encode()

    def one(rng, kind, held):
        """held: [connection or None], the worker's keep-alive connection."""
        if kind == "vanish" or held[0] is None:
            c = conn()
            if kind != "vanish":
                held[0] = c
        else:
            c = held[0]
        try:
            if kind == "classify-raw":
                img = rng.choice(images)
                r, body = request(c, "POST", "/v1/classifications?model=" + rc.IMAGE_MODEL, img,
                                  "image/png" if img[:4] == b"\x89PNG" else "image/jpeg")
                if judge(kind, r, body):
                    why = rc.check_ok(rc.Req(kind, "POST", "/v1/classifications"), r.status, r.getheaders(), body)
                    if why:
                        record(kind, "malformed", why)
            elif kind == "classify-json":
                imgs = [base64.b64encode(rng.choice(images)).decode() for _ in range(rng.randint(1, 4))]
                r, body = request(c, "POST", "/v1/classifications",
                                  json.dumps({"model": rc.IMAGE_MODEL, "image": imgs if len(imgs) > 1 else imgs[0], "top_k": 3}).encode())
                if judge(kind, r, body):
                    why = rc.check_ok(rc.Req(kind, "POST", "/v1/classifications"), r.status, r.getheaders(), body)
                    if why:
                        record(kind, "malformed", why)
            elif kind == "completion":
                r, body = request(c, "POST", "/v1/completions", completion_body(rng, False))
                if judge(kind, r, body):
                    why = rc.check_ok(rc.Req(kind, "POST", "/v1/completions"), r.status, r.getheaders(), body)
                    if why:
                        record(kind, "malformed", why)
            elif kind == "stream":
                c.request("POST", "/v1/completions", body=completion_body(rng, True), headers={"Content-Type": "application/json"})
                r = c.getresponse()
                if r.status != 200:
                    judge(kind, r, r.read())
                    return
                text = r.read().decode("utf-8", "replace")
                why = rc.check_sse(text, 0, True)
                record(kind, 200, why)
            else:   # vanish
                if rng.random() < 0.6:
                    c.request("POST", "/v1/completions", body=completion_body(rng, True), headers={"Content-Type": "application/json"})
                    r = c.getresponse()
                    for _ in range(rng.randint(1, 3)):
                        if not r.readline():
                            break
                else:
                    c.connect()
                    body = completion_body(rng, False) if rng.random() < 0.5 else rng.choice(images)
                    path = "/v1/completions" if body[:1] == b"{" else "/v1/classifications?model=" + rc.IMAGE_MODEL
                    ctype = "application/json" if body[:1] == b"{" else "image/png"
                    c.sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
                    time.sleep(rng.random() * 0.05)
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                record(kind, "vanished")
        except (OSError, http.client.HTTPException) as e:
            c.close()
            held[0] = None
            if not alive() or isinstance(e, ConnectionRefusedError):   # gone, or no longer listening
                died.set()
                stop.set()
                record(kind, "daemon died", f"{type(e).__name__}: {e}")
            elif isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)) and c is not None \
                    and kind != "vanish" and getattr(c, "_soak_used", False):
                record(kind, "keep-alive closed")   # the server closed an idle connection: not an error
            else:
                record(kind, "transport", f"{type(e).__name__}: {e}")
            return
        if kind == "vanish":
            c.close()
        else:
            c._soak_used = True

    kinds = (("classify-raw", 30), ("classify-json", 15), ("completion", 20), ("stream", 20), ("vanish", 15))

    def worker(i):
        rng = random.Random(f"{a.seed}:{i}")
        names, weights = zip(*kinds)
        held = [None]
        while not stop.is_set() and time.time() < deadline:
            one(rng, rng.choices(names, weights)[0], held)
        if held[0] is not None:
            held[0].close()

    def manager():
        rng = random.Random(f"{a.seed}:manager")
        spare = ["soak-a", "soak-b", "soak-c"]
        step = 0
        last_hup = time.time()
        while not stop.is_set() and time.time() < deadline:
            step += 1
            c = conn()
            try:
                if step % 3 == 0:   # reload a base model in place, under load
                    mid = rng.choice((rc.IMAGE_MODEL, rc.TEXT_MODEL))
                    r, body = request(c, "POST", "/v1/models", json.dumps({"id": mid, "path": mid}).encode())
                    judge("models", r, body, (200,))
                else:   # a spare id: load, use, unload
                    mid = rng.choice(spare)
                    src = rng.choice((rc.IMAGE_MODEL, rc.TEXT_MODEL))
                    r, body = request(c, "POST", "/v1/models", json.dumps({"id": mid, "path": src}).encode())
                    judge("models", r, body, (200, 201))
                    for _ in range(3):
                        if src == rc.IMAGE_MODEL:
                            r, body = request(c, "POST", "/v1/classifications?model=" + mid, rng.choice(images[:18]), "image/png")
                        else:
                            r, body = request(c, "POST", "/v1/completions",
                                              json.dumps({"model": mid, "prompt": "The ", "max_tokens": 8}).encode())
                        judge("models-use", r, body)
                    r, body = request(c, "GET", "/v1/models/" + mid)
                    judge("models", r, body)
                    r, body = request(c, "DELETE", "/v1/models/" + mid)
                    judge("models", r, body)
                if time.time() - last_hup > 60:
                    os.kill(a.pid, signal.SIGHUP)
                    last_hup = time.time()
                    record("sighup", "sent")
            except (OSError, http.client.HTTPException) as e:
                if not alive():
                    died.set()
                    stop.set()
                record("models", "transport", f"{type(e).__name__}: {e}")
            finally:
                c.close()
            stop.wait(2.0)

    samples = []   # (t, rss kB)

    def sampler():
        while not stop.is_set() and time.time() < deadline:
            v = rc.rss_kb(a.pid)
            if v is None:
                died.set()
                stop.set()
                break
            samples.append((time.time() - t_start, v))
            stop.wait(1.0)

    progress_every = 60 if a.seconds >= 300 else 15

    def progress():
        last = 0
        while not stop.wait(progress_every):
            with lock:
                n = sum(sum(v for k, v in d.items() if isinstance(k, int) or k == "vanished") for d in stats.values())
            t = time.time() - t_start
            anon, fil = rc.rss_kb(a.pid, "RssAnon") or 0, rc.rss_kb(a.pid, "RssFile") or 0
            print(f"soak: {t:5.0f} s  {n} requests ({(n - last) / progress_every:.0f}/s lately)  "
                  f"RSS {samples[-1][1] / 1024 if samples else 0:.1f} MB (anon {anon / 1024:.1f}, file {fil / 1024:.1f})", flush=True)
            last = n

    print(f"soak: {a.clients} clients + 1 model manager for {a.seconds:.0f} s (warm-up {a.warmup:.0f} s, "
          f"RSS window {a.window:.0f} s), seed {a.seed}", flush=True)
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(a.clients)]
    threads += [threading.Thread(target=manager, daemon=True)]
    aux = [threading.Thread(target=sampler, daemon=True), threading.Thread(target=progress, daemon=True)]
    for t in threads + aux:
        t.start()
    for t in threads:
        t.join(max(1, deadline - time.time()) + 240)
    elapsed = time.time() - t_start
    stop.set()

    # figures
    total = 0
    print(f"soak: {elapsed:.0f} s, by kind (requests/s counts every answered or abandoned request):")
    for kind in sorted(stats):
        d = stats[kind]
        n = sum(v for k, v in d.items() if isinstance(k, int) or k == "vanished")
        total += n if kind not in ("sighup",) else 0
        print(f"  {kind:14s} {n / elapsed:8.1f}/s  " + ", ".join(f"{k}: {v}" for k, v in sorted(d.items(), key=str)))
    print(f"  {'total':14s} {total / elapsed:8.1f}/s  ({total} requests)")
    unexpected_5xx = sum(v for d in stats.values() for k, v in d.items() if isinstance(k, int) and k >= 500 and k not in (503, 504))
    load_5xx = sum(v for d in stats.values() for k, v in d.items() if k in (503, 504))
    unexpected_4xx = sum(v for d in stats.values() for k, v in d.items() if isinstance(k, int) and 400 <= k < 500)
    transport = sum(v for d in stats.values() for k, v in d.items() if k == "transport")
    malformed = sum(v for d in stats.values() for k, v in d.items() if k == "malformed")
    shape = [b for b in bad if b[1] in (200, 503, 504)]

    def median_between(t0, t1):
        xs = [v for t, v in samples if t0 <= t < t1]
        return statistics.median(xs) if xs else None

    warm = median_between(a.warmup, a.warmup + a.window)
    end = median_between(elapsed - a.window - 2, elapsed + 1)
    peak = max((v for _, v in samples), default=None)
    drift = (end - warm) / warm if warm and end else None
    if warm and end:
        print(f"soak: RSS median {warm / 1024:.1f} MB over {a.warmup:.0f}-{a.warmup + a.window:.0f} s (after warm-up), "
              f"{end / 1024:.1f} MB over the last {a.window:.0f} s, peak {peak / 1024:.1f} MB: drift {drift * 100:+.2f}% "
              f"(limit {a.max_drift * 100:.0f}%)")
    print(f"soak: crashes {int(died.is_set())}, unexpected 5xx {unexpected_5xx}, load 503/504 {load_5xx}, "
          f"unexpected 4xx {unexpected_4xx}, transport errors {transport}, malformed answers {malformed + len(shape)}")
    for kind, status, why in bad[:15]:
        print(f"  {kind} {status}: {why}")
    summary = {"seconds": round(elapsed), "requests": total, "rps": round(total / elapsed, 1),
               "rps_by_kind": {k: round(sum(v for s, v in d.items() if isinstance(s, int) or s == "vanished") / elapsed, 1)
                               for k, d in stats.items()},
               "crashes": int(died.is_set()), "unexpected_5xx": unexpected_5xx, "load_503_504": load_5xx,
               "unexpected_4xx": unexpected_4xx, "transport_errors": transport, "malformed": malformed + len(shape),
               "rss_warm_kb": warm, "rss_end_kb": end, "rss_peak_kb": peak, "drift": drift}
    print("SUMMARY " + json.dumps(summary), flush=True)
    ok = (not died.is_set() and unexpected_5xx == 0 and malformed + len(shape) == 0 and transport == 0
          and drift is not None and drift < a.max_drift)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
