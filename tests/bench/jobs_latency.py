#!/usr/bin/env python3
"""jobs_latency.py - classification latency of a running inferd with and without a training job (stdlib only).

    jobs_latency.py --port P --model ID --image FILE --text FILE [--seconds 10] [--clients 2]

Phase 1 ("idle"): `clients` threads POST the image (raw body, image/png) to
/v1/classifications?model=ID back to back for `seconds`; the latency of every
request is kept. Phase 2 ("training"): FILE --text is uploaded (POST
/v1/files), a text-generation job is created (a GPT of dim 64, 2 layers, 100000
steps: it trains through the whole phase), and once it reports "running"
the same load runs again; then the job is cancelled. Prints, per phase:
  jobs phase=idle|training clients=C requests=N req_s=.. p50_ms=.. p90_ms=.. p99_ms=.. max_ms=.. errors=..
and the job's steps/s during phase 2:
  jobs training steps=.. steps_s=..
Asserts nothing; exits 0 unless the arguments are wrong or the server cannot be reached.
"""
import argparse
import http.client
import json
import sys
import threading
import time


def request(host, port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(host, port, timeout=120)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def load(host, port, model, image, seconds, clients):
    """Back-to-back requests from `clients` threads (one keep-alive connection each)."""
    lat, errors, lock = [], [0], threading.Lock()
    stop = time.monotonic() + seconds

    def client():
        conn = http.client.HTTPConnection(host, port, timeout=60)
        while time.monotonic() < stop:
            t0 = time.monotonic()
            try:
                conn.request("POST", f"/v1/classifications?model={model}", body=image,
                             headers={"Content-Type": "image/png"})
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=60)
            dt = time.monotonic() - t0
            with lock:
                if ok:
                    lat.append(dt)
                else:
                    errors[0] += 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(lat), errors[0], time.monotonic() - t0


def report(phase, clients, lat, errors, wall):
    def q(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")
    print(f"jobs phase={phase} clients={clients} requests={len(lat)} req_s={len(lat) / wall:.0f} "
          f"p50_ms={q(0.50):.2f} p90_ms={q(0.90):.2f} p99_ms={q(0.99):.2f} "
          f"max_ms={(lat[-1] * 1000 if lat else float('nan')):.2f} errors={errors}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=2)
    a = ap.parse_args()
    image = open(a.image, "rb").read()
    text = open(a.text, "rb").read()

    load(a.host, a.port, a.model, image, 1, a.clients)   # warm-up
    lat, err, wall = load(a.host, a.port, a.model, image, a.seconds, a.clients)
    report("idle", a.clients, lat, err, wall)

    st, body = request(a.host, a.port, "POST", "/v1/files?purpose=train&filename=bench.txt", text,
                       {"Content-Type": "application/octet-stream"})
    if st != 200 and st != 201:
        print(f"jobs training: cannot upload the dataset (HTTP {st}: {body[:200]!r})")
        return 0
    fid = json.loads(body)["id"]
    job = {"task": "text-generation", "arch": "gpt", "training_file": fid, "output_model": "bench-job",
           "replace": True, "hyperparameters": {"steps": 100000, "batch_size": 16, "dim": 64, "layers": 2, "heads": 2,
                                                              "context_len": 64, "log_every": 1}}
    st, body = request(a.host, a.port, "POST", "/v1/jobs", json.dumps(job), {"Content-Type": "application/json"})
    if st != 202:
        print(f"jobs training: cannot create the job (HTTP {st}: {body[:200]!r})")
        return 0
    jid = json.loads(body)["id"]
    deadline = time.monotonic() + 60
    j = {}
    while time.monotonic() < deadline:
        j = json.loads(request(a.host, a.port, "GET", f"/v1/jobs/{jid}")[1])
        if j["status"] == "running" and j["step"] > 0:
            break
        time.sleep(0.2)
    step0, t0 = j.get("step", 0), time.monotonic()
    lat, err, wall = load(a.host, a.port, a.model, image, a.seconds, a.clients)
    j = json.loads(request(a.host, a.port, "GET", f"/v1/jobs/{jid}")[1])
    report("training", a.clients, lat, err, wall)
    steps = j["step"] - step0
    print(f"jobs training steps={steps} steps_s={steps / (time.monotonic() - t0):.1f} status={j['status']}")
    request(a.host, a.port, "POST", f"/v1/jobs/{jid}/cancel")
    return 0


if __name__ == "__main__":
    sys.exit(main())
