#!/usr/bin/env bash
# run.sh — `make bench`: throughput figures for the default image model, each
# next to a baseline measured in the same run. Prints; asserts nothing; exits 0.
#
#   1. engine: classify_images (what a server worker calls per batch) at
#      batch 1/16/256, OpenBLAS 1 and 2 threads, plus 2 workers x 1 thread
#      (tests/bench/bench_engine.c); then, on 1 thread, the serving path beside the
#      one it replaced (bench_engine --compare: batch norm folded into the convolutions
#      and ReLU + max pooling fused into their GEMM's output pass, vs the training
#      forward with a pass per layer), alternating rounds, wall and CPU time per image
#   2. PyTorch 1.13 (/usr/bin/python3) running the same nn.Sequential on the same
#      weights and inputs, after checking both give the same probabilities
#      (tests/bench/bench_torch.py): 1 and 2 threads with torch's defaults, and 2
#      threads with OMP_WAIT_POLICY=passive; skipped when /usr/bin/python3 lacks torch
#   3. HTTP: `inferd serve` on a free port, wrk POSTing examples/shoe.png to
#      /v1/classifications at concurrency 1/8/64, then c=1 and c=64 against a
#      copy of the model with max_queue_delay_us = 0; skipped when wrk is missing
#   4. language models (decoder transformers, random weights, the real formats): a
#      stories15M-shaped llama (dim 288, 6 layers, 6 heads, hidden 768, vocab 32000) and a
#      GPT-2-small-shaped gpt2 (dim 768, 12 layers, 12 heads, vocab 50257, context 1024),
#      written by build/tools/mkmodel into the temp dir (~600 MB, deleted at exit):
#        engine: tests/bench/bench_lm.c through eng_lm (what the continuous batcher calls):
#                one-thread DRAM read bandwidth, decode tokens/s at 1/4/16 streams,
#                the bandwidth roofline of one stream, time to first token of a 128-token prompt;
#                tests/bench/bench_lm_mm.c: the GPT-2-small step's matmuls alone (kernels, page sizes);
#                gpt2-small at compute_threads 1 and 2 (decode and the 128-token prefill at both)
#        PyTorch: tests/bench/bench_lm_torch.py, GPT-2 written in plain torch on the same gpt2-small
#                weights (KV cache, inference_mode), 2 threads with OMP_WAIT_POLICY=passive and 1 thread:
#                decode at the first and last BENCH_LM_STREAMS count and the 128-token prefill, after
#                checking its logits against the engine's (bench_lm --dump); skipped when
#                $TORCH_PYTHON lacks torch. The summary prints inferd / PyTorch ratios.
#        HTTP:   `inferd serve` with both models, tests/bench/lm_http.py streaming
#                /v1/completions at 1/4/16 concurrent requests (64 tokens, temperature 0),
#                and the TTFT of one 128-token-prompt request
#    4b. chunked prefill: a stories110M-shaped llama2.c checkpoint (mkmodel llama2c: dim 768, 12 layers,
#                hidden 2048, context 1024),
#                tests/bench/prefill_http.py: 8 streams decoding, inter-token latency median / p99 / max
#                without and with a 1000-token prompt arriving mid-run, prefill_chunk at the default and
#                at 0 (whole prompts); the p99 / base-median ratio and the long prompt's own TTFT; the
#                gaps split into the server's step period and delivery (the daemon's debug step log),
#                and the CPU share other processes took during each run;
#                tests/bench/bench_prefill.c: the same step's cost per chunk size through eng_lm, in one process
#      The GPT-2 model needs tests/ref/gpt2-vocab (scripts/fetch-test-vocab.sh), the llama
#      one ../shared/data/tokenizer.bin (else the engine figure uses an in-memory model and
#      HTTP is skipped for it); without mkmodel the section is skipped.
#  4c. the compute pool: a stories110M-shaped llama2.c checkpoint (mkmodel llama2c, ~440 MB in the
#      temp dir) through bench_lm at compute_threads 1 and 2 (decode 1 and 16 streams, 128-token
#      prefill, 1- and 2-thread read bandwidth), next to ../shared/tools/llamacpp/anchor's llama.cpp
#      figures for the same file when ../shared is there (BENCH_LM110=0 / BENCH_ANCHOR=0 skip them)
#   5. translation (Marian): a Marian-base-shaped MarianMT directory (d_model 512, 6+6
#      layers, 8 heads, ffn 2048, vocab 58101, random weights; ~300 MB written by
#      tests/bench/make_marian_bench.py into the temp dir, deleted at exit):
#        engine:  tests/bench/bench_marian.c, greedy eng_translate of 20-token sources
#                 (20 output tokens each: a random model never ends) at batch 1 and 16,
#                 OpenBLAS 1 and 2 threads
#        PyTorch: tests/bench/bench_marian_torch.py, the same greedy decoding (KV cache) on
#                 the same weights, 2 threads, OMP_WAIT_POLICY=passive; first checks that
#                 its greedy ids equal the engine's
#        HTTP:    `inferd serve` with the model, tests/bench/translate_http.py at 1 and 16
#                 clients, greedy and beam 4
#   6. a summary table
#   7. text classification: langid (models/langid) through the engine on one thread,
#      texts/s at batch 1 and 32 for held-out fortunes of at most 80 bytes ("short texts"),
#      text -> ids (the HTTP thread's part) + classify_text (the worker's), and the forward
#      pass alone (tests/bench/bench_text.c). Aim: >= 20,000 short texts/s on one core.
#   8. text classification (BERT): a BERT-base-shaped BertForSequenceClassification
#      directory (hidden 768, 12 layers, 12 heads, ffn 3072, vocab 30522, random weights;
#      ~440 MB written by tests/bench/bench_bert.py into the temp dir, deleted at exit):
#        engine:  tests/bench/bench_bert.c, classify_text at batch 1 and 32 of 64-token texts
#                 and batch 32 of mixed lengths (32..128 tokens), OpenBLAS 2 threads; batch 1
#                 on 1 thread too
#        PyTorch: tests/bench/bench_bert.py, the same weights and texts through
#                 nn.TransformerEncoder (its fused fast path; nested tensors for padding),
#                 2 (and 1) threads, OMP_WAIT_POLICY=passive, inference_mode; first checks that its
#                 logits equal the engine's
#   9. training jobs: `inferd serve` with the image model, 2 clients POSTing
#      examples/shoe.png back to back: p50/p90/p99 latency idle, then while a
#      training job (a small GPT on the fortunes) runs; the job's steps/s
#      (tests/bench/jobs_latency.py)
#  10. image generation: the DCGAN (models/fashion-dcgan) through the engine on one
#      thread, generations/s at n = 1 and 64 per request: latents + generate_images +
#      one PNG per image (tests/bench/bench_dcgan.c), beside the path it replaced
#      (bench_dcgan --compare: batch norm folded and the batch in one product per
#      layer, vs one tape forward per image), alternating rounds, with CPU time per image
#  11. stylization: a full-width TransformerNet (pytorch/examples fast_neural_style, random
#      weights, written by tests/bench/bench_stylize.py through scripts/convert_fast_neural_style.py):
#        engine:  tests/bench/bench_stylize.c, arch->image_to_image of one 256x256 and one 512x512
#                 image, OpenBLAS 1 and 2 threads
#        PyTorch: tests/bench/bench_stylize.py, the same network and weights, 2 threads,
#                 OMP_WAIT_POLICY=passive, inference_mode; first checks that its output for the
#                 engine's 256x256 input is within 1/255 of the engine's
#  12. matmul kernels (tests/bench/bench_gemm.c): eng_gemm_nt on each ISA path this CPU runs
#      (generic, avx2, avx512; engine/core/cpu.h) next to OpenBLAS cblas_sgemm on 1 thread, in
#      one process, over every matmul of a stories110M-shaped and a GPT-2-small-shaped step
#      (weights from DRAM) at M = 1, 4, 16, 64, 128 rows: GFLOP/s, the fraction of sgemm, and
#      at M <= 4 the GB/s drawn next to a plain streaming read of the same weights; the int8
#      kernel (engine/core/gemm_q8.h, groups of 32) on each of its SIMD paths on the same
#      shapes, and its ratio to the best fp32 path (the same FLOPs per token); then
#      single-stream decode tokens/s of a stories110M-shaped random llama (mkmodel, ~540 MB) on
#      one core, per path (INFERD_CPU), through bench_lm
#  13. int8 weights: a stories110M-shaped llama2.c checkpoint (random weights, ~540 MB) and
#      `inferd quantize` of it: bench_lm decode at 1 and 16 streams and 128-token prefill, fp32
#      vs int8 on one thread, beside llama.cpp F32 / Q8_0 on the same model.bin
#      (../shared/tools/llamacpp/anchor, 1 and 2 threads; LLAMACPP_ANCHOR overrides the path)
#
# Environment:
#   MODELS_DIR          model repository (default: models); the model is MODELS_DIR/fashion-cnn.
#                       When it is missing a 100-step stand-in is trained into a temp dir
#                       (same architecture and FLOPs; timings differ a little because
#                       activation sparsity, which max pooling's branches see, differs).
#   BENCH_MODEL         model id (default fashion-cnn)
#   BENCH_SECONDS       timed seconds per engine/PyTorch configuration (default 2)
#   BENCH_HTTP_SECONDS  wrk duration per concurrency (default 5)
#   BENCH_BATCHES       default 1,16,256       BENCH_CONCURRENCY  default 1,8,64
#   BENCH_DATA          MNIST-style dataset whose first 256 test images are the engine/PyTorch
#                       inputs (default /usr/share/datasets/fashion-mnist; fixed-seed noise if absent)
#   INFERD              the daemon binary (default ./inferd)
#   TORCH_PYTHON        default /usr/bin/python3      WRK  default wrk
#   BENCH_PARTS         default image,lm,prefill,lm110,translate,text,bert,jobs,gen,style,gemm,int8: "image" = sections 1-3,
#                       "lm" = section 4, "prefill" = section 4b, "lm110" = section 4c,
#                       "translate" = section 5, "text" = section 7, "bert" = section 8, "jobs" = section 9,
#                       "gen" = section 10, "style" = section 11, "gemm" = section 12,
#                       "int8" = section 13
#   BENCH_JOBS_SECONDS  seconds per phase of section 9 (default 10)
#   BENCH_BERT_ROUNDS   timed rounds per BERT configuration (default 3; a batch-32 call takes seconds)
#   BENCH_MT_SECONDS    translate_http.py seconds per configuration (default 5)
#   BENCH_LM_STREAMS    default 1,4,16
#   BENCH_LM_STEPS      engine decode steps per round (default 48; 3 rounds + warm-up per line)
#   BENCH_LM_HTTP_ROUNDS  waves per HTTP concurrency (default 2)   BENCH_LM_MAX_TOKENS  default 64
#   BENCH_LM_MM         0 skips the matmul-only figures (tests/bench/bench_lm_mm.c, ~15 s)
#   BENCH_PF_STREAMS    default 8   BENCH_PF_MAX_TOKENS  default 160   BENCH_PF_PROMPT  default 1000
#   BENCH_PF_ROUNDS     default 1      BENCH_PF_CHUNKS  more prefill_chunk values to compare, e.g. 8,32 (default none)
#   GPT2_VOCAB          default tests/ref/gpt2-vocab  LLAMA_TOKENIZER  default ../shared/data/tokenizer.bin
#
# Everything runs on this machine's cores together (2 vCPUs on CI, shared with
# other jobs): compare the ratios printed here, not absolute numbers across runs.
set -u
cd "$(dirname "$0")/../.." || exit 0
ROOT=$PWD

