#!/usr/bin/env python3
"""lm_http.py - streaming /v1/completions throughput of a running inferd (stdlib only).

    lm_http.py --port P --model ID [--concurrency 1,4,16] [--max-tokens 64] [--rounds 2]
               [--ttft-prompt 128 --vocab V] [--host 127.0.0.1]

For each concurrency C, `rounds` waves of C streaming requests start together
(one thread and one connection each; `stream: true`, temperature 0, a short
text prompt, include_usage for the exact token count). Per wave:
  total tok/s  = completion tokens of all C streams / (last [DONE] - first send)
  stream tok/s = per stream (completion_tokens - 1) / ([DONE] - first text chunk),
                 i.e. the decode rate a client sees once text flows
  TTFT         = send -> the first `data:` chunk whose text is not empty
Prints, per concurrency (median over waves of the totals, median over all
streams of the per-stream figures):
  lmhttp model=ID conc=C tok_s_total=.. tok_s_stream=.. ttft_ms=.. ttft_max_ms=.. tokens=.. errors=.. finish=..
With --ttft-prompt P (and --vocab V): one request at a time whose prompt is P
token ids (the ids bench_lm uses: 3 + (j * 7919) % (V - 3)), max_tokens 1,
streaming; median of `rounds` + 1 after a warm-up:
  lmhttp model=ID ttft_prompt=P ttft_ms=..
Asserts nothing; exits 0 unless the arguments are wrong.
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time

PROMPTS = ["Once upon a time", "The little dog", "In the morning", "She opened the door",
           "A long time ago", "The cat sat", "He said that", "We went to the"]


def stream_request(host, port, body, out, barrier=None):
    """POSTs body (streaming); fills out with t_send, t_first, t_done, tokens, finish, error."""
    out.update(t_send=None, t_first=None, t_done=None, tokens=0, chunks=0, finish=None, error=None)
    try:
        conn = http.client.HTTPConnection(host, port, timeout=300)
        conn.connect()
        payload = json.dumps(body).encode()
        if barrier is not None:
            barrier.wait()
        out["t_send"] = time.perf_counter()
        conn.request("POST", "/v1/completions", body=payload,
                     headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        resp = conn.getresponse()
        if resp.status != 200:
            out["error"] = "HTTP %d: %s" % (resp.status, resp.read(300).decode("utf-8", "replace"))
            conn.close()
            return
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            now = time.perf_counter()
            if out["t_first"] is None and body.get("max_tokens") == 1:
                out["t_first"] = now          # TTFT probe: any first chunk
            if data == b"[DONE]":
                out["t_done"] = now
                break
            obj = json.loads(data)
            for ch in obj.get("choices") or []:
                if ch.get("text"):
                    out["chunks"] += 1
                    if out["t_first"] is None:
                        out["t_first"] = now
                if ch.get("finish_reason"):
                    out["finish"] = ch["finish_reason"]
            if obj.get("usage"):
                out["tokens"] = obj["usage"].get("completion_tokens", 0)
        conn.close()
        if out["t_done"] is None:
            out["error"] = "stream ended without [DONE]"
    except Exception as e:  # noqa: BLE001 - a benchmark reports, it does not crash
        out["error"] = "%s: %s" % (type(e).__name__, e)


def wave(args, conc, max_tokens):
    barrier = threading.Barrier(conc)
    outs = [dict() for _ in range(conc)]
    threads = []
    for i in range(conc):
        body = {"model": args.model, "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens,
                "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
        th = threading.Thread(target=stream_request, args=(args.host, args.port, body, outs[i], barrier))
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    return outs


def med(v):
    return statistics.median(v) if v else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ttft-prompt", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=0)
    args = ap.parse_args()
    concs = [int(c) for c in args.concurrency.split(",") if c]
    if not concs or args.rounds < 1 or args.max_tokens < 2:
        ap.error("need concurrencies, rounds >= 1, max-tokens >= 2")

    # warm-up: the largest wave, a few tokens (scratch arenas grow, weights page in)
    for o in wave(args, max(concs), 4):
        if o["error"]:
            print("lmhttp model=%s warm-up error: %s" % (args.model, o["error"]), file=sys.stderr)
            break

    for conc in concs:
        totals, per_stream, ttft, tokens, errors, finishes = [], [], [], 0, 0, {}
        for _ in range(args.rounds):
            outs = wave(args, conc, args.max_tokens)
            ok = [o for o in outs if not o["error"]]
            errors += len(outs) - len(ok)
            for o in outs:
                if o["error"]:
                    print("lmhttp model=%s conc=%d error: %s" % (args.model, conc, o["error"]), file=sys.stderr)
            if not ok:
                continue
            t0 = min(o["t_send"] for o in ok)
            t1 = max(o["t_done"] for o in ok)
            n = sum(o["tokens"] for o in ok)
            tokens += n
            totals.append(n / (t1 - t0))
            for o in ok:
                finishes[o["finish"]] = finishes.get(o["finish"], 0) + 1
                if o["t_first"] is not None:
                    ttft.append(o["t_first"] - o["t_send"])
                    if o["tokens"] > 1 and o["t_done"] > o["t_first"]:
                        per_stream.append((o["tokens"] - 1) / (o["t_done"] - o["t_first"]))
        fin = ",".join("%s:%d" % (k, v) for k, v in sorted(finishes.items(), key=lambda kv: str(kv[0])))
        print("lmhttp model=%s conc=%d tok_s_total=%.1f tok_s_stream=%.1f ttft_ms=%.1f ttft_max_ms=%.1f "
              "tokens=%d errors=%d finish=%s" % (args.model, conc, med(totals), med(per_stream),
                                                 1e3 * med(ttft), 1e3 * max(ttft) if ttft else float("nan"),
                                                 tokens, errors, fin or "-"), flush=True)

    if args.ttft_prompt > 0 and args.vocab > 3:
        ids = [3 + (j * 7919) % (args.vocab - 3) for j in range(args.ttft_prompt)]
        body = {"model": args.model, "prompt": ids, "max_tokens": 1, "temperature": 0, "stream": True}
        samples = []
        for r in range(args.rounds + 2):   # round 0 warms up
            o = {}
            stream_request(args.host, args.port, body, o)
            if o["error"]:
                print("lmhttp model=%s ttft error: %s" % (args.model, o["error"]), file=sys.stderr)
                continue
            if r > 0 and o["t_first"] is not None:
                samples.append(o["t_first"] - o["t_send"])
        print("lmhttp model=%s ttft_prompt=%d ttft_ms=%.1f rounds=%d" %
              (args.model, args.ttft_prompt, 1e3 * med(samples), len(samples)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
