#!/usr/bin/env python3
"""prefill_http.py - what a long prompt does to the streams decoding beside it (stdlib only).

    prefill_http.py --port P --model ID [--model ID2 ...] [--streams 8] [--max-tokens 200]
                    [--long-prompt 1000] [--arrive-after 40] [--vocab 32000] [--rounds 1]
                    [--server-log FILE] [--server-pid PID]

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
  prefill model=ID run=base itl_med_ms=.. itl_p99_ms=.. itl_max_ms=.. gaps=.. tokens=.. others_cpu=..
  prefill model=ID run=long itl_med_ms=.. itl_p99_ms=.. itl_max_ms=.. gaps=.. during_med_ms=.. during_p99_ms=.. during_max_ms=.. during_gaps=.. p99_over_base_med=.. long_ttft_ms=.. others_cpu=..
p99_over_base_med = the long run's p99 over the base run's median (issue 13's aim: <= 3).

The client is one thread of one process: every connection is a non-blocking
socket on one selector, and a chunk's time is taken when recv returns its last
byte (time.perf_counter, CLOCK_MONOTONIC on Linux), so the gaps are the ones
a client sees. (One thread per stream, through http.client, put 9 Python
threads and their GIL hand-offs between the socket and the clock.)

others_cpu: the share of the machine's CPU time that processes other than the
daemon (--server-pid) and this client used during the run (/proc/stat and
/proc/PID/stat): on a shared machine it tells a slow run from a slow server.

--server-log: the daemon's log at --log-level debug; its per-step lines
(server/gen.c: `step model=.. rows=.. start=.. end=.. streamed=..`, the same
monotonic clock) split each run's gaps into the server's side and delivery:
  prefill model=ID run=R server step_med_ms=.. step_p99_ms=.. step_max_ms=.. steps=.. delivery_med_ms=.. delivery_p99_ms=.. delivery_max_ms=..
step = time from one step's start to the next one's (compute, sampling,
streaming the chunks, the scheduler); delivery = a chunk's arrival minus the
end of the step that made it (JSON, the HTTP thread, TCP, the client waking).
Asserts nothing; exits 0 unless the arguments are wrong.
"""
import argparse
import bisect
import json
import os
import re
import selectors
import socket
import statistics
import sys
import time

PROMPTS = ["Once upon a time", "The little dog", "In the morning", "She opened the door",
           "A long time ago", "The cat sat", "He said that", "We went to the"]


