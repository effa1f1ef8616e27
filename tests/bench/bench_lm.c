// bench_lm.c — decode throughput of the decoder transformer through the
// eng_lm interface (the calls the server's continuous batcher makes), next
// to the machine's memory-bandwidth roofline measured in the same process.
// Prints key=value lines; asserts nothing.
//
//   bench_lm [--batches 1,4,16] [--threads 1] [--steps 120] [--prompt 8] [--rounds 3]
//            [--ttft-prompt 128] [--bw-mib 512] [--bw-rounds 7] [--callers C] [--name NAME]
//            [--dump PREFIX] [MODEL_DIR]
//
// MODEL_DIR is any directory the server loads (e.g. what `mkmodel gpt2 OUT
// VOCAB 768 12 12 1024` writes: GPT-2-small shape). Without it the model is
// a random llama shaped like llama2.c's stories15M (dim 288, hidden 768, 6
// layers, 6 heads, vocab 32000, seq 256, tied embedding), built in memory.
//
// 1. Bandwidth: one thread (a worker decodes on one thread) sums a
//    --bw-mib float array that was written first, --bw-rounds times; once in
//    ordinary 4 KiB pages (what the weights get: a file mapping or malloc),
//    once with madvise(MADV_HUGEPAGE) (what they could get):
//      lm bandwidth pages=4k|huge mib=512 GB_s_median=.. GB_s_best=..
//    The rooflines below use the medians.
// 2. The model and the bytes of weights one decode step reads (every
//    tensor once, except embeddings that are only looked up: GPT-2's
//    positions, an untied token embedding; a tied one is read by the head),
//    and how many of those bytes sit on transparent huge pages after a
//    warm-up step (the kernel may back a mapped checkpoint with huge
//    page-cache folios, a malloc'd copy not). Measured per 2 MiB of each
//    tensor from /proc/self/pagemap + /proc/kpageflags (needs root), else
//    estimated from smaps_rollup (AnonHugePages + FilePmdMapped of the
//    whole process, capped at the weight bytes: an upper bound):
//      lm model=NAME arch=.. params=.. weight_MB_per_step=..
//      lm model=NAME roofline_tok_s=.. bandwidth_GB_s=.. roofline_4k_tok_s=.. roofline_huge_tok_s=..
//         weights_on_huge=.. huge_from=pagemap|smaps
//    roofline_tok_s = 1 / (huge bytes / huge-page bandwidth + other bytes /
//    4k bandwidth): one stream's ceiling when every weight byte comes from
//    DRAM once per token at the rate this thread just measured for its
//    page size; bandwidth_GB_s = weight bytes / that time; the 4k and huge
//    figures assume all weights in one page size.
// 3. Decode: N fresh sequences prefill a --prompt-token prompt (one step),
//    then --steps greedy decode steps advance all N by one token each;
//    median of --rounds rounds after a warm-up round:
//      lm model=NAME threads=T batch=N tok_s_stream=.. tok_s_total=.. ms_step=.. weights_GB_s=.. roofline_frac=..
//    tok_s_stream = steps/s (every stream gets one token per step),
//    tok_s_total = N * that; weights_GB_s = weight bytes per step / step time;
//    roofline_frac = tok_s_stream / roofline_tok_s (meaningful at N = 1;
//    more than 1 means the weights partly came from cache).
//      lm model=NAME threads=T scaling=16/1 total_ratio=..   (largest / smallest batch)
//    With --callers C (2..16): C threads decode one sequence each at once
//    (two workers stepping two models; the second finds the pool busy):
//      lm model=NAME threads=T callers=C batch=1 tok_s_total=..
// 4. Time to first token of one request with a --ttft-prompt-token prompt:
//    the prefill step plus sampling the first token (greedy; eng_sample),
//    median of --rounds after a warm-up:
//      lm model=NAME threads=T ttft_prompt=128 ttft_ms=.. prefill_tok_s=..
//
// --dump PREFIX (before the timings): the logits a reference checks, in
// PREFIX.ids (text: "P G V" then the P prompt ids and the G greedy ids) and
// PREFIX.logits.f32 (G rows of V floats): one fresh sequence prefills the
// --ttft-prompt prompt in one step (row 0: the logits after it; the argmax
// is greedy id 0), then decodes greedy id i in one step each (row i + 1).
// The prompt is the TTFT prompt (below); tests/bench/bench_lm_torch.py
// --check PREFIX compares PyTorch's logits with these.
//
// --threads 1,2 runs everything above once per compute-pool size
// (engine/core/pool.h: the daemon's compute_threads; one step split across
// that many threads); OpenBLAS stays single-threaded, as in the daemon.
// The bandwidth is measured on 1 thread and on the largest pool size (each
// thread summing its own half of the array, through the pool):
//      lm bandwidth pages=4k|huge mib=512 threads=T GB_s_median=.. GB_s_best=..
// and each decode line's bw_frac = weights_GB_s / that T-thread 4k figure
// (the aim: >= 0.95 at one stream).
//
// Build from the repository root after `make` (tests/bench/run.sh does this):
//   cc -std=c11 -D_GNU_SOURCE -O2 -march=x86-64-v3 -I. -I/usr/include/x86_64-linux-gnu/openblas-pthread
//      $(pkg-config --cflags jansson) -o build/bench/bench_lm tests/bench/bench_lm.c build/engine/*/*.o
//      $(pkg-config --libs jansson libpng zlib) -lopenblas -ljpeg -lm -lpthread
#include <jansson.h>               // json_load_file (MODEL_DIR/config.json)
#include <pthread.h>               // --callers
#include <stdint.h>                // uint64_t, uintptr_t
#include <stdio.h>                 // printf, fprintf, snprintf, fseeko
#include <stdlib.h>                // malloc, free, atoi, qsort
#include <string.h>                // strcmp, strtok, strrchr
#include <sys/mman.h>              // mmap, madvise, munmap
#ifdef __AVX__
#include <immintrin.h>             // _mm256_* (bandwidth loop)
#endif