MODELS_DIR=${MODELS_DIR:-models}
MODEL=${BENCH_MODEL:-fashion-cnn}
SECS=${BENCH_SECONDS:-2}
HTTP_SECS=${BENCH_HTTP_SECONDS:-5}
BATCHES=${BENCH_BATCHES:-1,16,256}
CONCURRENCY=${BENCH_CONCURRENCY:-1,8,64}
INFERD=${INFERD:-./inferd}
TORCH_PYTHON=${TORCH_PYTHON:-/usr/bin/python3}
WRK=${WRK:-wrk}
BUILD=${BUILD:-build}
CC=${CC:-cc}
IMAGE=examples/shoe.png
DATA=${BENCH_DATA:-/usr/share/datasets/fashion-mnist}

OUT=$(mktemp -d /tmp/inferd-bench.XXXXXX)
DAEMON_PID=
cleanup() {
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DAEMON_PID" 2>/dev/null
  fi
  rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

say() { printf '%s\n' "$*"; }
PARTS=${BENCH_PARTS:-image,lm,prefill,lm110,translate,text,bert,jobs,gen,style,gemm,int8}
part() { [[ ",$PARTS," == *",$1,"* ]]; }
hr() { say "------------------------------------------------------------------------"; }

say "== make bench  ($(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
say "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)   (machine is shared: figures are noisy; compare ratios)"

# ---------------------------------------------------------------- build
PKGS="libmicrohttpd jansson libuv libpng zlib libarchive"   # libarchive: engine/io/dataset_tar.c
# The bench programs are built for x86-64-v3 (some time AVX loops of their own); the engine
# objects they link are the Makefile's (baseline x86-64, kernels picked at run time).
BENCH_CFLAGS="-std=c11 -D_GNU_SOURCE -g -O2 -march=x86-64-v3 -mtune=native -Wall -Wextra -Wno-unused-parameter \
  -I. $(pkg-config --cflags $PKGS 2>/dev/null) -I/usr/include/x86_64-linux-gnu/openblas-pthread"
BENCH_LIBS="$(pkg-config --libs $PKGS 2>/dev/null) -lopenblas -ljpeg -lsentencepiece -lstdc++ -lpthread -lm"
# the engine's objects named from its sources (a glob over $BUILD would also
# pick up objects of files since renamed or removed: duplicate symbols)
ENGINE_OBJS=$(for f in engine/*/*.c; do printf '%s ' "$BUILD/${f%.c}.o"; done; for f in engine/*/*.cc; do printf '%s ' "$BUILD/${f%.cc}.o"; done)
if ! make -s BUILD="$BUILD" inferd >"$OUT/make.log" 2>&1; then
  say "bench: 'make inferd' failed; nothing measured:"; tail -20 "$OUT/make.log"; exit 0
fi
ENGINE_BIN=$BUILD/bench/bench_engine
mkdir -p "$BUILD/bench"
# shellcheck disable=SC2086
if ! $CC $BENCH_CFLAGS -o "$ENGINE_BIN" tests/bench/bench_engine.c $ENGINE_OBJS $BENCH_LIBS 2>"$OUT/cc.log"; then
  say "bench: cannot build bench_engine; nothing measured:"; cat "$OUT/cc.log"; exit 0
fi

TORCH_OK=0; HTTP_OK=0; LM_OK=0; LM_HTTP_OK=0
if part image; then   # sections 1-3 (not indented)
# ---------------------------------------------------------------- model
MODEL_DIR=$MODELS_DIR/$MODEL
if [ ! -f "$MODEL_DIR/model.safetensors" ] || [ ! -f "$MODEL_DIR/config.json" ]; then
  say "bench: $MODEL_DIR is missing; training a 100-step stand-in (same architecture and FLOPs) ..."
  if ! "$INFERD" train --task image-classification --data /usr/share/datasets/fashion-mnist \
        --out "$OUT/models/$MODEL" --steps 100 --log-every 1000 >"$OUT/train.log" 2>&1; then
    say "bench: could not train a stand-in model; nothing measured:"; tail -5 "$OUT/train.log"; exit 0
  fi
  MODELS_DIR=$OUT/models
  MODEL_DIR=$MODELS_DIR/$MODEL
fi
say "   model: $MODEL_DIR"
DATA_ARGS=()
if ls "$DATA"/*images-idx3-ubyte* >/dev/null 2>&1 &&
   "$ENGINE_BIN" --dump "$OUT/probe" --batches 1 --data "$DATA" "$MODEL_DIR" >/dev/null 2>&1; then
  DATA_ARGS=(--data "$DATA")
  say "   engine/PyTorch inputs: the first 256 test images of $DATA, each call takes the next batch"
else
  say "   engine/PyTorch inputs: fixed-seed noise (no matching dataset at $DATA), 256 distinct images in turn"
fi

# ---------------------------------------------------------------- 1. engine
hr
say "== 1. engine: classify_images, ${SECS}s per line (median of 5 rounds)"
"$ENGINE_BIN" "${DATA_ARGS[@]}" --seconds "$SECS" --batches "$BATCHES" --threads 1,2 --workers2 "$MODEL_DIR" | tee "$OUT/engine.txt"
say "   serving path (batch norm folded, ReLU + max pooling fused) vs the unfolded training forward (engine-plain),"
say "   alternate rounds, 1 thread; cpu_us_img = process CPU time per image:"
OPENBLAS_NUM_THREADS=1 "$ENGINE_BIN" "${DATA_ARGS[@]}" --seconds "$SECS" --batches "$BATCHES" --threads 1 --compare \
    "$MODEL_DIR" | grep '^engine' | sed 's/^/   /' | tee "$OUT/engine-fold.txt"

# ---------------------------------------------------------------- 2. PyTorch
hr
TORCH_OK=0
if "$TORCH_PYTHON" -c 'import torch' 2>/dev/null; then
  say "== 2. PyTorch: same layers, same weights, same inputs (eval, inference_mode, OpenBLAS threads pinned too)"
  if "$ENGINE_BIN" "${DATA_ARGS[@]}" --dump "$OUT/check" --batches 16 "$MODEL_DIR" >/dev/null &&
     "$TORCH_PYTHON" tests/bench/bench_torch.py --check "$OUT/check" "$MODEL_DIR" | tee "$OUT/check.txt"; then
    :
  else
    say "   WARNING: PyTorch and inferd disagree (or the check failed): the comparison below is not like for like"
  fi
  # torch's defaults (spinning OpenMP workers), then 2 threads with OMP_WAIT_POLICY=passive ("2p"):
  # on 2 shared cores the spinning costs up to 100x at batch 1.
  if env -u OMP_WAIT_POLICY "$TORCH_PYTHON" tests/bench/bench_torch.py "${DATA_ARGS[@]}" --seconds "$SECS" \
       --batches "$BATCHES" --threads 1,2 "$MODEL_DIR" | tee "$OUT/torch.txt"; then
    TORCH_OK=1
    OMP_WAIT_POLICY=passive "$TORCH_PYTHON" tests/bench/bench_torch.py "${DATA_ARGS[@]}" --seconds "$SECS" \
       --batches "$BATCHES" --threads 2 "$MODEL_DIR" | grep '^torch threads' | tee -a "$OUT/torch.txt"
  fi
else
  say "== 2. PyTorch: skipped ($TORCH_PYTHON has no torch; scripts/install-deps.sh --bench installs python3-torch)"
fi

# ---------------------------------------------------------------- 3. HTTP
hr
HTTP_OK=0
if command -v "$WRK" >/dev/null 2>&1; then
  say "== 3. HTTP: inferd serve + wrk on the same $(nproc) CPUs; POST $IMAGE (image/png), 1 image per request, ${HTTP_SECS}s per line"
  # A repository with the model as it is, and a copy whose only change is
  # max_queue_delay_us = 0 (shows what the batching delay costs at low load).
  REPO=$OUT/repo
  mkdir -p "$REPO/$MODEL-nodelay"
  ln -s "$(cd "$MODEL_DIR" && pwd)" "$REPO/$MODEL"
  ln -s "$(cd "$MODEL_DIR" && pwd)/model.safetensors" "$REPO/$MODEL-nodelay/model.safetensors"
  python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c["max_queue_delay_us"]=0; json.dump(c, open(sys.argv[2],"w"), indent=1)' \
    "$MODEL_DIR/config.json" "$REPO/$MODEL-nodelay/config.json" 2>/dev/null || rm -rf "$REPO/$MODEL-nodelay"
  DELAY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("max_queue_delay_us","default"))' "$MODEL_DIR/config.json" 2>/dev/null)
  MAXB=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("max_batch_size","default"))' "$MODEL_DIR/config.json" 2>/dev/null)

  "$INFERD" serve --host 127.0.0.1 --port 0 --models "$REPO" --access-log false --log-level info \
      >"$OUT/daemon.out" 2>"$OUT/daemon.err" &
  DAEMON_PID=$!
  PORT=
  for _ in $(seq 100); do
    PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$OUT/daemon.err" | head -1)
    [ -n "$PORT" ] && break
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$PORT" ]; then
    say "   daemon did not start:"; tail -5 "$OUT/daemon.err"
  else
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    WORKERS=$(sed -n 's|.*ready: \([0-9][0-9]*\) worker(s), \([0-9][0-9]*\) HTTP thread.*|\1 workers, \2 HTTP threads|p' "$OUT/daemon.err" | head -1)
    say "   daemon: port $PORT, defaults (${WORKERS:-workers=auto}), model max_batch_size=$MAXB max_queue_delay_us=$DELAY"
    URL="http://127.0.0.1:$PORT/v1/classifications?model=$MODEL"
    say "   sample answer: $(curl -s --data-binary @"$IMAGE" -H 'Content-Type: image/png' "$URL" | cut -c1-150)"
    cat >"$OUT/post.lua" <<'LUA'
-- POSTs the image in $BENCH_IMAGE; prints one machine-readable line at the end.
local f = assert(io.open(os.getenv("BENCH_IMAGE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/png"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
                         "non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
LUA
    run_wrk() {   # name url conc
      local name=$1 url=$2 c=$3 t=2
      [ "$c" -lt 2 ] && t=1
      BENCH_IMAGE="$ROOT/$IMAGE" "$WRK" -t"$t" -c"$c" -d"${HTTP_SECS}s" --timeout 10s -s "$OUT/post.lua" "$url" \
        >"$OUT/wrk.$name.$c.txt" 2>&1
      awk -v name="$name" -v c="$c" '/^RESULT/ {
          for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
          rps = v["requests"] / (v["duration_us"] / 1e6)
          printf "http model=%s conc=%d img_s=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f requests=%d non2xx=%d errors=%d\n",
                 name, c, rps, v["p50_us"] / 1000, v["p90_us"] / 1000, v["p99_us"] / 1000, v["requests"], v["non2xx"],
                 v["connect_err"] + v["read_err"] + v["write_err"] + v["timeouts"] }' "$OUT/wrk.$name.$c.txt" \
        | tee -a "$OUT/http.txt"
      grep -q '^RESULT' "$OUT/wrk.$name.$c.txt" || { say "   wrk failed:"; tail -3 "$OUT/wrk.$name.$c.txt"; }
    }
    # warm-up (arenas grow to the largest batch, first-touch of weights)
    BENCH_IMAGE="$ROOT/$IMAGE" "$WRK" -t2 -c64 -d1s -s "$OUT/post.lua" "$URL" >/dev/null 2>&1
    for c in ${CONCURRENCY//,/ }; do run_wrk "$MODEL" "$URL" "$c"; done
    if [ -d "$REPO/$MODEL-nodelay" ]; then
      URL0="http://127.0.0.1:$PORT/v1/classifications?model=$MODEL-nodelay"
      for c in 1 64; do run_wrk "$MODEL-nodelay" "$URL0" "$c"; done
    fi
    HTTP_OK=1
  fi
  kill -TERM "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
else
  say "== 3. HTTP: skipped ($WRK is not installed: apt-get install wrk)"
fi
else
  say "== 1-3. image model: skipped (BENCH_PARTS=$PARTS)"
fi   # part image

# ---------------------------------------------------------------- 4. language models
hr
LM_NAMES=
LM_STREAMS=${BENCH_LM_STREAMS:-1,4,16}
LM_STEPS=${BENCH_LM_STEPS:-48}
LM_ROUNDS=${BENCH_LM_HTTP_ROUNDS:-2}
LM_MAXTOK=${BENCH_LM_MAX_TOKENS:-64}
GPT2_VOCAB=${GPT2_VOCAB:-tests/ref/gpt2-vocab}
LLAMA_TOKENIZER=${LLAMA_TOKENIZER:-../shared/data/tokenizer.bin}
MKMODEL=$BUILD/tools/mkmodel
LM_BIN=$BUILD/bench/bench_lm
LM_CC=1
if part lm || part lm110 || part int8; then
  [ -x "$MKMODEL" ] || make -s BUILD="$BUILD" "$MKMODEL" >"$OUT/mkmodel-build.log" 2>&1
  # shellcheck disable=SC2086
  $CC $BENCH_CFLAGS -o "$LM_BIN" tests/bench/bench_lm.c $ENGINE_OBJS $BENCH_LIBS 2>"$OUT/cc-lm.log" || LM_CC=0
fi
if ! part lm; then
  say "== 4. language models: skipped (BENCH_PARTS=$PARTS)"
elif [ ! -x "$MKMODEL" ]; then
  say "== 4. language models: skipped ($MKMODEL is missing and 'make $MKMODEL' failed)"
elif [ "$LM_CC" = 0 ]; then
  say "== 4. language models: skipped (cannot build bench_lm):"; cat "$OUT/cc-lm.log"
else
  say "== 4. language models: decode through eng_lm (engine) and streaming /v1/completions (HTTP)"
  LM_REPO=$OUT/lm-models
  mkdir -p "$LM_REPO"
  # stories15M shape: dim 288, 6 layers, 6 heads (6 kv), hidden 768, context 256
  if [ -f "$LLAMA_TOKENIZER" ] &&
     "$MKMODEL" llama "$LM_REPO/stories15m" "$LLAMA_TOKENIZER" 288 6 6 6 768 256 1 >"$OUT/mkmodel.log" 2>&1; then
    LM_NAMES="stories15m"
  else
    say "   llama: no $LLAMA_TOKENIZER (or mkmodel failed): engine figures from an in-memory stories15M shape, no HTTP"
    rm -rf "$LM_REPO/stories15m"
  fi
  # GPT-2-small shape: dim 768, 12 layers, 12 heads, context 1024 (~500 MB)
  FREE_MB=$(df -Pm "$OUT" 2>/dev/null | awk 'NR == 2 { print $4 }')
  if [ ! -f "$GPT2_VOCAB/vocab.json" ] || [ ! -f "$GPT2_VOCAB/merges.txt" ]; then
    say "   gpt2-small: skipped (no GPT-2 vocabulary in $GPT2_VOCAB: run scripts/fetch-test-vocab.sh)"
  elif [ -n "$FREE_MB" ] && [ "$FREE_MB" -lt 1500 ]; then
    say "   gpt2-small: skipped (only $FREE_MB MB free under $OUT; it needs ~500 MB)"
  elif "$MKMODEL" gpt2 "$LM_REPO/gpt2-small" "$GPT2_VOCAB" 768 12 12 1024 1 >>"$OUT/mkmodel.log" 2>&1; then
    LM_NAMES="$LM_NAMES gpt2-small"
  else
    say "   gpt2-small: mkmodel failed:"; tail -3 "$OUT/mkmodel.log"; rm -rf "$LM_REPO/gpt2-small"
  fi

  # engine: one bench_lm process per model (its own bandwidth figure just before its decode)
  say "   engine: ${LM_STEPS} decode steps per round after an 8-token prompt, median of 3 rounds; bandwidth: 1 thread, 512 MiB"
  : >"$OUT/lm-engine.txt"
  for name in stories15m gpt2-small; do
    dir=(); more=()
    if [ -d "$LM_REPO/$name" ]; then dir=("$LM_REPO/$name")
    elif [ "$name" != stories15m ]; then continue   # stories15m falls back to the in-memory shape
    fi
    # gpt2-small: compute_threads 2 too (PyTorch's best is 2 threads) and the logits PyTorch checks
    [ "$name" = gpt2-small ] && more=(--threads 1,2 --ttft-prompt 128 --dump "$OUT/lm-gpt2-dump")
    "$LM_BIN" --batches "$LM_STREAMS" --steps "$LM_STEPS" --name "$name" "${more[@]}" "${dir[@]}" 2>&1 \
      | sed 's/^/   /' | tee -a "$OUT/lm-engine.txt"
  done
  grep -q 'tok_s_total=' "$OUT/lm-engine.txt" && LM_OK=1

  # PyTorch on the same gpt2-small weights (tests/bench/bench_lm_torch.py), right after the engine
  : >"$OUT/lm-torch.txt"
  if [ ! -d "$LM_REPO/gpt2-small" ]; then
    :
  elif ! "$TORCH_PYTHON" -c 'import torch' >/dev/null 2>&1; then
    say "   PyTorch: skipped ($TORCH_PYTHON cannot import torch)"
  elif [ ! -f "$OUT/lm-gpt2-dump.logits.f32" ]; then
    say "   PyTorch: skipped (bench_lm wrote no logits to check against)"
  else
    say "   PyTorch $("$TORCH_PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null), gpt2-small: the same weights," \
        "GPT-2 in plain torch (KV cache), 2 threads OMP_WAIT_POLICY=passive and 1 thread; load now $(cut -d' ' -f1 /proc/loadavg)"
    OMP_WAIT_POLICY=passive "$TORCH_PYTHON" -W ignore tests/bench/bench_lm_torch.py --threads 2,1 \
        --batches "${LM_STREAMS%%,*},${LM_STREAMS##*,}" --steps "$LM_STEPS" --ttft-prompt 128 --name gpt2-small \
        --check "$OUT/lm-gpt2-dump" "$LM_REPO/gpt2-small" 2>&1 | sed 's/^/   /' | tee "$OUT/lm-torch.txt"
  fi

  # the matmuls of a GPT-2-small step alone (tests/bench/bench_lm_mm.c): the serving kernel at
  # 1/4/16 rows in 4 KiB and huge pages, a prototype tiled kernel, sgemm on 1 and 2 threads
  # shellcheck disable=SC2086
  if [ "${BENCH_LM_MM:-1}" != 0 ] && [ -d "$LM_REPO/gpt2-small" ] &&
     $CC $BENCH_CFLAGS -o "$BUILD/bench/bench_lm_mm" tests/bench/bench_lm_mm.c $ENGINE_OBJS $BENCH_LIBS 2>"$OUT/cc-mm.log"; then
    say "   matmuls of one GPT-2-small step alone (494 MB of weights from DRAM, no attention/norms), median of 3:"
    "$BUILD/bench/bench_lm_mm" --rows "$LM_STREAMS" --rounds 3 2>&1 | sed 's/^/   /' | tee "$OUT/lm-mm.txt"
  fi

  # HTTP: one daemon serving both models
  if [ -n "$LM_NAMES" ]; then
    "$INFERD" serve --host 127.0.0.1 --port 0 --models "$LM_REPO" --access-log false --log-level info \
        >"$OUT/lm-daemon.out" 2>"$OUT/lm-daemon.err" &
    DAEMON_PID=$!
    PORT=
    for _ in $(seq 300); do
      PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$OUT/lm-daemon.err" | head -1)
      [ -n "$PORT" ] && break
      kill -0 "$DAEMON_PID" 2>/dev/null || break
      sleep 0.1
    done
    if [ -z "$PORT" ]; then
      say "   HTTP: daemon did not start:"; tail -5 "$OUT/lm-daemon.err"
    else
      for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
      WORKERS=$(sed -n 's|.*ready: \([0-9][0-9]*\) worker(s).*|\1|p' "$OUT/lm-daemon.err" | head -1)
      say "   HTTP: port $PORT, ${WORKERS:-?} workers; $LM_ROUNDS waves of C streaming requests per line" \
          "(max_tokens $LM_MAXTOK, temperature 0, short text prompt); client: python3 threads on the same CPUs"
      : >"$OUT/lm-http.txt"
      for name in $LM_NAMES; do
        V=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["vocab_size"])' "$LM_REPO/$name/config.json" 2>/dev/null)
        python3 tests/bench/lm_http.py --port "$PORT" --model "$name" --concurrency "$LM_STREAMS" \
            --max-tokens "$LM_MAXTOK" --rounds "$LM_ROUNDS" --ttft-prompt 128 --vocab "${V:-0}" 2>&1 \
          | sed 's/^/   /' | tee -a "$OUT/lm-http.txt"
      done
      grep -q 'tok_s_total=' "$OUT/lm-http.txt" && LM_HTTP_OK=1
    fi
    kill -TERM "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
  else
    say "   HTTP: skipped (no model directory was written)"
  fi
  rm -rf "$LM_REPO"   # ~600 MB
fi

# ---------------------------------------------------------------- 4b. chunked prefill
# 8 streams decoding on a stories110M-shaped llama2.c checkpoint, a 1000-token prompt arriving mid-run; the
# same weights under two ids: the daemon's default prefill_chunk and 0 (whole prompts)
hr
PF_REPO=$OUT/pf-models
FREE_MB=$(df -Pm "$OUT" 2>/dev/null | awk 'NR == 2 { print $4 }')
if part prefill; then
  [ -x "$MKMODEL" ] || make -s BUILD="$BUILD" "$MKMODEL" >"$OUT/mkmodel-build.log" 2>&1
  mkdir -p "$PF_REPO"
fi
if ! part prefill; then
  say "== 4b. chunked prefill: skipped (BENCH_PARTS=$PARTS)"
elif [ ! -x "$MKMODEL" ]; then
  say "== 4b. chunked prefill: skipped ($MKMODEL is missing and 'make $MKMODEL' failed)"
elif [ ! -f "$LLAMA_TOKENIZER" ]; then
  say "== 4b. chunked prefill: skipped (no $LLAMA_TOKENIZER)"
elif [ -n "$FREE_MB" ] && [ "$FREE_MB" -lt 1500 ]; then
  say "== 4b. chunked prefill: skipped (only $FREE_MB MB free under $OUT; it needs ~540 MB)"
elif ! "$MKMODEL" llama2c "$PF_REPO/s110m" "$LLAMA_TOKENIZER" 768 12 12 12 2048 1024 1 >"$OUT/mkmodel-pf.log" 2>&1; then
  say "== 4b. chunked prefill: mkmodel failed:"; tail -3 "$OUT/mkmodel-pf.log"
else
  # the same weights under more ids: s110m-whole (prefill_chunk 0) and s110m-cN for BENCH_PF_CHUNKS
  PF_MODELS="s110m s110m-whole"
  pf_more=${BENCH_PF_CHUNKS:-}
  for c in 0 ${pf_more//,/ }; do
    id=s110m-c$c; [ "$c" = 0 ] && id=s110m-whole || PF_MODELS="$PF_MODELS $id"
    mkdir -p "$PF_REPO/$id"
    for f in "$PF_REPO/s110m"/*; do [ "${f##*/}" = config.json ] || ln -s "$f" "$PF_REPO/$id/"; done
    python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); c["prefill_chunk"] = int(sys.argv[3]); json.dump(c, open(sys.argv[2], "w"))' \
      "$PF_REPO/s110m/config.json" "$PF_REPO/$id/config.json" "$c"
  done
  # engine: the step's cost per chunk size in one process (tests/bench/bench_prefill.c)
  # shellcheck disable=SC2086
  if $CC $BENCH_CFLAGS -o "$BUILD/bench/bench_prefill" tests/bench/bench_prefill.c $ENGINE_OBJS $BENCH_LIBS 2>"$OUT/cc-pf.log"; then
    say "== 4b. chunked prefill, engine: 8 streams' decode step alone and with a prefill chunk of a half-consumed"
    say "   1000-token prompt (stories110M shape, compute pool of $(nproc) threads, median of 5 interleaved rounds):"
    OPENBLAS_NUM_THREADS=1 "$BUILD/bench/bench_prefill" "$PF_REPO/s110m" --threads "$(nproc)" --chunks "8,16,32,64${BENCH_PF_CHUNKS:+,$BENCH_PF_CHUNKS}" \
        --rounds 5 2>&1 | sed 's/^/   /' | tee "$OUT/pf-engine.txt"
  else
    say "== 4b. chunked prefill, engine: cannot build bench_prefill:"; cat "$OUT/cc-pf.log"
  fi
  # --log-level debug: server/gen.c logs each step's start/end (monotonic clock) for prefill_http.py --server-log
  "$INFERD" serve --host 127.0.0.1 --port 0 --models "$PF_REPO" --access-log false --log-level debug \
      >"$OUT/pf-daemon.out" 2>"$OUT/pf-daemon.err" &
  DAEMON_PID=$!
  PORT=
  for _ in $(seq 300); do
    PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$OUT/pf-daemon.err" | head -1)
    [ -n "$PORT" ] && break
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$PORT" ]; then
    say "== 4b. chunked prefill: daemon did not start:"; tail -5 "$OUT/pf-daemon.err"
  else
    PF_CHUNK=$("$INFERD" serve --help 2>&1 | sed -n 's/.*--prefill-chunk .*default: \([0-9][0-9]*\)).*/\1/p' | head -1)
    say "== 4b. chunked prefill: stories110M-shaped llama2.c checkpoint (dim 768, 12 layers, hidden 2048, context 1024,"
    say "   tied classifier, random weights), ${BENCH_PF_STREAMS:-8} streams (max_tokens ${BENCH_PF_MAX_TOKENS:-160}, greedy) and a ${BENCH_PF_PROMPT:-1000}-token prompt arriving after"
    say "   their 24th token; s110m = prefill_chunk ${PF_CHUNK:-default}, s110m-whole = 0 (whole prompts); ITL = gap between"
    say "   a stream's text chunks as one client process sees them (one thread, a selector over all sockets); base = the"
    say "   same streams without the long prompt; others_cpu = the machine's CPU time other processes took during the run;"
    say "   'server' lines, from the daemon's per-step log: step = one step's start to the next's, delivery = a chunk's"
    say "   arrival minus the end of the step that made it; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    # shellcheck disable=SC2046
    python3 tests/bench/prefill_http.py --port "$PORT" $(printf -- '--model %s ' $PF_MODELS) \
        --streams "${BENCH_PF_STREAMS:-8}" --max-tokens "${BENCH_PF_MAX_TOKENS:-160}" --arrive-after 24 \
        --long-prompt "${BENCH_PF_PROMPT:-1000}" --rounds "${BENCH_PF_ROUNDS:-1}" \
        --server-log "$OUT/pf-daemon.err" --server-pid "$DAEMON_PID" 2>&1 | sed 's/^/   /' | tee "$OUT/pf.txt"
    say "   load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  fi
  kill -TERM "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