class Stream:
    """One streaming completion over a non-blocking HTTP/1.1 connection."""

    def __init__(self, host, port, body):
        self.payload = json.dumps(body).encode()
        self.req = (b"POST /v1/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (host.encode(), len(self.payload)) + self.payload)
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.t_send = None
        self.chunks = []       # arrival times of events carrying text
        self.tokens = 0        # usage.completion_tokens
        self.error = None
        self.done = False
        self.raw = b""         # bytes not parsed yet
        self.head = None       # (status, chunked) once the headers are in
        self.body = b""        # de-chunked body not parsed yet (SSE events)
        self.state, self.left = "size", 0   # de-chunking: "size", "data", "crlf", "end"; bytes left

    def send(self, sel):
        self.t_send = time.perf_counter()
        self.sock.sendall(self.req)
        self.sock.setblocking(False)
        sel.register(self.sock, selectors.EVENT_READ, self)

    def on_readable(self, sel):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            data, self.error = b"", "%s: %s" % (type(e).__name__, e)
        now = time.perf_counter()
        if not data:
            self.finish(sel)
            return
        self.raw += data
        self.parse(now)

    def parse(self, now):
        if self.head is None:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.raw[:end].split(b"\r\n")
            self.raw = self.raw[end + 4:]
            status = int(lines[0].split()[1])
            chunked = any(ln.lower().replace(b" ", b"") == b"transfer-encoding:chunked" for ln in lines[1:])
            self.head = (status, chunked)
        status, chunked = self.head
        if not chunked:                 # an error answer (Content-Length, then close)
            self.body += self.raw
            self.raw = b""
        while chunked and self.raw:     # de-chunk: "SIZE\r\n" DATA "\r\n" ... "0\r\n\r\n"
            if self.state == "size":
                nl = self.raw.find(b"\r\n")
                if nl < 0:
                    break
                n = int(self.raw[:nl].split(b";")[0], 16)
                self.raw = self.raw[nl + 2:]
                self.state, self.left = ("data", n) if n else ("end", 0)
            elif self.state in ("data", "crlf"):
                take = min(self.left, len(self.raw))
                if self.state == "data":
                    self.body += self.raw[:take]
                self.raw = self.raw[take:]
                self.left -= take
                if self.left == 0:
                    self.state, self.left = ("crlf", 2) if self.state == "data" else ("size", 0)
            else:                       # after the last chunk
                self.raw = b""
        if status != 200:
            return
        while True:                     # SSE events: "data: ...\n\n" (and ": comments")
            end = self.body.find(b"\n\n")
            if end < 0:
                return
            ev, self.body = self.body[:end], self.body[end + 2:]
            for line in ev.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    continue
                obj = json.loads(data)
                if any(ch.get("text") for ch in obj.get("choices") or []):
                    self.chunks.append(now)
                if obj.get("usage"):
                    self.tokens = obj["usage"].get("completion_tokens", 0)

    def finish(self, sel):
        sel.unregister(self.sock)
        self.sock.close()
        self.done = True
        if self.error is None and (self.head is None or self.head[0] != 200):
            status = self.head[0] if self.head else "no response"
            self.error = "HTTP %s: %s" % (status, (self.body + self.raw)[:300].decode("utf-8", "replace"))


def cpu_ticks(pid):
    """utime + stime of a process in clock ticks, or 0 when it cannot be read."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return 0


def machine_ticks():
    """(busy, total) clock ticks of all CPUs from /proc/stat, or (0, 0)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]) - idle, sum(v[:8])
    except (OSError, ValueError):
        return 0, 0


