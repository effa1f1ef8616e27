// bench_gemm.c — eng_gemm_nt (engine/core/gemm.h) on every ISA path this CPU
// runs, next to OpenBLAS cblas_sgemm (1 thread) in the same process, on the
// matmuls of whole decode/prefill steps of two model shapes:
//   stories110M (llama: dim 768, hidden 2048, 12 layers, vocab 32000):
//     per layer q, k, v, o 768x768, w1, w3 2048x768, w2 768x2048; head 32000x768
//   gpt2-small (dim 768, ffn 3072, 12 layers, vocab 50257):
//     per layer q, k, v, o 768x768, fc 3072x768, proj 768x3072; head 50257x768
// A "step" multiplies M rows by every weight matrix in model order; all the
// weights sit in one ~450-500 MB array (4 KiB pages, like a malloc'd
// checkpoint), so they stream from DRAM as in serving. Prints per model, M
// and kernel (median of rounds):
//   gemm model=.. M=.. kernel=generic|avx2|avx512|sgemm ms_step=.. GFLOP_s=.. GFLOP_s_best=.. [GB_s=..] [of_sgemm=..]
// GFLOP_s_best is the fastest round (less disturbed by other load); GB_s (M <= 4) = weight bytes / step time; of_sgemm = GFLOP/s / sgemm's.
// First the CPU line the daemon logs (engine/core/cpu.h):
//   gemm cpu=avx512 (cpu: avx2 fma ...)
// And the streaming-read rate of the same weight array (one thread, a
// vectorised sum with 8 accumulators):
//   gemm model=.. stream_read_GB_s=..
// Then the int8 kernel (engine/core/gemm_q8.h: the same weights quantized in
// groups of 32, packed; activations quantized once, outside the timing) on
// each SIMD path this CPU runs, at the same M, beside the fp32 path of the
// highest level measured just before it in the same process:
//   gemm model=.. M=.. kernel=int8-avx512vnni|int8-avxvnni|int8-avx2 ms_step=.. GFLOP_s=.. GFLOP_s_best=..
//        [GB_s=..] of_sgemm=.. of_fp32=..
// (GB_s: int8 + scale bytes / step time; the plain C int8 kernel, the
// reference, is not timed.)
//
//   bench_gemm [--rows 1,4,16,64,128] [--rounds 3] [--models stories110m,gpt2]
#include <cblas.h>    // cblas_sgemm, openblas_set_num_threads
#include <stdint.h>   // uint64_t
#include <stdio.h>    // printf
#include <stdlib.h>   // atoi, qsort, free
#include <string.h>   // strcmp, strtok

#include "engine/core/cpu.h"   // eng_cpu_level_max, eng_cpu_level_name
#include "engine/core/gemm.h"  // eng_gemm_nt_level
#include "engine/core/gemm_q8.h"  // eng_gemm_q8_nt, eng_q8_quantize, eng_q8_pack
#include "engine/core/util.h"  // eng_xaligned, eng_now

typedef struct { int N, K; } shape;
typedef struct {
    const char *name;
    shape mats[8];
    int n_mats, layers;
    shape head;
} model_shape;

static const model_shape MODELS[] = {
    {"stories110m", {{768, 768}, {768, 768}, {768, 768}, {768, 768}, {2048, 768}, {2048, 768}, {768, 2048}}, 7, 12,
     {32000, 768}},
    {"gpt2", {{768, 768}, {768, 768}, {768, 768}, {768, 768}, {3072, 768}, {768, 3072}}, 6, 12, {50257, 768}},
};

enum { KERNEL_SGEMM = ENG_CPU_N_LEVELS };

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// One step: M rows through every matrix of the model; returns seconds.
static double step(const model_shape *m, int kernel, const float *W, const float *A, float *out, int M)
{
    double t0 = eng_now();
    const float *w = W;
    for (int l = 0; l <= m->layers; l++) {
        int n = l < m->layers ? m->n_mats : 1;
        for (int i = 0; i < n; i++) {
            shape s = l < m->layers ? m->mats[i] : m->head;
            if (kernel == KERNEL_SGEMM)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, s.N, s.K, 1.0f, A, s.K, w, s.K, 0.0f, out,
                            s.N);
            else
                eng_gemm_nt_level((eng_cpu_level)kernel, out, (size_t)s.N, A, (size_t)s.K, w, (size_t)s.K, M, s.N, s.K,
                                  0);
            w += (size_t)s.N * s.K;
        }
    }
    return eng_now() - t0;
}

// The int8 weights of a model: every matrix quantized and packed, in model order.
typedef struct {
    eng_q8_matrix mats[8 * 12 + 1];
    int8_t *p;
    float *s;
    double bytes;   // packed int8 + scales read per step
} q8_model;