fi
rm -rf "$PF_REPO"   # ~540 MB

# ---------------------------------------------------------------- 4c. compute pool, stories110M, llama.cpp
# A stories110M-shaped llama2.c checkpoint (dim 768, 12 layers, 12 heads, hidden 2048, vocab 32000,
# context 1024, random weights, ~440 MB; build/tools/mkmodel llama2c) through bench_lm with the
# compute pool at 1 and 2 threads (compute_threads; engine/core/pool.h), next to llama.cpp's own
# figures for the same file (../shared/tools/llamacpp/anchor: F32 and Q8_0, 2 threads; a few
# minutes; run while nothing else of this script runs). BENCH_LM110=0 skips it (as does
# BENCH_PARTS without lm110); BENCH_ANCHOR=0 skips llama.cpp only.
LM110_OK=0
ANCHOR=${ANCHOR:-../shared/tools/llamacpp/anchor}
if part lm110 && [ "${BENCH_LM110:-1}" != 0 ] && [ "$LM_CC" = 1 ] && [ -x "$MKMODEL" ] && [ -f "$LLAMA_TOKENIZER" ]; then
  say "== 4c. compute pool: stories110M-shaped llama2.c checkpoint, compute_threads 1 and 2, beside llama.cpp"
  L110=$OUT/lm110/stories110m
  mkdir -p "$OUT/lm110"
  if "$MKMODEL" llama2c "$L110" "$LLAMA_TOKENIZER" 768 12 12 12 2048 1024 1 >"$OUT/mk110.log" 2>&1; then
    say "   engine: ${LM_STEPS} decode steps per round after an 8-token prompt, median of 3 rounds; bandwidth 1 and 2 threads"
    "$LM_BIN" --threads 1,2 --batches 1,16 --steps "$LM_STEPS" --ttft-prompt 128 --name stories110m "$L110" 2>&1 \
      | sed 's/^/   /' | tee "$OUT/lm110.txt"
    grep -q 'tok_s_total=' "$OUT/lm110.txt" && LM110_OK=1
    : >"$OUT/anchor.txt"
    if [ "${BENCH_ANCHOR:-1}" != 0 ] && [ -x "$ANCHOR" ]; then
      say "   llama.cpp (anchor, 2 threads; load average now $(cut -d' ' -f1 /proc/loadavg)):"
      "$ANCHOR" "$L110/model.bin" "$L110/tokenizer.bin" 2 2>"$OUT/anchor.err" | sed 's/^/   anchor /' | tee "$OUT/anchor.txt"
      [ -s "$OUT/anchor.txt" ] || { say "   anchor printed nothing:"; tail -3 "$OUT/anchor.err"; }
    else
      say "   llama.cpp: skipped (BENCH_ANCHOR=0, or no $ANCHOR)"
    fi
  else
    say "   mkmodel llama2c failed:"; tail -3 "$OUT/mk110.log"
  fi
  rm -rf "$OUT/lm110"