#include "engine/core/rng.h"            // eng_rng (first-token sampling)
#include "engine/text/sample.h"         // eng_sample
#include "engine/core/tape.h"           // eng_tape (the worker's scratch)
#include "engine/arch/transformer.h"    // eng_transformer, eng_tf_lm_ops
#include "engine/core/util.h"           // eng_now
#include <malloc.h>                       // mallopt (as the daemon)
#include "engine/core/pool.h"           // eng_pool_start/stop/for (compute threads)

// Declared here in case this cblas.h does not (OpenBLAS-specific).
void openblas_set_num_threads(int num_threads);

enum { MAX_LIST = 16 };

static int parse_list(const char *s, int *out) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok && n < MAX_LIST; tok = strtok(NULL, ",")) out[n++] = atoi(tok);
    return n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// ---------------------------------------------------------------- bandwidth

// Sum of x[0..n) with independent vector accumulators (n a multiple of 64):
// one pass reads the array once, front to back, like a weight matrix.
static float sum_floats(const float *x, size_t n) {
#ifdef __AVX__
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    for (size_t i = 0; i < n; i += 64) {
        s0 = _mm256_add_ps(s0, _mm256_load_ps(x + i));
        s1 = _mm256_add_ps(s1, _mm256_load_ps(x + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_load_ps(x + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_load_ps(x + i + 24));
        s4 = _mm256_add_ps(s4, _mm256_load_ps(x + i + 32));
        s5 = _mm256_add_ps(s5, _mm256_load_ps(x + i + 40));
        s6 = _mm256_add_ps(s6, _mm256_load_ps(x + i + 48));
        s7 = _mm256_add_ps(s7, _mm256_load_ps(x + i + 56));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)),
                             _mm256_add_ps(_mm256_add_ps(s4, s5), _mm256_add_ps(s6, s7)));
    float l[8];
    _mm256_storeu_ps(l, s);
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
#else
    float s[8] = {0};
    for (size_t i = 0; i < n; i += 8)
        for (int l = 0; l < 8; l++) s[l] += x[i + l];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
#endif
}

