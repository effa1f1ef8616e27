#!/usr/bin/env python3
"""prefill_http.py - what a long prompt does to the streams decoding beside it (stdlib only).

    prefill_http.py --port P --model ID [--model ID2 ...] [--streams 8] [--max-tokens 200]
                    [--long-prompt 1000] [--arrive-after 40] [--vocab 32000] [--rounds 1]

For each model id (the same weights under ids whose config.json sets another
prefill_chunk, e.g. 16 and 0 = whole prompts), two runs:
  base: `streams` streaming requests (short text prompts, temperature 0,
        max_tokens) start together; every text chunk's arrival is recorded;
  long: the same, and once every stream has received `arrive-after` chunks one
        more streaming request arrives whose prompt is `long-prompt` token ids
        (max_tokens 1); its time to first token is recorded.
Inter-token latency (ITL) = the gap between consecutive text chunks of one
stream (one token per chunk, but for the rare token whose text is an
incomplete UTF-8 character). Per run, over all streams' gaps after their
first chunk: median, p99, max; for the long run also over the gaps that end
while the long prompt is being prefilled (send -> its first token + 1 step):
  prefill model=ID run=base itl_med_ms=.. itl_p99_ms=.. itl_max_ms=.. gaps=.. tokens=..
  prefill model=ID run=long itl_med_ms=.. itl_p99_ms=.. itl_max_ms=.. gaps=.. during_med_ms=.. during_p99_ms=.. during_max_ms=.. during_gaps=.. p99_over_base_med=.. long_ttft_ms=..
p99_over_base_med = the long run's p99 over the base run's median (issue 13's aim: <= 3).
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


def stream(host, port, body, out, started=None):
    """POSTs a streaming completion; out['chunks'] = arrival times of non-empty text chunks."""
    out.update(t_send=None, chunks=[], error=None, tokens=0)
    try:
        conn = http.client.HTTPConnection(host, port, timeout=600)
        conn.connect()
        payload = json.dumps(body).encode()
        if started is not None:
            started.wait()
        out["t_send"] = time.perf_counter()
        conn.request("POST", "/v1/completions", body=payload, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            out["error"] = "HTTP %d: %s" % (resp.status, resp.read(300).decode("utf-8", "replace"))
            return
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            obj = json.loads(data)
            now = time.perf_counter()
            for ch in obj.get("choices") or []:
                if ch.get("text"):
                    out["chunks"].append(now)
            if obj.get("usage"):
                out["tokens"] = obj["usage"].get("completion_tokens", 0)
        conn.close()
    except Exception as e:  # noqa: BLE001 - a benchmark reports, it does not crash
        out["error"] = "%s: %s" % (type(e).__name__, e)


def pct(v, p):
    if not v:
        return float("nan")
    s = sorted(v)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def run(args, model, with_long):
    go = threading.Event()
    outs = [dict() for _ in range(args.streams)]
    ths = []
    for i in range(args.streams):
        body = {"model": model, "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": args.max_tokens,
                "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
        th = threading.Thread(target=stream, args=(args.host, args.port, body, outs[i], go))
        th.start()
        ths.append(th)
    go.set()
    long_out = {}
    if with_long:
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline and not all(len(o.get("chunks") or []) >= args.arrive_after or o.get("error")
                                                         for o in outs):
            time.sleep(0.005)
        ids = [3 + (j * 7919) % (args.vocab - 3) for j in range(args.long_prompt)]
        body = {"model": model, "prompt": ids, "max_tokens": 1, "temperature": 0, "stream": True}
        lt = threading.Thread(target=stream, args=(args.host, args.port, body, long_out))
        lt.start()
        lt.join()
    for th in ths:
        th.join()
    errors = [o["error"] for o in outs + ([long_out] if with_long else []) if o.get("error")]
    for e in errors:
        print("prefill model=%s error: %s" % (model, e), file=sys.stderr)
    gaps, during = [], []
    t_from = long_out.get("t_send")
    t_to = long_out["chunks"][0] if long_out.get("chunks") else None
    for o in outs:
        c = o.get("chunks") or []
        for a, b in zip(c, c[1:]):
            gaps.append(b - a)
            if t_from is not None and t_to is not None and t_from < b and a < t_to:
                during.append(b - a)   # overlaps the long prompt's prefill
    ttft = (t_to - t_from) if t_to is not None else float("nan")
    return gaps, during, ttft, sum(o.get("tokens", 0) for o in outs), len(errors)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--long-prompt", type=int, default=1000)
    ap.add_argument("--arrive-after", type=int, default=40)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    if args.streams < 1 or args.max_tokens <= args.arrive_after or args.vocab < 4 or args.long_prompt < 1:
        ap.error("need streams >= 1, max-tokens > arrive-after, vocab >= 4, long-prompt >= 1")
    ms = lambda x: 1e3 * x  # noqa: E731
    # warm-up (weights paged in, arenas grown, the long prompt's step size seen once)
    for model in args.model:
        run(argparse.Namespace(**{**vars(args), "max_tokens": 12, "arrive_after": 4}), model, True)
    for _ in range(args.rounds):
        for model in args.model:
            bg, _, _, btok, berr = run(args, model, False)
            base_med = statistics.median(bg) if bg else float("nan")
            print("prefill model=%s run=base itl_med_ms=%.1f itl_p99_ms=%.1f itl_max_ms=%.1f gaps=%d tokens=%d errors=%d"
                  % (model, ms(base_med), ms(pct(bg, 99)), ms(max(bg) if bg else float("nan")), len(bg), btok, berr),
                  flush=True)
            g, d, ttft, tok, err = run(args, model, True)
            print("prefill model=%s run=long itl_med_ms=%.1f itl_p99_ms=%.1f itl_max_ms=%.1f gaps=%d "
                  "during_med_ms=%.1f during_p99_ms=%.1f during_max_ms=%.1f during_gaps=%d p99_over_base_med=%.2f "
                  "long_prompt=%d long_ttft_ms=%.0f tokens=%d errors=%d"
                  % (model, ms(statistics.median(g)) if g else float("nan"), ms(pct(g, 99)), ms(max(g) if g else float("nan")),
                     len(g), ms(statistics.median(d)) if d else float("nan"), ms(pct(d, 99)),
                     ms(max(d) if d else float("nan")), len(d), pct(g, 99) / base_med if bg and g else float("nan"),
                     args.long_prompt, ms(ttft), tok, err), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