static void q8_model_make(q8_model *q, const model_shape *m, const float *W)
{
    size_t np = 0, ns = 0;
    for (int l = 0, idx = 0; l <= m->layers; l++)
        for (int i = 0; i < (l < m->layers ? m->n_mats : 1); i++, idx++) {
            shape s = l < m->layers ? m->mats[i] : m->head;
            np += (size_t)s.N * eng_q8_packed_row_bytes(s.K, 32);
            ns += (size_t)s.N * (s.K / 32);
        }
    q->p = eng_xaligned(np);
    q->s = eng_xaligned(ns * sizeof(float));
    q->bytes = (double)np + (double)ns * sizeof(float);
    int8_t *tmp = eng_xaligned((size_t)m->head.N * m->head.K);
    const float *w = W;
    int8_t *p = q->p;
    float *sc = q->s;
    for (int l = 0, idx = 0; l <= m->layers; l++)
        for (int i = 0; i < (l < m->layers ? m->n_mats : 1); i++, idx++) {
            shape s = l < m->layers ? m->mats[i] : m->head;
            eng_q8_quantize(tmp, sc, w, s.N, s.K, 32);
            eng_q8_pack(p, tmp, s.N, s.K, 32);
            q->mats[idx] = (eng_q8_matrix){.q = NULL, .p = p, .s = sc, .n = s.N, .k = s.K, .group = 32};
            w += (size_t)s.N * s.K;
            p += (size_t)s.N * eng_q8_packed_row_bytes(s.K, 32);
            sc += (size_t)s.N * (s.K / 32);
        }
    free(tmp);
}

// The activations quantized for each input width of the model (768, 2048, 3072).
typedef struct {
    int k[4], n;
    eng_q8_rows rows[4];
    void *mem[4];
} q8_inputs;

static const eng_q8_rows *q8_input(q8_inputs *in, const float *A, int max_rows, int K)
{
    for (int i = 0; i < in->n; i++)
        if (in->k[i] == K) return &in->rows[i];
    int i = in->n++;
    in->k[i] = K;
    in->mem[i] = eng_xaligned(eng_q8_rows_bytes(max_rows, K, 32));
    eng_q8_rows_init(&in->rows[i], in->mem[i], max_rows, K, 32);
    eng_q8_quantize_rows(&in->rows[i], A, K);   // A is [max_rows, max_k]: rows read with stride K
    return &in->rows[i];
}

// One int8 step (the kernel eng_q8_set_isa chose); returns seconds.
static double step_q8(const model_shape *m, const q8_model *q, q8_inputs *in, const float *A, int max_rows,
                      float *out, int M)
{
    double t0 = eng_now();
    for (int l = 0, idx = 0; l <= m->layers; l++)
        for (int i = 0; i < (l < m->layers ? m->n_mats : 1); i++, idx++) {
            const eng_q8_matrix *b = &q->mats[idx];
            eng_gemm_q8_nt(out, b->n, q8_input(in, A, max_rows, b->k), b, M, b->n, 0);
        }
    return eng_now() - t0;
}

// A plain streaming read of n floats: 8 independent sums (vectorised by -O2
// in blocks of 64), the rate a simple loop draws from DRAM on one thread.
static float stream_sum(const float *x, size_t n)
{
    float s[64] = {0};
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int l = 0; l < 64; l++) s[l] += x[i + l];
    float t = 0;
    for (int l = 0; l < 64; l++) t += s[l];
    for (; i < n; i++) t += x[i];
    return t;
}