static volatile float bw_sink;   // keeps the sums alive

// Sum of the array split in `parts` contiguous pieces, one pool task each.
typedef struct { const float *x; size_t n; int parts; float sums[64]; } bw_job;

static void bw_task(void *ctx, int t) {
    bw_job *J = ctx;
    size_t per = (J->n / J->parts + 63) / 64 * 64, lo = (size_t)t * per, hi = lo + per < J->n ? lo + per : J->n;
    J->sums[t] = lo < hi ? sum_floats(J->x + lo, hi - lo) : 0;
}

static float sum_floats_par(const float *x, size_t n, int parts) {
    bw_job J = {.x = x, .n = n, .parts = parts};
    eng_pool_for(parts, bw_task, &J);
    float s = 0;
    for (int t = 0; t < parts; t++) s += J.sums[t];
    return s;
}

// Read bandwidth (GB/s) of one thread over a fresh `mib` MiB array, median
// and best of `rounds` passes; huge = madvise(MADV_HUGEPAGE) before touching.
// Returns 0 (and *med = *best = 0) when the memory cannot be mapped.
static int bandwidth(size_t mib, int rounds, int huge, int threads, double *med, double *best) {
    size_t bytes = mib << 20, n = bytes / sizeof(float);
    *med = *best = 0;
    float *x = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (x == MAP_FAILED) return 0;
#ifdef MADV_HUGEPAGE
    (void)madvise(x, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
#endif
    for (size_t i = 0; i < n; i++) x[i] = 1.0f;   // real pages, not the shared zero page
    double *gbs = malloc((size_t)rounds * sizeof(double));
    bw_sink = sum_floats_par(x, n, threads);       // warm-up pass (TLB, page tables)
    for (int r = 0; r < rounds; r++) {
        double t0 = eng_now();
        bw_sink = sum_floats_par(x, n, threads);
        gbs[r] = (double)bytes / (eng_now() - t0) / 1e9;
        *best = gbs[r] > *best ? gbs[r] : *best;
    }
    *med = median(gbs, rounds);
    free(gbs);
    munmap(x, bytes);
    return 1;
}

// MB of this process on huge pages (anonymous + file PMD mappings), or -1.
static double hugepages_mb(void) {
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f) return -1;
    char line[256];
    double kb = 0;
    long v;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "AnonHugePages: %ld kB", &v) == 1 || sscanf(line, "FilePmdMapped: %ld kB", &v) == 1 ||
            sscanf(line, "ShmemPmdMapped: %ld kB", &v) == 1)
            kb += (double)v;
    fclose(f);
    return kb / 1024.0;
}

// PFN of the page holding virtual address a: 0 when not present, -1 when
// PFNs are hidden (not root) or pagemap is unreadable.
static int64_t pfn_of(FILE *pagemap, uintptr_t a) {
    uint64_t e;
    if (fseeko(pagemap, (off_t)(a / 4096) * 8, SEEK_SET) != 0 || fread(&e, 8, 1, pagemap) != 1) return -1;
    if (!(e >> 63)) return 0;
    uint64_t pfn = e & ((1ull << 55) - 1);
    return pfn ? (int64_t)pfn : -1;
}