elif part lm110; then
  say "== 4c. compute pool / stories110M: skipped (BENCH_LM110=0, or no bench_lm, mkmodel or $LLAMA_TOKENIZER)"
fi

# ---------------------------------------------------------------- 5. translation (Marian)
MT_OK=0
if ! part translate; then
  say "== 5. translation: skipped (BENCH_PARTS=$PARTS)"
elif ! $CC $BENCH_CFLAGS -o "$BUILD/bench/bench_marian" tests/bench/bench_marian.c $ENGINE_OBJS $BENCH_LIBS 2>"$OUT/cc-mt.log"; then
  say "== 5. translation: skipped (cannot build bench_marian):"; cat "$OUT/cc-mt.log"
elif ! "$TORCH_PYTHON" tests/bench/make_marian_bench.py "$OUT/mt-models/marian-base" >"$OUT/mt-make.log" 2>&1; then
  say "== 5. translation: skipped (make_marian_bench.py needs $TORCH_PYTHON with torch):"; tail -3 "$OUT/mt-make.log"
else
  say "== 5. translation: Marian-base shape (d_model 512, 6+6 layers, ffn 2048, vocab 58101, random weights),"
  say "   greedy decoding of 20-token sources, 20 output tokens each"
  : >"$OUT/mt.txt"
  for T in 1 2; do
    "$BUILD/bench/bench_marian" --threads "$T" --batches 1,16 --rounds 3 --dump "$OUT/mt-dump.txt" \
        "$OUT/mt-models/marian-base" 2>&1 | grep -v '^marian model=' | sed 's/^/   engine /' | tee -a "$OUT/mt.txt"
  done
  OMP_WAIT_POLICY=passive "$TORCH_PYTHON" -W ignore tests/bench/bench_marian_torch.py --threads 2 --batches 1,16 \
      --rounds 3 --check "$OUT/mt-dump.txt" "$OUT/mt-models/marian-base" 2>&1 | sed 's/^/   /' | tee -a "$OUT/mt.txt"
  grep -q 'sent_s=' "$OUT/mt.txt" && MT_OK=1
  # the default translator too (character LSTM with attention: small, fast steps)
  [ -f "$MODELS_DIR/en-de/config.json" ] && ln -s "$(cd "$MODELS_DIR/en-de" && pwd)" "$OUT/mt-models/en-de"
  "$INFERD" serve --host 127.0.0.1 --port 0 --models "$OUT/mt-models" --access-log false --log-level info \
      >"$OUT/mt-daemon.out" 2>"$OUT/mt-daemon.err" &
  DAEMON_PID=$!
  PORT=
  for _ in $(seq 300); do
    PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$OUT/mt-daemon.err" | head -1)
    [ -n "$PORT" ] && break
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$PORT" ]; then
    say "   HTTP: daemon did not start:"; tail -5 "$OUT/mt-daemon.err"
  else
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    for M in marian-base en-de; do
      [ -e "$OUT/mt-models/$M" ] || continue
      python3 tests/bench/translate_http.py --port "$PORT" --model "$M" --concurrency 1,16 --beams 1,4 \
          --seconds "${BENCH_MT_SECONDS:-5}" 2>&1 | sed 's/^/   HTTP /' | tee -a "$OUT/mt.txt"
    done
  fi
  kill -TERM "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
  rm -rf "$OUT/mt-models"   # ~300 MB