def pct(v, p):
    if not v:
        return float("nan")
    s = sorted(v)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def run(args, model, with_long):
    sel = selectors.DefaultSelector()
    streams = []
    for i in range(args.streams):
        body = {"model": model, "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": args.max_tokens,
                "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
        streams.append(Stream(args.host, args.port, body))   # connected before the clock starts
    ids = [3 + (j * 7919) % (args.vocab - 3) for j in range(args.long_prompt)]
    long_s = Stream(args.host, args.port, {"model": model, "prompt": ids, "max_tokens": 1, "temperature": 0,
                                           "stream": True}) if with_long else None
    busy0, total0 = machine_ticks()
    ours0 = cpu_ticks(os.getpid()) + (cpu_ticks(args.server_pid) if args.server_pid else 0)
    t_start = time.perf_counter()
    for s in streams:
        s.send(sel)
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline and not all(s.done for s in streams + ([long_s] if long_s else [])):
        if long_s and long_s.t_send is None and all(len(s.chunks) >= args.arrive_after or s.done for s in streams):
            long_s.send(sel)
        for key, _ in sel.select(timeout=1.0):
            key.data.on_readable(sel)
    busy1, total1 = machine_ticks()
    ours1 = cpu_ticks(os.getpid()) + (cpu_ticks(args.server_pid) if args.server_pid else 0)
    others = (busy1 - busy0 - (ours1 - ours0)) / (total1 - total0) if total1 > total0 and args.server_pid else float("nan")
    everyone = streams + ([long_s] if long_s else [])
    errors = [s.error or "no answer within 600 s" for s in everyone if s.error or not s.done]
    for s in everyone:
        if not s.done:
            s.sock.close()
    for e in errors:
        print("prefill model=%s error: %s" % (model, e), file=sys.stderr)
    gaps, during = [], []
    t_from = long_s.t_send if long_s else None
    t_to = long_s.chunks[0] if long_s and long_s.chunks else None
    for s in streams:
        c = s.chunks
        for a, b in zip(c, c[1:]):
            gaps.append((a, b))
            if t_from is not None and t_to is not None and t_from < b and a < t_to:
                during.append(b - a)   # overlaps the long prompt's prefill
    ttft = (t_to - t_from) if t_to is not None else float("nan")
    return {"gaps": gaps, "during": during, "ttft": ttft, "tokens": sum(s.tokens for s in streams),
            "errors": len(errors), "others": others, "t_start": t_start, "t_end": time.perf_counter()}


STEP_RE = re.compile(r"step model=(\S+) seqs=\d+ rows=\d+ start=([\d.]+) end=([\d.]+) streamed=([\d.]+)")


def server_split(path, model, r):
    """(step periods, deliveries) of run r from the daemon's debug log, or None."""
    try:
        with open(path, errors="replace") as f:
            steps = [(float(m.group(2)), float(m.group(3))) for m in map(STEP_RE.search, f)
                     if m and m.group(1) == model and r["t_start"] <= float(m.group(2)) <= r["t_end"]]
    except OSError:
        return None
    if len(steps) < 2:
        return None
    periods = [b[0] - a[0] for a, b in zip(steps, steps[1:])]
    ends = [e for _, e in steps]
    deliveries = []
    for _, b in r["gaps"]:
        k = bisect.bisect_right(ends, b) - 1   # the last step that ended before the chunk arrived
        if k >= 0:
            deliveries.append(b - ends[k])
    return periods, deliveries


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
    ap.add_argument("--server-log", help="the daemon's log at --log-level debug (per-step lines)")
    ap.add_argument("--server-pid", type=int, help="the daemon's pid (others_cpu leaves it out)")
    args = ap.parse_args()
    if args.streams < 1 or args.max_tokens <= args.arrive_after or args.vocab < 4 or args.long_prompt < 1:
        ap.error("need streams >= 1, max-tokens > arrive-after, vocab >= 4, long-prompt >= 1")
    ms = lambda x: 1e3 * x  # noqa: E731
    med = lambda v: statistics.median(v) if v else float("nan")  # noqa: E731
    mx = lambda v: max(v) if v else float("nan")  # noqa: E731

    def split(model, run_name, r):
        sp = server_split(args.server_log, model, r) if args.server_log else None
        if sp:
            p, d = sp
            print("prefill model=%s run=%s server step_med_ms=%.1f step_p99_ms=%.1f step_max_ms=%.1f steps=%d "
                  "delivery_med_ms=%.1f delivery_p99_ms=%.1f delivery_max_ms=%.1f"
                  % (model, run_name, ms(med(p)), ms(pct(p, 99)), ms(mx(p)), len(p) + 1,
                     ms(med(d)), ms(pct(d, 99)), ms(mx(d))), flush=True)

    # warm-up (weights paged in, arenas grown, the long prompt's step size seen once)
    for model in args.model:
        run(argparse.Namespace(**{**vars(args), "max_tokens": 12, "arrive_after": 4}), model, True)
    for _ in range(args.rounds):
        for model in args.model:
            b = run(args, model, False)
            bg = [y - x for x, y in b["gaps"]]
            base_med = med(bg)
            print("prefill model=%s run=base itl_med_ms=%.1f itl_p99_ms=%.1f itl_max_ms=%.1f gaps=%d tokens=%d errors=%d "
                  "others_cpu=%.0f%%" % (model, ms(base_med), ms(pct(bg, 99)), ms(mx(bg)), len(bg), b["tokens"],
                                         b["errors"], 100 * b["others"]), flush=True)
            split(model, "base", b)
            r = run(args, model, True)
            g, d = [y - x for x, y in r["gaps"]], r["during"]
            print("prefill model=%s run=long itl_med_ms=%.1f itl_p99_ms=%.1f itl_max_ms=%.1f gaps=%d "
                  "during_med_ms=%.1f during_p99_ms=%.1f during_max_ms=%.1f during_gaps=%d p99_over_base_med=%.2f "
                  "long_prompt=%d long_ttft_ms=%.0f tokens=%d errors=%d others_cpu=%.0f%%"
                  % (model, ms(med(g)), ms(pct(g, 99)), ms(mx(g)), len(g), ms(med(d)), ms(pct(d, 99)), ms(mx(d)),
                     len(d), pct(g, 99) / base_med if bg and g else float("nan"), args.long_prompt, ms(r["ttft"]),
                     r["tokens"], r["errors"], 100 * r["others"]), flush=True)
            split(model, "long", r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