// 1 if the 2 MiB-aligned virtual range at a is one PMD-sized huge page
// (first and last 4 KiB pages present, physically contiguous, 2 MiB-aligned,
// flagged KPF_THP or KPF_HUGE): what a PMD mapping, one TLB entry, needs.
// Smaller large folios (mTHP, page-cache folios) carry KPF_THP too but are
// mapped with 4 KiB entries. 0 if not, -1 if PFNs cannot be read.
static int range_is_huge(FILE *pagemap, FILE *kflags, uintptr_t a) {
    int64_t p0 = pfn_of(pagemap, a), p1 = pfn_of(pagemap, a + (2u << 20) - 4096);
    if (p0 < 0 || p1 < 0) return -1;
    if (p0 == 0 || p1 != p0 + 511 || p0 % 512 != 0) return 0;
    uint64_t f;
    if (fseeko(kflags, (off_t)p0 * 8, SEEK_SET) != 0 || fread(&f, 8, 1, kflags) != 1) return -1;
    return (f >> 22 & 1) || (f >> 17 & 1);   // KPF_THP, KPF_HUGE
}

// ---------------------------------------------------------------- model

static int step_reads(const eng_transformer *m, const eng_tf_tensor *t) {
    const eng_var *v = t->n_views ? t->views[0].var : NULL;
    if (v == &m->wpe) return 0;                     // gpt2 positions: one row looked up
    if (!m->cfg.tied && v == &m->wte) return 0;     // untied embedding: looked up
    return 1;
}

// Where a tensor's serving copy lives and its size: the fp32 values, or an
// int8 matrix's packed rows (its scales are counted in the size, not mapped).
static const void *tensor_mem(const eng_tf_tensor *t, double *bytes) {
    if (t->q8.q) {
        *bytes = (double)t->q8.n * (double)eng_q8_packed_row_bytes(t->q8.k, t->q8.group) +
                 (double)t->q8.n * (t->q8.k / t->q8.group) * sizeof(float);
        return t->q8.p;
    }
    *bytes = (double)t->n * sizeof(float);
    return t->val;
}

// Bytes of weights one step reads (see the header).
static double step_weight_bytes(const eng_transformer *m) {
    double n = 0, b;
    for (int i = 0; i < m->n_tensors; i++)
        if (step_reads(m, &m->tensors[i])) {
            tensor_mem(&m->tensors[i], &b);
            n += b;
        }
    return n;
}

// Bytes of those weights on PMD-sized huge pages (range_is_huge for every
// 2 MiB-aligned range a tensor overlaps); -1 when PFNs cannot be read.
static double step_weight_bytes_huge(const eng_transformer *m) {
    FILE *pm = fopen("/proc/self/pagemap", "rb"), *kf = fopen("/proc/kpageflags", "rb");
    double huge = 0;
    for (int i = 0; pm && kf && i < m->n_tensors; i++) {
        const eng_tf_tensor *t = &m->tensors[i];
        if (!step_reads(m, t)) continue;
        double bytes;
        uintptr_t p = (uintptr_t)tensor_mem(t, &bytes), end = p + (uintptr_t)bytes, H = 2u << 20;
        for (uintptr_t a = p & ~(H - 1); a < end; a += H) {
            int h = range_is_huge(pm, kf, a);
            if (h < 0) { huge = -1; goto done; }
            uintptr_t lo = a > p ? a : p, hi = a + H < end ? a + H : end;
            huge += h ? (double)(hi - lo) : 0;
        }
    }
    if (!pm || !kf) huge = -1;
done:
    if (pm) fclose(pm);
    if (kf) fclose(kf);
    return huge;
}

static eng_transformer *stories15m_shaped(void) {
    eng_tf_config c = {
        .arch = ENG_TF_LLAMA, .dim = 288, .hidden_dim = 768, .n_layers = 6, .n_heads = 6, .n_kv_heads = 6,
        .head_dim = 48, .vocab_size = 32000, .context_len = 256, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
        .tied = 1, .bos_token_id = 1, .eos_token_id = 2,
    };
    eng_transformer *m = malloc(sizeof *m);
    char *err = NULL;
    if (eng_tf_init(m, &c, &err) != 0) { fprintf(stderr, "bench_lm: %s\n", err); exit(1); }
    eng_tf_init_params(m, 1);
    return m;
}