fi

# ---------------------------------------------------------------- 7. text classification
TEXT_OK=0
if part text; then
  hr
  say "== 7. text classification: langid through the engine, 1 thread, ${SECS}s per line (median of 5 rounds)"
  TEXT_BIN=$BUILD/bench/bench_text
  TEXT_DATA=$OUT/langid
  # shellcheck disable=SC2086
  if [ ! -f "$MODELS_DIR/langid/config.json" ]; then
    say "   skipped: $MODELS_DIR/langid is missing (make models)"
  elif ! $CC $BENCH_CFLAGS -o "$TEXT_BIN" tests/bench/bench_text.c $ENGINE_OBJS $BENCH_LIBS 2>"$OUT/cc-text.log"; then
    say "   skipped: cannot build bench_text:"; cat "$OUT/cc-text.log"
  elif ! python3 scripts/data/langid-fortunes.py "$TEXT_DATA" 2>"$OUT/langid-data.log"; then
    say "   skipped: no held-out fortunes (scripts/data/langid-fortunes.py failed; install-deps.sh installs the fortunes):"
    tail -3 "$OUT/langid-data.log"
  else
    say "   texts: held-out fortunes of at most 80 bytes; texts_s = text -> ids + classify_text, classify_only = the forward pass"
    "$TEXT_BIN" --seconds "$SECS" --batches 1,32 --max-bytes 80 "$MODELS_DIR/langid" "$TEXT_DATA/test.tsv" 2>&1 \
      | sed 's/^/   /' | tee "$OUT/text.txt"
    grep -q 'texts_s=' "$OUT/text.txt" && TEXT_OK=1
  fi
fi

# ---------------------------------------------------------------- 8. text classification (BERT-base)
BERT_OK=0
if ! part bert; then
  say "== 8. BERT: skipped (BENCH_PARTS=$PARTS)"
elif ! $CC $BENCH_CFLAGS -o "$BUILD/bench/bench_bert" tests/bench/bench_bert.c $ENGINE_OBJS $BENCH_LIBS 2>"$OUT/cc-bert.log"; then
  say "== 8. BERT: skipped (cannot build bench_bert):"; cat "$OUT/cc-bert.log"
elif ! "$TORCH_PYTHON" tests/bench/bench_bert.py make "$OUT/bert-base" >"$OUT/bert-make.log" 2>&1; then
  say "== 8. BERT: skipped (bench_bert.py needs $TORCH_PYTHON with torch):"; tail -3 "$OUT/bert-make.log"
