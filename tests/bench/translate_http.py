#!/usr/bin/env python3
"""translate_http.py - /v1/translations throughput of a running inferd (stdlib only).

    translate_http.py --port P --model ID [--concurrency 1,16] [--beams 1,4]
                      [--seconds 5] [--host 127.0.0.1]

For each beam size and concurrency C, C client threads (one keep-alive
connection each) send one sentence per request, back to back, for `seconds`
(after one warm-up request each). Sentences are common English words and
short phrases, taken in turn. Prints one line per configuration:
  translate model=ID beam=B conc=C sent_s=.. p50_ms=.. p99_ms=.. errors=..
and, per beam, the ratio of the highest concurrency to concurrency 1.
Asserts nothing; exits 0 unless the arguments are wrong.
"""
import argparse
import http.client
import json
import statistics
import threading
import time

SENTENCES = ["house", "water", "dog", "good morning", "to sleep", "the small house", "cat", "tree",
             "book", "to eat", "friend", "school", "red", "night", "bread", "car", "the old man",
             "to drink", "mother", "city"]


def client(host, port, model, beam, until, start_index, out):
    conn = http.client.HTTPConnection(host, port, timeout=120)
    lat, errors, i = [], 0, start_index
    first = True
    while True:
        now = time.monotonic()
        if not first and now >= until:
            break
        body = json.dumps({"model": model, "input": SENTENCES[i % len(SENTENCES)], "beam_size": beam})
        i += 1
        t0 = time.monotonic()
        try:
            conn.request("POST", "/v1/translations", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            ok = r.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=120)
        if first:   # warm-up request, not counted
            first = False
            continue
        if ok:
            lat.append(time.monotonic() - t0)
        else:
            errors += 1
    out.append((lat, errors))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--concurrency", default="1,16")
    ap.add_argument("--beams", default="1,4")
    ap.add_argument("--seconds", type=float, default=5)
    a = ap.parse_args()
    for beam in [int(x) for x in a.beams.split(",")]:
        rates = {}
        for c in [int(x) for x in a.concurrency.split(",")]:
            out = []
            t0 = time.monotonic()
            until = t0 + a.seconds
            ts = [threading.Thread(target=client, args=(a.host, a.port, a.model, beam, until, k * 7, out))
                  for k in range(c)]
            [t.start() for t in ts]
            [t.join() for t in ts]
            elapsed = max(time.monotonic() - t0, 1e-9)
            lat = sorted(x for l, _ in out for x in l)
            errors = sum(e for _, e in out)
            rate = len(lat) / elapsed
            rates[c] = rate
            p50 = statistics.median(lat) * 1000 if lat else float("nan")
            p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000 if lat else float("nan")
            print(f"translate model={a.model} beam={beam} conc={c} sent_s={rate:.1f} p50_ms={p50:.1f} "
                  f"p99_ms={p99:.1f} errors={errors}", flush=True)
        lo, hi = min(rates), max(rates)
        if lo != hi and rates[lo] > 0:
            print(f"translate model={a.model} beam={beam} ratio_conc{hi}_vs_conc{lo}={rates[hi] / rates[lo]:.2f}x "
                  f"(aim: >= 4x)", flush=True)


if __name__ == "__main__":
    main()