static eng_transformer *load(const char *dir) {
    char path[4096], *err = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, 0, &jerr);
    if (!cfg) { fprintf(stderr, "bench_lm: %s: %s\n", path, jerr.text); exit(1); }
    eng_transformer *m = NULL;
    if (eng_tf_load_dir(&m, dir, cfg, &err) != 0) { fprintf(stderr, "bench_lm: %s\n", err); exit(1); }
    json_decref(cfg);
    return m;
}

// ---------------------------------------------------------------- decode

// One round: N fresh sequences prefill `prompt` tokens (one step), then
// `steps` decode steps. Returns the seconds spent in the decode steps.
static double decode_round(eng_transformer *m, eng_tape *t, int N, int prompt, int steps, unsigned seed) {
    const eng_lm_ops *ops = &eng_tf_lm_ops;
    eng_lm *lm = eng_tf_as_lm(m);
    int V = m->cfg.vocab_size, max_len = prompt + steps;
    eng_lm_seq **seqs = malloc((size_t)N * sizeof *seqs);
    int *toks = malloc((size_t)N * prompt * sizeof(int)), *n = malloc((size_t)N * sizeof(int));
    const int **tp = malloc((size_t)N * sizeof *tp);
    float *logits = malloc((size_t)N * V * sizeof(float));
    for (int i = 0; i < N; i++) {
        seqs[i] = ops->seq_new(lm, max_len);
        for (int j = 0; j < prompt; j++) {
            seed = seed * 1664525u + 1013904223u;
            toks[i * prompt + j] = (int)((seed >> 8) % (unsigned)V);
        }
        tp[i] = toks + (size_t)i * prompt;
        n[i] = prompt;
    }
    ops->step(lm, t, seqs, tp, n, N, logits);
    double t0 = eng_now();
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < N; i++) {
            toks[i * prompt] = eng_argmax(logits + (size_t)i * V, V);   // greedy: linear time
            tp[i] = toks + (size_t)i * prompt;
            n[i] = 1;
        }
        ops->step(lm, t, seqs, tp, n, N, logits);
    }
    double dt = eng_now() - t0;
    for (int i = 0; i < N; i++) ops->seq_free(seqs[i]);
    free(seqs); free(toks); free(n); free(tp); free(logits);
    return dt;
}

// --callers C: C threads at once, each decoding its own batch-1 sequence on
// the same model with its own scratch (two server workers stepping two
// models): what the pool does when a second caller finds it busy.
typedef struct { eng_transformer *m; int prompt, steps; unsigned seed; double sec; } caller_arg;

static void *caller_main(void *p) {
    caller_arg *a = p;
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    a->sec = decode_round(a->m, &t, 1, a->prompt, a->steps, a->seed);
    eng_tape_free(&t);
    return NULL;
}

// Total tokens/s of C callers decoding `steps` tokens each at once.
static double callers_round(eng_transformer *m, int C, int prompt, int steps, unsigned seed) {
    pthread_t th[MAX_LIST];
    caller_arg a[MAX_LIST];
    double t0 = eng_now();
    for (int c = 0; c < C; c++) {
        a[c] = (caller_arg){m, prompt, steps, seed + (unsigned)c, 0};
        pthread_create(&th[c], NULL, caller_main, &a[c]);
    }
    for (int c = 0; c < C; c++) pthread_join(th[c], NULL);
    return (double)C * steps / (eng_now() - t0);
}

// Seconds from a fresh sequence's P-token prompt to its first sampled token.
static double ttft_once(eng_transformer *m, eng_tape *t, const int *toks, int P, float *logits, float *scratch) {
    eng_lm *lm = eng_tf_as_lm(m);
    eng_sampler greedy = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f};
    eng_rng rng;
    eng_rng_seed(&rng, 1);
    double t0 = eng_now();
    eng_lm_seq *seq = eng_tf_lm_ops.seq_new(lm, P + 1);
    const int *tp = toks;
    eng_tf_lm_ops.step(lm, t, &seq, &tp, &P, 1, logits);
    int tok = eng_sample(&greedy, logits, m->cfg.vocab_size, &rng, scratch);
    double dt = eng_now() - t0;
    eng_tf_lm_ops.seq_free(seq);
    bw_sink = (float)tok;
    return dt;
}