else
  BR=${BENCH_BERT_ROUNDS:-3}
  say "== 8. BERT-base encoder (hidden 768, 12 layers, 12 heads, random weights): texts/s of classify_text vs PyTorch,"
  say "   2 threads each; median of $BR rounds (best round too: the machine is shared)"
  : >"$OUT/bert.txt"
  "$BUILD/bench/bench_bert" --dump "$OUT/bert-dump" "$OUT/bert-base" >/dev/null
  OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive "$TORCH_PYTHON" -W ignore tests/bench/bench_bert.py run "$OUT/bert-base" \
      --batches 1 --rounds 1 --check "$OUT/bert-dump" 2>&1 | grep '^check' | sed 's/^/   /' | tee -a "$OUT/bert.txt"
  for args in "2 --batches 1,32 --len 64" "2 --batches 32 --mixed" "1 --batches 1 --len 64"; do
    T=${args%% *}; args=${args#* }
    # shellcheck disable=SC2086
    "$BUILD/bench/bench_bert" --threads "$T" --rounds "$BR" $args "$OUT/bert-base" 2>&1 | sed 's/^/   /' | tee -a "$OUT/bert.txt"
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=$T OMP_WAIT_POLICY=passive "$TORCH_PYTHON" -W ignore tests/bench/bench_bert.py run "$OUT/bert-base" \
        --rounds "$BR" $args 2>&1 | grep '^torch' | sed 's/^/   /' | tee -a "$OUT/bert.txt"
  done
  grep -q 'engine threads=2 batch=32' "$OUT/bert.txt" && BERT_OK=1
  rm -rf "$OUT/bert-base"   # ~440 MB
fi

# ---------------------------------------------------------------- 9. serving next to a training job
JOBS_OK=0
if part jobs; then
  hr
  JOBS_SECS=${BENCH_JOBS_SECONDS:-10}
  say "== 9. classification latency with and without a training job (tests/bench/jobs_latency.py, ${JOBS_SECS}s per phase)"
  if [ ! -f "$MODELS_DIR/$MODEL/config.json" ] || [ ! -f /usr/share/games/fortunes/fortunes ]; then
    say "   skipped: needs $MODELS_DIR/$MODEL and /usr/share/games/fortunes/fortunes"
  else
    JREPO=$OUT/jobs-repo
    mkdir -p "$JREPO" "$OUT/jobs-data"
    ln -s "$(cd "$MODELS_DIR/$MODEL" && pwd)" "$JREPO/$MODEL"
    "$INFERD" serve --host 127.0.0.1 --port 0 --models "$JREPO" --data-dir "$OUT/jobs-data" --access-log false \
        >"$OUT/jobs-daemon.out" 2>"$OUT/jobs-daemon.err" &
    DAEMON_PID=$!
    PORT=
    for _ in $(seq 100); do
      PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$OUT/jobs-daemon.err" | head -1)
      [ -n "$PORT" ] && break
      kill -0 "$DAEMON_PID" 2>/dev/null || break
      sleep 0.1
    done
    if [ -z "$PORT" ]; then
      say "   daemon did not start:"; tail -5 "$OUT/jobs-daemon.err"
    else
      say "   daemon: defaults (workers = CPUs, max_running_jobs 1, train_threads 1: the job runs at nice +10 on the last CPU);"
      say "   2 clients POST $IMAGE back to back; the job: a GPT (dim 64, 2 layers, context 64) on the fortunes, batch 16"
      head -c 300000 /usr/share/games/fortunes/fortunes >"$OUT/jobs-text.txt"
      python3 tests/bench/jobs_latency.py --port "$PORT" --model "$MODEL" --image "$IMAGE" --text "$OUT/jobs-text.txt" \
        --seconds "$JOBS_SECS" --clients 2 2>&1 | sed 's/^/   /' | tee "$OUT/jobs.txt"
      grep -q 'phase=training' "$OUT/jobs.txt" && JOBS_OK=1
    fi
    kill -TERM "$DAEMON_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    DAEMON_PID=
  fi
fi

# ---------------------------------------------------------------- 10. image generation
GEN_OK=0
if part gen; then
  hr
  say "== 10. image generation: fashion-dcgan through the engine, 1 thread, ${SECS}s per line (median of 5 rounds)"
  GEN_BIN=$BUILD/bench/bench_dcgan
  # shellcheck disable=SC2086
  if [ ! -f "$MODELS_DIR/fashion-dcgan/config.json" ]; then
    say "   skipped: $MODELS_DIR/fashion-dcgan is missing (make models)"
  elif ! $CC $BENCH_CFLAGS -o "$GEN_BIN" tests/bench/bench_dcgan.c $ENGINE_OBJS $BENCH_LIBS 2>"$OUT/cc-gen.log"; then
    say "   skipped: cannot build bench_dcgan:"; cat "$OUT/cc-gen.log"
  else
    say "   images_s = latents + generate_images + one PNG per image; generate_only = the generator alone"
    say "   gen = serving (batch norm folded, one product per layer for the batch); gen-plain = the path it replaced"
    say "   (one tape forward per image), alternate rounds; cpu_us_img = the generator's process CPU time per image"
    OPENBLAS_NUM_THREADS=1 "$GEN_BIN" --seconds "$SECS" --n 1,64 --compare "$MODELS_DIR/fashion-dcgan" 2>&1 \
      | sed 's/^/   /' | tee "$OUT/gen.txt"
    grep -q 'images_s=' "$OUT/gen.txt" && GEN_OK=1
  fi
fi

# ---------------------------------------------------------------- 6. summary
# field NAME from the line of FILE matching PATTERN
get() { grep -E "$2" "$1" 2>/dev/null | head -1 | sed -n "s/.* $3=\([^ ]*\).*/\1/p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
num() { [ -n "$1" ] && printf '%.0f' "$1" || printf -- '-'; }

hr
say "== SUMMARY (median of rounds; every ratio is from this run)"
say ""
if part image; then   # not indented
printf '%-22s %12s %12s %12s   %s\n' "engine (img/s)" "1 thread" "2 threads" "2 workers" "2 threads/1, 2 workers/1"
for B in ${BATCHES//,/ }; do
  e1=$(get "$OUT/engine.txt" "threads=1 batch=$B " img_s)
  e2=$(get "$OUT/engine.txt" "threads=2 batch=$B " img_s)
  ew=$(get "$OUT/engine.txt" "threads=2x1 batch=$B " img_s)
  printf '%-22s %12s %12s %12s   %s, %s\n' "  B=$B" "$(num "$e1")" "$(num "$e2")" "$(num "$ew")" \
    "$(ratio "$e2" "$e1")" "$(ratio "$ew" "$e1")"
done
if [ -s "$OUT/engine-fold.txt" ]; then
  printf '%-22s %12s %12s %17s   %s\n' "folded, 1 thread" "img/s" "unfolded" "CPU us/img f / u" "folded/unfolded: img/s, CPU time"
  for B in ${BATCHES//,/ }; do
    f=$(get "$OUT/engine-fold.txt" "engine threads=1 batch=$B " img_s)
    p=$(get "$OUT/engine-fold.txt" "engine-plain threads=1 batch=$B " img_s)
    fc=$(get "$OUT/engine-fold.txt" "engine threads=1 batch=$B " cpu_us_img)
    pc=$(get "$OUT/engine-fold.txt" "engine-plain threads=1 batch=$B " cpu_us_img)
    printf '%-22s %12s %12s %17s   %s, %s\n' "  B=$B" "$(num "$f")" "$(num "$p")" "${fc:--} / ${pc:--}" \
      "$(ratio "$f" "$p")" "$(ratio "$pc" "$fc")"
  done
fi
say ""
if [ "$TORCH_OK" = 1 ]; then
  printf '%-22s %12s %12s %12s   %s\n' "PyTorch (img/s)" "1 thread" "2 threads" "2 passive" \
    "inferd/PyTorch: 1 thread each, best config each"
  for B in ${BATCHES//,/ }; do
    e1=$(get "$OUT/engine.txt" "threads=1 batch=$B " img_s)
    e2=$(get "$OUT/engine.txt" "threads=2 batch=$B " img_s)
    ew=$(get "$OUT/engine.txt" "threads=2x1 batch=$B " img_s)
    t1=$(get "$OUT/torch.txt" "threads=1 batch=$B " img_s)
    t2=$(get "$OUT/torch.txt" "threads=2 batch=$B " img_s)
    tp=$(get "$OUT/torch.txt" "threads=2p batch=$B " img_s)
    eb=$(printf '%s\n' "$e1" "$e2" "$ew" | sed '/^$/d' | sort -g | tail -1)
    tb=$(printf '%s\n' "$t1" "$t2" "$tp" | sed '/^$/d' | sort -g | tail -1)
    printf '%-22s %12s %12s %12s   %s, %s\n' "  B=$B" "$(num "$t1")" "$(num "$t2")" "$(num "$tp")" \
      "$(ratio "$e1" "$t1")" "$(ratio "$eb" "$tb")"
  done
  say "  (best config: inferd of 1 thread / 2 BLAS threads / 2 workers; PyTorch of 1 / 2 / 2 passive)"
  say "  equal computations: $(sed -n 's/^check //p' "$OUT/check.txt" 2>/dev/null)"
else
  say "PyTorch: skipped"
fi
say ""
if [ "$HTTP_OK" = 1 ]; then
  printf '%-22s %12s %12s %12s %12s\n' "HTTP (1 image/req)" "img/s" "p50 ms" "p99 ms" "non-2xx/err"
  for name in "$MODEL" "$MODEL-nodelay"; do
    grep -q "model=$name " "$OUT/http.txt" 2>/dev/null || continue
    [ "$name" != "$MODEL" ] && say "  with max_queue_delay_us=0 (copy of the model's config):"
    while read -r line; do
      c=$(sed -n 's/.* conc=\([0-9]*\).*/\1/p' <<<"$line")
      printf '%-22s %12s %12s %12s %12s\n' "  c=$c" "$(num "$(sed -n 's/.* img_s=\([^ ]*\).*/\1/p' <<<"$line")")" \
        "$(sed -n 's/.* p50_ms=\([^ ]*\).*/\1/p' <<<"$line")" "$(sed -n 's/.* p99_ms=\([^ ]*\).*/\1/p' <<<"$line")" \
        "$(sed -n 's/.* non2xx=\([0-9]*\) errors=\([0-9]*\).*/\1\/\2/p' <<<"$line")"
    done < <(grep "model=$name " "$OUT/http.txt")
  done
  lo=${CONCURRENCY%%,*}; hi=${CONCURRENCY##*,}
  h1=$(get "$OUT/http.txt" "model=$MODEL conc=$lo " img_s)
  h64=$(get "$OUT/http.txt" "model=$MODEL conc=$hi " img_s)
  say "  c$hi/c$lo throughput ratio: $(ratio "$h64" "$h1")"
  ebest=$(sed -n 's/.* img_s=\([^ ]*\).*/\1/p' "$OUT/engine.txt" | sort -g | tail -1)
  [ -n "$ebest" ] && say "  HTTP c$hi / best engine figure above: $(ratio "$h64" "$ebest")   (share of the raw compute rate the server delivers)"
  say "  (daemon and wrk share the same $(nproc) CPUs; wrk's own CPU time is part of the figure)"
else
  say "HTTP: skipped"
fi
say ""
fi   # part image
if [ "$LM_OK" = 1 ]; then
  say "LM: decode tokens/s, per stream and total (engine: bench_lm through eng_lm; HTTP: streaming /v1/completions,"
  say "    $LM_MAXTOK tokens, temperature 0; TTFT = send -> first text chunk, median over streams)"
  printf '%-14s %7s %12s %12s %12s %12s %12s %12s\n' "model" "streams" "engine total" "engine/strm" "ms/step" \
    "HTTP total" "HTTP/strm" "HTTP TTFT ms"
  for name in stories15m gpt2-small; do
    grep -q "model=$name " "$OUT/lm-engine.txt" 2>/dev/null || continue
    for N in ${LM_STREAMS//,/ }; do
      et=$(get "$OUT/lm-engine.txt" "model=$name threads=1 batch=$N " tok_s_total)
      es=$(get "$OUT/lm-engine.txt" "model=$name threads=1 batch=$N " tok_s_stream)
      ms=$(get "$OUT/lm-engine.txt" "model=$name threads=1 batch=$N " ms_step)
      ht=$(get "$OUT/lm-http.txt" "model=$name conc=$N " tok_s_total)
      hs=$(get "$OUT/lm-http.txt" "model=$name conc=$N " tok_s_stream)
      hf=$(get "$OUT/lm-http.txt" "model=$name conc=$N " ttft_ms)
      printf '%-14s %7s %12s %12s %12s %12s %12s %12s\n' "$name" "$N" "$(num "$et")" "$(num "$es")" "${ms:--}" \
        "$(num "$ht")" "$(num "$hs")" "${hf:--}"
    done
    w=$(get "$OUT/lm-engine.txt" "model=$name arch=" weight_MB_per_step)
    bw=$(get "$OUT/lm-engine.txt" "model=$name roofline_tok_s=" bandwidth_GB_s)
    roof=$(get "$OUT/lm-engine.txt" "model=$name roofline_tok_s=" roofline_tok_s)
    roof4=$(get "$OUT/lm-engine.txt" "model=$name roofline_tok_s=" roofline_4k_tok_s)
    roofh=$(get "$OUT/lm-engine.txt" "model=$name roofline_tok_s=" roofline_huge_tok_s)
    onh=$(get "$OUT/lm-engine.txt" "model=$name roofline_tok_s=" weights_on_huge)
    frac=$(get "$OUT/lm-engine.txt" "model=$name threads=1 batch=1 " roofline_frac)
    gbs=$(get "$OUT/lm-engine.txt" "model=$name threads=1 batch=1 " weights_GB_s)
    lo=${LM_STREAMS%%,*}; hi=${LM_STREAMS##*,}
    e1=$(get "$OUT/lm-engine.txt" "model=$name threads=1 batch=$lo " tok_s_total)
    e16=$(get "$OUT/lm-engine.txt" "model=$name threads=1 batch=$hi " tok_s_total)
    h1=$(get "$OUT/lm-http.txt" "model=$name conc=$lo " tok_s_total)
    h16=$(get "$OUT/lm-http.txt" "model=$name conc=$hi " tok_s_total)
    ett=$(get "$OUT/lm-engine.txt" "model=$name threads=1 ttft_prompt=" ttft_ms)
    htt=$(get "$OUT/lm-http.txt" "model=$name ttft_prompt=" ttft_ms)
    say "  $name: roofline (1 stream) = ${bw:--} GB/s (1 thread; ${onh:--} of the weights on huge pages) / ${w:--} MB of" \
        "weights per token = $(num "$roof") tok/s (all 4 KiB pages: $(num "$roof4"), all huge pages: $(num "$roofh"))"
    say "  $name: engine 1 stream = ${frac:--} of the roofline (aim >= 0.60; weights read at ${gbs:--} GB/s);" \
        "${hi}/${lo} total: engine $(ratio "$e16" "$e1")x, HTTP $(ratio "$h16" "$h1")x (aim >= 6)"
    say "  $name: TTFT, 128-token prompt, one request: engine ${ett:--} ms (prefill + first sample), HTTP ${htt:--} ms;" \
        "HTTP/engine 1 stream $(ratio "$h1" "$e1")"
  done
  [ "$LM_HTTP_OK" = 1 ] || say "  (HTTP: not measured)"
  if grep -q 'lm_torch model=gpt2-small threads=' "$OUT/lm-torch.txt" 2>/dev/null; then
    lo=${LM_STREAMS%%,*}; hi=${LM_STREAMS##*,}
    say "  gpt2-small, inferd (bench_lm, compute_threads T) beside PyTorch (T threads; 2 with OMP_WAIT_POLICY=passive);"
    say "  ratio = inferd / PyTorch speed (> 1: inferd faster); $(grep -m1 'check model=gpt2-small' "$OUT/lm-torch.txt" | sed 's/^ *//')"
    printf '  %-30s %10s %10s %7s %10s %10s %7s\n' "" "inferd 1t" "PyTorch 1t" "ratio" "inferd 2t" "PyTorch 2p" "ratio"
    for row in "decode, $lo stream(s), tok/s|batch=$lo |tok_s_total|up" "decode, $hi streams total, tok/s|batch=$hi |tok_s_total|up" \
               "prefill, 128-token prompt, ms|ttft_prompt=128 |ttft_ms|down"; do
      IFS='|' read -r label sel key dir <<<"$row"
      e1=$(get "$OUT/lm-engine.txt" "lm model=gpt2-small threads=1 $sel" "$key")
      e2=$(get "$OUT/lm-engine.txt" "lm model=gpt2-small threads=2 $sel" "$key")
      t1=$(get "$OUT/lm-torch.txt" "lm_torch model=gpt2-small threads=1 $sel" "$key")
      t2=$(get "$OUT/lm-torch.txt" "lm_torch model=gpt2-small threads=2p $sel" "$key")
      if [ "$dir" = up ]; then r1=$(ratio "$e1" "$t1"); r2=$(ratio "$e2" "$t2"); else r1=$(ratio "$t1" "$e1"); r2=$(ratio "$t2" "$e2"); fi
      printf '  %-30s %10s %10s %7s %10s %10s %7s\n' "$label" "${e1:--}" "${t1:--}" "$r1" "${e2:--}" "${t2:--}" "$r2"
    done
    say "  (aim: prefill faster than PyTorch at its best setting, i.e. the 2p column's ratio > 1)"
  fi
  if [ -s "$OUT/lm-mm.txt" ]; then
    mm() { get "$OUT/lm-mm.txt" "kernel=$1 pages=$2 M=$3 " "$4"; }
    lo=${LM_STREAMS%%,*}; hi=${LM_STREAMS##*,}
    say "  gpt2-small matmuls alone, ms per step: $lo row: $(mm rowwise 4k "$lo" ms_step) (4 KiB pages," \
        "$(mm rowwise 4k "$lo" weights_GB_s) GB/s), $(mm rowwise huge "$lo" ms_step) (huge pages," \
        "$(mm rowwise huge "$lo" weights_GB_s) GB/s): huge/4k speed-up $(ratio "$(mm rowwise 4k "$lo" ms_step)" "$(mm rowwise huge "$lo" ms_step)")"
    say "  gpt2-small matmuls alone, $hi rows, GFLOP/s: serving kernel $(mm rowwise 4k "$hi" GFLOP_s)," \
        "tiled prototype $(mm tile 4k "$hi" GFLOP_s), sgemm $(mm sgemm 4k "$hi" GFLOP_s)," \
        "sgemm 2 threads $(mm sgemm-2threads 4k "$hi" GFLOP_s); matmul-only $hi/$lo total ratio" \
        "$(awk -v a="$(mm rowwise 4k "$lo" ms_step)" -v b="$(mm rowwise 4k "$hi" ms_step)" -v n="$hi" -v m="$lo" \
           'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", (n / m) * a / b }')x"
  fi
else
  say "LM: skipped"
fi
if [ -s "$OUT/pf.txt" ] && grep -q 'run=long' "$OUT/pf.txt"; then
  say "Chunked prefill: 8 streams' inter-token latency (ms), without / with a 1000-token prompt arriving mid-run"
  printf '%-30s %9s %9s %9s %9s %9s %12s %14s\n' "" "base med" "base p99" "long med" "long p99" "long max" \
    "p99/base med" "long TTFT ms"
  for name in $PF_MODELS; do
    case $name in
      s110m) label="prefill_chunk ${PF_CHUNK:-default} (s110m)" ;;
      s110m-whole) label="whole prompts (s110m-whole)" ;;
      *) label="prefill_chunk ${name#s110m-c} ($name)" ;;
    esac
    printf '%-30s %9s %9s %9s %9s %9s %12s %14s\n' "  $label" "$(get "$OUT/pf.txt" "model=$name run=base" itl_med_ms)" \
      "$(get "$OUT/pf.txt" "model=$name run=base" itl_p99_ms)" "$(get "$OUT/pf.txt" "model=$name run=long" itl_med_ms)" \
      "$(get "$OUT/pf.txt" "model=$name run=long" itl_p99_ms)" "$(get "$OUT/pf.txt" "model=$name run=long" itl_max_ms)" \
      "$(get "$OUT/pf.txt" "model=$name run=long" p99_over_base_med)" "$(get "$OUT/pf.txt" "model=$name run=long" long_ttft_ms)"
  done
  say "  (aim: p99 within 3x the median with chunking; the whole-prompt run's stall is its max: one gap per stream)"
  say "  where the gaps come from (the daemon's step log): step period and delivery (step end -> client), ms;"
  say "  others = the machine's CPU time taken by other processes during the run:"
  printf '%-30s %9s %9s %9s %9s %9s\n' "" "step med" "step p99" "deliv med" "deliv p99" "others"
  for name in $PF_MODELS; do
    for run in base long; do
      printf '%-30s %9s %9s %9s %9s %9s\n' "  $name $run" "$(get "$OUT/pf.txt" "model=$name run=$run server" step_med_ms)" \
        "$(get "$OUT/pf.txt" "model=$name run=$run server" step_p99_ms)" "$(get "$OUT/pf.txt" "model=$name run=$run server" delivery_med_ms)" \
        "$(get "$OUT/pf.txt" "model=$name run=$run server" delivery_p99_ms)" "$(get "$OUT/pf.txt" "model=$name run=$run itl" others_cpu)"
    done
  done
fi
if [ -s "$OUT/pf-engine.txt" ]; then
  say "  engine, one process: step time with a prefill chunk / decode-only step (the streams' slow-down), est. TTFT:"
  sed -n 's/.*chunk=\([0-9a-z]*\) step_ms=\([^ ]*\) ratio=\([^ ]*\)\( ttft_est_s=\([^ ]*\)\)\{0,1\}.*/    chunk \1: \2 ms, \3x\4/p' \
    "$OUT/pf-engine.txt" | sed 's/ ttft_est_s=\(.*\)$/, TTFT ~\1 s/'
fi
say ""
if [ "$LM110_OK" = 1 ]; then
  f110() { get "$OUT/lm110.txt" "model=stories110m threads=$1 $2" "$3"; }
  anc() { awk -F'\t' -v f="$1" -v k="$2" '$1 ~ "anchor " f "$" && $2 == k { print $3; exit }' "$OUT/anchor.txt" 2>/dev/null; }
  say "stories110M shape (llama2.c checkpoint, random weights), tokens/s; inferd by compute_threads; llama.cpp 2 threads:"
  printf '%-26s %10s %10s %10s %12s %12s %14s\n' "" "inferd 1t" "inferd 2t" "2t/1t" "llama.cpp F32" "Q8_0" "inferd 2t/F32"
  for row in "decode, 1 stream|batch=1 |tok_s_stream|tg128" "decode, 16 streams total|batch=16 |tok_s_total|gen_b16" \
             "prefill, 128-token prompt|ttft_prompt=|prefill_tok_s|pp128"; do
    IFS='|' read -r label sel key ak <<<"$row"
    a=$(f110 1 "$sel" "$key"); b=$(f110 2 "$sel" "$key"); c=$(anc f32 "$ak"); d=$(anc q8_0 "$ak")
    printf '%-26s %10s %10s %10s %12s %12s %14s\n' "$label" "$(num "$a")" "$(num "$b")" "$(ratio "$b" "$a")" \
      "$(num "$c")" "$(num "$d")" "$(ratio "$b" "$c")"
  done
  say "  1 stream at 2 threads: weights read at $(f110 2 'batch=1 ' weights_GB_s) GB/s = $(f110 2 'batch=1 ' bw_frac) of the" \
      "2-thread read bandwidth ($(get "$OUT/lm110.txt" 'bandwidth pages=4k mib=[0-9]* threads=2 ' GB_s_median) GB/s; aim >= 0.95);" \
      "16 streams / 1 stream at 2 threads: $(get "$OUT/lm110.txt" 'model=stories110m threads=2 scaling=' total_ratio)x (aim >= 6)"
  say "  (llama.cpp's 16-stream figure: llama-batched-bench, 16-token prompts, 64 new tokens each)"
elif part lm110; then
  say "stories110M / compute pool: not measured"
fi
say ""
if [ "$MT_OK" = 1 ]; then
  say "Translation, Marian-base shape, greedy, 20 tokens out (sentences/s):"
  e11=$(get "$OUT/mt.txt" "engine marian threads=1 batch=1 " sent_s); e116=$(get "$OUT/mt.txt" "engine marian threads=1 batch=16 " sent_s)
  e21=$(get "$OUT/mt.txt" "engine marian threads=2 batch=1 " sent_s); e216=$(get "$OUT/mt.txt" "engine marian threads=2 batch=16 " sent_s)
  t1=$(get "$OUT/mt.txt" "torch threads=2p batch=1 " sent_s); t16=$(get "$OUT/mt.txt" "torch threads=2p batch=16 " sent_s)
  say "  engine 1 thread: batch 1 ${e11:--}, batch 16 ${e116:--} ($(ratio "$e116" "$e11")x); 2 threads: ${e21:--}, ${e216:--}"
  say "  PyTorch 2 threads passive: batch 1 ${t1:--}, batch 16 ${t16:--}; engine 2 threads / PyTorch:" \
      "$(ratio "$e21" "$t1") (batch 1), $(ratio "$e216" "$t16") (batch 16); $(grep -m1 '^ *check ' "$OUT/mt.txt" | sed 's/^ *//')"
  grep ' translate model=' "$OUT/mt.txt" | sed 's/^ *HTTP translate /  HTTP /'
else
  say "Translation: skipped"
fi
say ""
if [ "$TEXT_OK" = 1 ]; then
  say "text classification (langid, 1 thread, held-out fortunes <= 80 bytes; aim >= 20,000 texts/s):"
  for B in 1 32; do
    say "  batch $B: $(num "$(get "$OUT/text.txt" "batch=$B " texts_s)") texts/s (text -> ids + forward)," \
        "$(num "$(get "$OUT/text.txt" "batch=$B " classify_only_texts_s)") texts/s forward alone"
  done
elif part text; then
  say "text classification: not measured"
fi
say ""
if [ "$BERT_OK" = 1 ]; then
  say "BERT-base encoder, texts/s (same thread count each; PyTorch: OMP_WAIT_POLICY=passive):"
  for sel in "2 batch=1 len=64" "2 batch=32 len=64" "2 batch=32 len=mixed" "1 batch=1 len=64"; do
    T=${sel%% *}; sel=${sel#* }
    e=$(get "$OUT/bert.txt" "engine threads=$T $sel " texts_s); t=$(get "$OUT/bert.txt" "torch threads=${T}p $sel " texts_s)
    eb=$(get "$OUT/bert.txt" "engine threads=$T $sel " best_texts_s); tb=$(get "$OUT/bert.txt" "torch threads=${T}p $sel " best_texts_s)
    say "  $T thread(s) $sel: engine ${e:--} (best ${eb:--}), PyTorch ${t:--} (best ${tb:--});" \
        "engine/PyTorch $(ratio "$e" "$t") (best $(ratio "$eb" "$tb"))"
  done
  say "  $(grep -m1 '^ *check ' "$OUT/bert.txt" | sed 's/^ *//')   (aim: batch 32 engine/PyTorch >= 1)"
else
  say "BERT: skipped"
fi
say ""
if [ "$JOBS_OK" = 1 ]; then
  say "classification next to a training job (2 clients, ms):"
  for ph in idle training; do
    say "  $ph: p50 $(get "$OUT/jobs.txt" "phase=$ph " p50_ms), p99 $(get "$OUT/jobs.txt" "phase=$ph " p99_ms)," \
        "$(get "$OUT/jobs.txt" "phase=$ph " req_s) req/s"
  done
  say "  p99 training / idle: $(ratio "$(get "$OUT/jobs.txt" "phase=training " p99_ms)" "$(get "$OUT/jobs.txt" "phase=idle " p99_ms)")x;" \
      "the job meanwhile: $(get "$OUT/jobs.txt" "jobs training " steps_s) steps/s"
elif part jobs; then
  say "training jobs: not measured"
fi

say ""
if [ "$GEN_OK" = 1 ]; then
  say "image generation (fashion-dcgan, 1 thread; generations/s):"
  for N in 1 64; do
    say "  n=$N: $(num "$(get "$OUT/gen.txt" "^ *gen model.* n=$N " images_s)") images/s ($(get "$OUT/gen.txt" "^ *gen model.* n=$N " requests_s) requests/s)," \
        "$(num "$(get "$OUT/gen.txt" "^ *gen model.* n=$N " generate_only_images_s)") images/s generator alone;" \
        "folded/unfolded generator $(ratio "$(get "$OUT/gen.txt" "^ *gen model.* n=$N " generate_only_images_s)" \
        "$(get "$OUT/gen.txt" "gen-plain .* n=$N " generate_only_images_s)")x (CPU time $(ratio \
        "$(get "$OUT/gen.txt" "gen-plain .* n=$N " cpu_us_img)" "$(get "$OUT/gen.txt" "^ *gen model.* n=$N " cpu_us_img)")x)"
  done
elif part gen; then
  say "image generation: not measured"
fi

# ---------------------------------------------------------------- 11. stylization
say ""
if ! part style; then
  say "== 11. stylization: skipped (BENCH_PARTS=$PARTS)"
elif ! $CC $BENCH_CFLAGS -o "$BUILD/bench/bench_stylize" tests/bench/bench_stylize.c $ENGINE_OBJS $BENCH_LIBS 2>"$OUT/cc-st.log"; then
  say "== 11. stylization: skipped (cannot build bench_stylize):"; cat "$OUT/cc-st.log"
elif ! "$TORCH_PYTHON" tests/bench/bench_stylize.py make "$OUT/style-full" >"$OUT/st-make.log" 2>&1; then
  say "== 11. stylization: skipped (bench_stylize.py needs $TORCH_PYTHON with torch):"; tail -3 "$OUT/st-make.log"
else
  say "== 11. stylization: TransformerNet, full width (1.68 M parameters, random weights), one image per call"
  : >"$OUT/st.txt"
  for T in 2 1; do
    "$BUILD/bench/bench_stylize" --threads "$T" --sizes 256,512 --rounds 3 --dump "$OUT/st-dump.bin" "$OUT/style-full" \
      2>&1 | sed 's/^/   /' | tee -a "$OUT/st.txt"
  done
  OMP_WAIT_POLICY=passive "$TORCH_PYTHON" -W ignore tests/bench/bench_stylize.py run --threads 2 --sizes 256,512 \
      --rounds 3 --check "$OUT/st-dump.bin" "$OUT/style-full" 2>&1 | sed 's/^/   /' | tee -a "$OUT/st.txt"
  for S in 256 512; do
    e=$(get "$OUT/st.txt" "engine threads=2 size=$S " ms_image); t=$(get "$OUT/st.txt" "torch threads=2p size=$S " ms_image)
    say "   ${S}x${S}, 2 threads: engine ${e:--} ms, PyTorch ${t:--} ms; PyTorch/engine $(ratio "$t" "$e") (aim > 1)"
  done
fi

# ---------------------------------------------------------------- 12. matmul kernels
say ""
if ! part gemm; then
  say "== 12. matmul kernels: skipped (BENCH_PARTS=$PARTS)"
elif ! $CC $BENCH_CFLAGS -o "$BUILD/bench/bench_gemm" tests/bench/bench_gemm.c $ENGINE_OBJS $BENCH_LIBS 2>"$OUT/cc-gemm.log"; then
  say "== 12. matmul kernels: skipped (cannot build bench_gemm):"; cat "$OUT/cc-gemm.log"
else
  say "== 12. matmul kernels: eng_gemm_nt per ISA path vs OpenBLAS sgemm (1 thread), whole-model steps, weights from DRAM"
  "$BUILD/bench/bench_gemm" --rows 1,4,16,64,128 --rounds 3 2>&1 | sed 's/^/   /' | tee "$OUT/gemm.txt"
  for m in stories110m gpt2; do
    for M in 1 16 128; do
      best=; bestk=
      for k in avx512 avx2 generic; do
        g=$(get "$OUT/gemm.txt" "model=$m M=$M kernel=$k " GFLOP_s)
        [ -n "$g" ] && [ -z "$best" ] && best=$g && bestk=$k
      done
      sg=$(get "$OUT/gemm.txt" "model=$m M=$M kernel=sgemm " GFLOP_s)
      line="   $m M=$M: $bestk ${best:--} GFLOP/s, sgemm ${sg:--}: $(ratio "$best" "$sg") of sgemm"
      [ "$M" = 16 ] && line="$line (aim >= 0.60)"
      if [ "$M" = 1 ]; then
        gb=$(get "$OUT/gemm.txt" "model=$m M=1 kernel=$bestk " GB_s); st=$(get "$OUT/gemm.txt" "model=$m weight_MB" stream_read_GB_s)
        line="$line; ${gb:--} GB/s drawn vs ${st:--} GB/s plain streaming read ($(ratio "$gb" "$st"))"
      fi
      say "$line"
    done
  done
  # the int8 kernel (the path eng_q8_isa picks: AVX-512 VNNI, else AVX-VNNI, else AVX2) beside the best fp32 path
  for m in stories110m gpt2; do
    for M in 1 16 128; do
      q=; qk=
      for k in avx512vnni avxvnni avx2; do
        g=$(get "$OUT/gemm.txt" "model=$m M=$M kernel=int8-$k " GFLOP_s)
        [ -n "$g" ] && [ -z "$q" ] && q=$g && qk=$k
      done
      f=; fk=
      for k in avx512 avx2 generic; do
        g=$(get "$OUT/gemm.txt" "model=$m M=$M kernel=$k " GFLOP_s)
        [ -n "$g" ] && [ -z "$f" ] && f=$g && fk=$k
      done
      line="   $m M=$M: int8 ($qk) ${q:--} GFLOP/s, fp32 ($fk) ${f:--}: $(ratio "$q" "$f")x fp32"
      [ "$M" != 1 ] && line="$line (aim > 1)"
      say "$line"
    done
  done
  # end to end: one stream of a stories110M-shaped llama (dim 768, 12 layers, 12 heads, hidden 2048)
  LLAMA_TOKENIZER=${LLAMA_TOKENIZER:-../shared/data/tokenizer.bin}
  [ -x "$BUILD/tools/mkmodel" ] || make -s BUILD="$BUILD" "$BUILD/tools/mkmodel" >/dev/null 2>&1
  [ -x "$BUILD/bench/bench_lm" ] || $CC $BENCH_CFLAGS -o "$BUILD/bench/bench_lm" tests/bench/bench_lm.c $ENGINE_OBJS $BENCH_LIBS 2>/dev/null
  if [ -f "$LLAMA_TOKENIZER" ] && [ -x "$BUILD/bench/bench_lm" ] &&
     "$BUILD/tools/mkmodel" llama "$OUT/s110m" "$LLAMA_TOKENIZER" 768 12 12 12 2048 1024 1 >"$OUT/mkmodel-110m.log" 2>&1; then
    say "   stories110M shape, one stream, one core (OpenBLAS 1 thread), median of 3 rounds of 32 steps:"
    : >"$OUT/gemm-lm.txt"
    for k in generic avx2 avx512; do
      INFERD_CPU=$k "$BUILD/bench/bench_lm" --batches 1 --threads 1 --steps 32 --rounds 3 --bw-mib 256 --bw-rounds 3 \
          --name "s110m-$k" "$OUT/s110m" 2>/dev/null | grep -E 'batch=1 |ttft' | sed "s/^/   INFERD_CPU=$k /" | tee -a "$OUT/gemm-lm.txt"
    done
    rm -rf "$OUT/s110m"
  else
    say "   stories110M end to end: skipped (no $LLAMA_TOKENIZER, or mkmodel/bench_lm missing)"
  fi
fi

# ---------------------------------------------------------------- 13. int8 weights
say ""
ANCHOR=${LLAMACPP_ANCHOR:-../shared/tools/llamacpp/anchor}
if ! part int8; then
  say "== 13. int8 weights: skipped (BENCH_PARTS=$PARTS)"
elif [ ! -x "$MKMODEL" ] || [ ! -f "$LLAMA_TOKENIZER" ] || [ "$LM_CC" = 0 ]; then
  say "== 13. int8 weights: skipped (needs $MKMODEL, $LLAMA_TOKENIZER and bench_lm)"
else
  say "== 13. int8 weights: a stories110M-shaped llama2.c checkpoint (dim 768, 12 layers, hidden 2048, vocab 32000,"
  say "   random weights: mkmodel + scripts/export-llama2c.py) and \`inferd quantize\` of it (groups of 32);"
  say "   bench_lm at 1 and 2 compute threads; llama.cpp F32 / Q8_0 on the same model.bin (anchor), 1 and 2 threads"
  Q=$OUT/int8
  mkdir -p "$Q"
  if "$MKMODEL" llama "$Q/hf" "$LLAMA_TOKENIZER" 768 12 12 12 2048 1024 1 >"$Q/mk.log" 2>&1 &&
     python3 scripts/export-llama2c.py "$Q/hf" "$Q/s110m" >>"$Q/mk.log" 2>&1 && rm -rf "$Q/hf" &&
     "$INFERD" quantize --model "$Q/s110m" --out "$Q/s110m-q8" >>"$Q/mk.log" 2>&1; then
    : >"$Q/lm.txt"
    for d in s110m s110m-q8 s110m s110m-q8; do   # alternated: the machine's load drifts
      "$LM_BIN" --threads 1,2 --batches 1,16 --steps 32 --rounds 3 --bw-rounds 3 --ttft-prompt 128 --name "$d" "$Q/$d" 2>&1 \
        | grep -E 'batch=|ttft' | sed 's/^/   /' | tee -a "$Q/lm.txt"
    done
    best() { grep -E "model=$2 .*$3" "$Q/lm.txt" | sed -n "s/.* $1=\([^ ]*\).*/\1/p" | sort -g | tail -1; }
    for T in 1 2; do   # the compute pool's sizes
      f1=$(best tok_s_total s110m "threads=$T batch=1 "); q1=$(best tok_s_total s110m-q8 "threads=$T batch=1 ")
      f16=$(best tok_s_total s110m "threads=$T batch=16 "); q16=$(best tok_s_total s110m-q8 "threads=$T batch=16 ")
      fp=$(best prefill_tok_s s110m "threads=$T ttft"); qp=$(best prefill_tok_s s110m-q8 "threads=$T ttft")
      printf -v "q1_$T" '%s' "$q1"
      say "   $T thread(s): decode 1 stream int8 $(num "$q1") tok/s, fp32 $(num "$f1"): $(ratio "$q1" "$f1")x (aim >= 1.8);" \
          "16 streams int8 $(num "$q16"), fp32 $(num "$f16"): $(ratio "$q16" "$f16")x; prefill 128 int8 $(num "$qp"), fp32 $(num "$fp"): $(ratio "$qp" "$fp")x"
    done
    if [ -x "$ANCHOR" ]; then
      for T in 1 2; do "$ANCHOR" "$Q/s110m/model.bin" "$LLAMA_TOKENIZER" "$T" 2>"$Q/anchor.err" | sed "s/^/llama.cpp threads=$T /" \
        | tee -a "$Q/anchor.txt" | sed 's/^/   /'; done
    fi
    lc() { grep -E "threads=$1 $2"$'\t'"$3"$'\t' "$Q/anchor.txt" 2>/dev/null | cut -f3; }
    say "   llama.cpp decode 1 stream: Q8_0 $(num "$(lc 1 q8_0 tg128)") (1 thread) / $(num "$(lc 2 q8_0 tg128)") (2 threads), F32 $(num "$(lc 1 f32 tg128)") / $(num "$(lc 2 f32 tg128)")"
    say "   int8 / llama.cpp Q8_0, 1 stream: $(ratio "$q1_1" "$(lc 1 q8_0 tg128)") at 1 thread, $(ratio "$q1_2" "$(lc 2 q8_0 tg128)") at 2 threads (aim > 1)"
  else
    say "   could not write the model:"; tail -5 "$Q/mk.log"
  fi
  rm -rf "$Q"
fi
say ""
say "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit 0