int main(int argc, char **argv)
{
    char rows_arg[128] = "1,4,16,64,128", models_arg[128] = "stories110m,gpt2";
    int rounds = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--rows") == 0) snprintf(rows_arg, sizeof rows_arg, "%s", argv[i + 1]);
        else if (strcmp(argv[i], "--rounds") == 0) rounds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--models") == 0) snprintf(models_arg, sizeof models_arg, "%s", argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_gemm [--rows 1,4,16,64,128] [--rounds 3] [--models stories110m,gpt2]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > 50) rounds = 3;
    int rows[16], n_rows = 0, max_rows = 1;
    for (char *t = strtok(rows_arg, ","); t && n_rows < 16; t = strtok(NULL, ","))
        if (atoi(t) > 0) {
            rows[n_rows++] = atoi(t);
            if (atoi(t) > max_rows) max_rows = atoi(t);
        }
    openblas_set_num_threads(1);
    char cpu_line[200];
    printf("gemm cpu=%s\n", eng_cpu_describe(cpu_line, sizeof cpu_line));
    int max_level = (int)eng_cpu_level_max();
    for (size_t mi = 0; mi < sizeof MODELS / sizeof *MODELS; mi++) {
        const model_shape *m = &MODELS[mi];
        if (!strstr(models_arg, m->name)) continue;
        size_t nw = (size_t)m->head.N * m->head.K, max_n = (size_t)m->head.N, max_k = (size_t)m->head.K;
        double flop_per_row = 2.0 * m->head.N * m->head.K;
        for (int i = 0; i < m->n_mats; i++) {
            nw += (size_t)m->layers * m->mats[i].N * m->mats[i].K;
            flop_per_row += 2.0 * m->layers * m->mats[i].N * m->mats[i].K;
            if ((size_t)m->mats[i].K > max_k) max_k = (size_t)m->mats[i].K;
        }
        float *W = eng_xaligned(nw * sizeof(float));
        float *A = eng_xaligned((size_t)max_rows * max_k * sizeof(float));
        float *out = eng_xaligned((size_t)max_rows * max_n * sizeof(float));
        uint64_t s = 88172645463325252ull;
        for (size_t i = 0; i < nw; i++) {   // xorshift: random weights in [-0.05, 0.05)
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            W[i] = ((float)(s >> 40) / 16777216.0f - 0.5f) * 0.1f;
        }
        for (size_t i = 0; i < (size_t)max_rows * max_k; i++) A[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        q8_model q8;
        q8_model_make(&q8, m, W);
        q8_inputs q8in = {.n = 0};
        double times[64], sink = 0;
        for (int r = 0; r < rounds + 1; r++) {
            double t0 = eng_now();
            sink += stream_sum(W, nw);
            if (r > 0) times[r - 1] = eng_now() - t0;
        }
        qsort(times, (size_t)rounds, sizeof *times, cmp_double);
        double stream_gbs = (double)nw * sizeof(float) / times[rounds / 2] / 1e9;
        printf("gemm model=%s weight_MB=%.0f stream_read_GB_s=%.1f%s\n", m->name, nw * 4.0 / 1e6, stream_gbs,
               sink == 12345.0 ? " " : "");
        for (int ri = 0; ri < n_rows; ri++) {
            int M = rows[ri];
            double sgemm_gflops = 0, fp32_gflops = 0;
            // sgemm first so every engine path can print its fraction of it
            for (int kernel = KERNEL_SGEMM, done = 0; !done; kernel = kernel == KERNEL_SGEMM ? 0 : kernel + 1) {
                if (kernel != KERNEL_SGEMM && kernel > max_level) break;
                int rr = M >= 64 ? (rounds + 1) / 2 : rounds;   // big steps take seconds
                step(m, kernel, W, A, out, M);                   // warm-up
                for (int r = 0; r < rr; r++) times[r] = step(m, kernel, W, A, out, M);
                qsort(times, (size_t)rr, sizeof *times, cmp_double);
                double t = times[rr / 2], gflops = flop_per_row * M / t / 1e9;
                const char *name = kernel == KERNEL_SGEMM ? "sgemm" : eng_cpu_level_name((eng_cpu_level)kernel);
                printf("gemm model=%s M=%d kernel=%s ms_step=%.2f GFLOP_s=%.1f GFLOP_s_best=%.1f", m->name, M, name, t * 1e3,
                       gflops, flop_per_row * M / times[0] / 1e9);
                if (M <= 4) printf(" GB_s=%.1f", (double)nw * sizeof(float) / t / 1e9);
                if (kernel == KERNEL_SGEMM) sgemm_gflops = gflops;
                else printf(" of_sgemm=%.2f", gflops / sgemm_gflops);
                if (kernel != KERNEL_SGEMM) fp32_gflops = gflops;   // the last (highest) level
                printf("\n");
                fflush(stdout);
                if (kernel == max_level) done = 1;
            }
            for (int isa = ENG_Q8__COUNT - 1; isa > ENG_Q8_C; isa--) {
                if (eng_q8_set_isa((eng_q8_isa_t)isa) != 0) continue;
                int rr = M >= 64 ? (rounds + 1) / 2 : rounds;
                step_q8(m, &q8, &q8in, A, max_rows, out, M);   // warm-up (and the first quantization of A)
                for (int r = 0; r < rr; r++) times[r] = step_q8(m, &q8, &q8in, A, max_rows, out, M);
                qsort(times, (size_t)rr, sizeof *times, cmp_double);
                double t = times[rr / 2], gflops = flop_per_row * M / t / 1e9;
                printf("gemm model=%s M=%d kernel=int8-%s ms_step=%.2f GFLOP_s=%.1f GFLOP_s_best=%.1f", m->name, M,
                       eng_q8_isa_name((eng_q8_isa_t)isa), t * 1e3, gflops, flop_per_row * M / times[0] / 1e9);
                if (M <= 4) printf(" GB_s=%.1f", q8.bytes / t / 1e9);
                printf(" of_sgemm=%.2f of_fp32=%.2f\n", gflops / sgemm_gflops, gflops / fp32_gflops);
                fflush(stdout);
            }
            eng_q8_reset_isa();
        }
        for (int i = 0; i < q8in.n; i++) free(q8in.mem[i]);
        free(q8.p);
        free(q8.s);
        free(W);
        free(A);
        free(out);
    }
    return 0;
}