// --dump (see the header): prefill `P` ids, then G - 1 greedy steps; G rows.
static int dump_logits(eng_transformer *m, eng_tape *t, const int *toks, int P, int G, const char *prefix) {
    eng_lm *lm = eng_tf_as_lm(m);
    int V = m->cfg.vocab_size, *ids = malloc((size_t)G * sizeof(int));
    float *logits = malloc((size_t)G * V * sizeof(float));
    eng_lm_seq *seq = eng_tf_lm_ops.seq_new(lm, P + G);
    const int *tp = toks;
    int n = P;
    for (int g = 0; g < G; g++) {
        eng_tf_lm_ops.step(lm, t, &seq, &tp, &n, 1, logits + (size_t)g * V);
        ids[g] = eng_argmax(logits + (size_t)g * V, V);
        tp = &ids[g];
        n = 1;
    }
    eng_tf_lm_ops.seq_free(seq);
    char path[4096];
    int rc = 0;
    snprintf(path, sizeof path, "%s.ids", prefix);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%d %d %d\n", P, G, V);
        for (int i = 0; i < P; i++) fprintf(f, "%d%c", toks[i], i + 1 < P ? ' ' : '\n');
        for (int i = 0; i < G; i++) fprintf(f, "%d%c", ids[i], i + 1 < G ? ' ' : '\n');
        rc |= fclose(f);
    } else rc = -1;
    snprintf(path, sizeof path, "%s.logits.f32", prefix);
    f = rc == 0 ? fopen(path, "wb") : NULL;
    if (f) {
        rc |= fwrite(logits, sizeof(float), (size_t)G * V, f) == (size_t)G * V ? 0 : -1;
        rc |= fclose(f);
    } else rc = -1;
    if (rc) fprintf(stderr, "bench_lm: cannot write %s\n", path);
    free(ids);
    free(logits);
    return rc;
}

int main(int argc, char **argv) {
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);   // as the daemon (server/daemon.c): KV caches come from fresh mappings
    int batches[MAX_LIST] = {1, 4, 16}, nb = 3, threads[MAX_LIST] = {1}, nt = 1;
    int steps = 120, prompt = 8, rounds = 3, ttft_prompt = 128, bw_mib = 512, bw_rounds = 7, callers = 0;
    const char *dir = NULL, *name = NULL, *dump = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batches") && i + 1 < argc) nb = parse_list(argv[++i], batches);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) nt = parse_list(argv[++i], threads);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ttft-prompt") && i + 1 < argc) ttft_prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bw-mib") && i + 1 < argc) bw_mib = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bw-rounds") && i + 1 < argc) bw_rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--name") && i + 1 < argc) name = argv[++i];
        else if (!strcmp(argv[i], "--callers") && i + 1 < argc) callers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc) dump = argv[++i];
        else if (argv[i][0] != '-') dir = argv[i];
        else {
            fprintf(stderr, "usage: bench_lm [--batches 1,4,16] [--threads 1] [--steps N] [--prompt P] [--rounds R]\n"
                            "                [--ttft-prompt 128] [--bw-mib 512] [--bw-rounds 7] [--callers C] [--name NAME]\n"
                            "                [--dump PREFIX] [MODEL_DIR]\n");
            return 2;
        }
    }
    if (nb < 1 || nt < 1 || prompt < 1 || steps < 1 || rounds < 1 || ttft_prompt < 1 || bw_mib < 1 || bw_rounds < 1) {
        fprintf(stderr, "bench_lm: every count must be >= 1\n");
        return 2;
    }
    if (!name) {
        if (!dir) name = "stories15M-shape";
        else {
            const char *s = strrchr(dir, '/');
            name = s && s[1] ? s + 1 : dir;
        }
    }

    // 1. bandwidth, before the model is loaded (the array must not share RAM with it)
    openblas_set_num_threads(1);
    int maxt = 1;
    for (int i = 0; i < nt; i++) maxt = threads[i] > maxt ? threads[i] : maxt;
    maxt = maxt > 64 ? 64 : maxt;
    double bw4k, bw4k_best, bwh, bwh_best, bwT = 0, bwT_best;
    if (bandwidth((size_t)bw_mib, bw_rounds, 0, 1, &bw4k, &bw4k_best))
        printf("lm bandwidth pages=4k mib=%d threads=1 GB_s_median=%.1f GB_s_best=%.1f\n", bw_mib, bw4k, bw4k_best);
    if (bandwidth((size_t)bw_mib, bw_rounds, 1, 1, &bwh, &bwh_best))
        printf("lm bandwidth pages=huge mib=%d threads=1 GB_s_median=%.1f GB_s_best=%.1f\n", bw_mib, bwh, bwh_best);
    if (maxt > 1) {
        eng_pool_start(maxt);
        if (bandwidth((size_t)bw_mib, bw_rounds, 0, maxt, &bwT, &bwT_best))
            printf("lm bandwidth pages=4k mib=%d threads=%d GB_s_median=%.1f GB_s_best=%.1f\n", bw_mib, maxt, bwT,
                   bwT_best);
        eng_pool_stop();
    }
    fflush(stdout);

    // 2. the model
    eng_transformer *m = dir ? load(dir) : stories15m_shaped();
    const eng_tf_config *c = &m->cfg;
    if (prompt + steps > c->context_len || ttft_prompt + 1 > c->context_len) {
        fprintf(stderr, "bench_lm: need prompt + steps <= context %d and ttft-prompt < context\n", c->context_len);
        return 2;
    }
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    decode_round(m, &t, 1, prompt, 2, 3);   // every weight page touched once
    double bytes = step_weight_bytes(m), huge_bytes = step_weight_bytes_huge(m);
    const char *huge_from = "pagemap";
    if (huge_bytes < 0) {
        double huge_mb = hugepages_mb();
        huge_bytes = huge_mb > 0 ? huge_mb * 1048576.0 : 0;
        huge_bytes = huge_bytes < bytes ? huge_bytes : bytes;
        huge_from = "smaps";
    }
    if (bwh <= 0) { bwh = bw4k; huge_bytes = 0; }
    double roof_t = bw4k > 0 ? (huge_bytes / bwh + (bytes - huge_bytes) / bw4k) / 1e9 : 0;   // s per token
    double roof = roof_t > 0 ? 1.0 / roof_t : 0;
    printf("lm model=%s arch=%s dim=%d layers=%d heads=%d/%d hidden=%d vocab=%d context=%d tied=%d params=%zu "
           "weight_MB_per_step=%.1f path=%s\n",
           name, eng_tf_arch_name(c->arch), c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim,
           c->vocab_size, c->context_len, c->tied, m->n_params, bytes / 1e6, dir ? dir : "(in memory)");
    printf("lm model=%s roofline_tok_s=%.1f bandwidth_GB_s=%.1f roofline_4k_tok_s=%.1f roofline_huge_tok_s=%.1f "
           "weights_on_huge=%.2f huge_from=%s (one stream: weight bytes per step from DRAM at the bandwidth above)\n",
           name, roof, roof_t > 0 ? bytes / roof_t / 1e9 : 0, bw4k * 1e9 / bytes, bwh * 1e9 / bytes,
           huge_bytes / bytes, huge_from);
    printf("lm model=%s decode: prompt=%d steps=%d (positions %d..%d), median of %d rounds\n", name, prompt, steps,
           prompt, prompt + steps - 1, rounds);
    fflush(stdout);

    int nr = rounds > 1 ? rounds : 1;
    double *sec = malloc((size_t)nr * sizeof(double));
    int *toks = malloc((size_t)ttft_prompt * sizeof(int));
    for (int j = 0; j < ttft_prompt; j++) toks[j] = 3 + (j * 7919) % (c->vocab_size - 3);
    float *logits = malloc((size_t)c->vocab_size * sizeof(float));
    float *scratch = malloc(2 * (size_t)c->vocab_size * sizeof(float));
    enum { DUMP_ROWS = 9 };   // the prefill's logits and 8 decode steps'
    if (dump && ttft_prompt + DUMP_ROWS > c->context_len) {
        fprintf(stderr, "bench_lm: --dump needs ttft-prompt + %d <= context %d\n", DUMP_ROWS, c->context_len);
        return 2;
    }
    if (dump && dump_logits(m, &t, toks, ttft_prompt, DUMP_ROWS, dump)) return 1;
    for (int ti = 0; ti < nt; ti++) {
        eng_pool_stop();
        eng_pool_start(threads[ti]);
        double bw_t = threads[ti] > 1 && bwT > 0 ? bwT : bw4k;   // the read bandwidth of this many threads
        // 3. decode
        double first_total = 0, last_total = 0;
        for (int bi = 0; bi < nb; bi++) {
            int N = batches[bi];
            decode_round(m, &t, N, prompt, steps < 8 ? steps : 8, 7);   // warm-up: arena, caches, page-in
            for (int r = 0; r < rounds; r++) sec[r] = decode_round(m, &t, N, prompt, steps, 11 + (unsigned)r);
            double per_step = median(sec, rounds) / steps, stream = 1.0 / per_step;
            printf("lm model=%s threads=%d batch=%d tok_s_stream=%.1f tok_s_total=%.1f ms_step=%.3f "
                   "weights_GB_s=%.1f roofline_frac=%.2f bw_frac=%.2f\n",
                   name, threads[ti], N, stream, N * stream, 1e3 * per_step, bytes / per_step / 1e9,
                   roof > 0 ? stream / roof : 0, bw_t > 0 ? bytes / per_step / 1e9 / bw_t : 0);
            fflush(stdout);
            if (bi == 0) first_total = N * stream;
            last_total = N * stream;
        }
        if (nb > 1)
            printf("lm model=%s threads=%d scaling=%d/%d total_ratio=%.2f\n", name, threads[ti], batches[nb - 1],
                   batches[0], last_total / first_total);
        // 3b. several callers at once
        if (callers > 1 && callers <= MAX_LIST) {
            callers_round(m, callers, prompt, steps < 8 ? steps : 8, 5);   // warm-up
            for (int r = 0; r < rounds; r++) sec[r] = callers_round(m, callers, prompt, steps, 21 + (unsigned)r);
            printf("lm model=%s threads=%d callers=%d batch=1 tok_s_total=%.1f (each caller its own sequence)\n", name,
                   threads[ti], callers, median(sec, rounds));
            fflush(stdout);
        }
        // 4. time to first token
        ttft_once(m, &t, toks, ttft_prompt, logits, scratch);   // warm-up
        for (int r = 0; r < rounds; r++) sec[r] = ttft_once(m, &t, toks, ttft_prompt, logits, scratch);
        double tt = median(sec, rounds);
        printf("lm model=%s threads=%d ttft_prompt=%d ttft_ms=%.1f prefill_tok_s=%.1f\n", name, threads[ti],
               ttft_prompt, 1e3 * tt, ttft_prompt / tt);
        fflush(stdout);
    }
    free(toks); free(logits); free(scratch); free(sec);
    eng_pool_stop();
    eng_tape_free(&t);
    eng_tf_destroy(m);
    return 0;
}
