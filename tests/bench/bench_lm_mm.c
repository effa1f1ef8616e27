// bench_lm_mm.c — the matmuls of one GPT-2-small decode step, alone: what
// the serving step's eng_matmul_nt_rowwise costs at M = 1, 4, 16 rows
// (streams), next to a prototype batch-invariant kernel tiled over weight
// rows too (tile_nt below), and plain cblas_sgemm on 1 and 2 threads (not
// batch-invariant in general; shows what a second core would add).
// Not part of `make bench`; a tool for choosing the decode kernel. Prints:
//   mm kernel=K pages=4k|huge M=M ms_step=.. weights_GB_s=.. GFLOP_s=.. (median of rounds)
// and a check line per kernel (max |diff| against eng_matmul_nt_naive, and
// whether row 0 has the same bits at M = 1 and M = 16: batch invariance).
//
// A "step" multiplies M rows by every weight matrix of the model in model
// order (12 x [qkv 2304x768, proj 768x768, fc 3072x768, proj 768x3072],
// then the 50257x768 head): 494 MB of weights in one array, so each step
// streams them from DRAM like a decode step does; once in 4 KiB pages (all
// kernels) and once with madvise(MADV_HUGEPAGE) (the serving kernel).
//
//   bench_lm_mm [--rows 1,4,16] [--rounds 5] [--dim 768 --layers 12 --vocab 50257]
//
// Build from the repository root after `make`:
//   cc -std=c11 -D_GNU_SOURCE -O2 -march=x86-64-v3 -I. -I/usr/include/x86_64-linux-gnu/openblas-pthread
//      -o build/bench/bench_lm_mm tests/bench/bench_lm_mm.c build/engine/*/*.o
//      $(pkg-config --libs jansson libpng zlib) -lopenblas -ljpeg -lm -lpthread
#include <cblas.h>        // cblas_sgemm, openblas_set_num_threads
#include <immintrin.h>    // AVX2 / FMA intrinsics
#include <math.h>         // fabsf
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>     // mmap, madvise

#include "engine/core/ops.h"   // eng_matmul_nt_rowwise, eng_matmul_nt_naive
#include "engine/core/util.h"  // eng_xaligned, eng_now

#if !defined(__AVX2__) || !defined(__FMA__)
#error "bench_lm_mm needs -march=x86-64-v3 (AVX2 + FMA)"
#endif

// ---------------------------------------------------------------- prototype kernel
// out[i, j] = A[i, :] . B[j, :] with ONE 8-lane accumulator per output, k in
// steps of 8, then the lane tree ((0+4)+(2+6))+((1+5)+(3+7)), then the K % 8
// tail: the same order for every output whatever the tile, so a row's bits
// never depend on M (batch-invariant like eng_matmul_nt_rowwise). Tiles of
// R rows x J weight rows keep R*J accumulators in registers: each A load
// feeds J FMAs and each B load R FMAs (4x2: 0.75 loads per FMA; rowwise's
// 4-row tile: 1.25, and A is re-read from cache for every weight row).
static inline __attribute__((always_inline)) float hsum8(__m256 v) {
    float t[8];
    _mm256_storeu_ps(t, v);
    return ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]));
}

static inline __attribute__((always_inline)) void
tile(float *restrict out, int ldo, const float *restrict A, const float *restrict B, int K, int accumulate,
     const int R, const int J) {
    __m256 s[4][8];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int j = 0; j < J; j++) s[r][j] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 a[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) a[r] = _mm256_loadu_ps(A + (size_t)r * K + k);
#pragma GCC unroll 8
        for (int j = 0; j < J; j++) {
            __m256 b = _mm256_loadu_ps(B + (size_t)j * K + k);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) s[r][j] = _mm256_fmadd_ps(a[r], b, s[r][j]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int j = 0; j < J; j++) {
            float v = hsum8(s[r][j]);
            for (int kk = k; kk < K; kk++) v += A[(size_t)r * K + kk] * B[(size_t)j * K + kk];
            float *o = out + (size_t)r * ldo + j;
            *o = accumulate ? *o + v : v;
        }
}

// J weight rows at a time; for each, all M rows in tiles of 4 (then 3/2/1).
// J = 8 when M == 1 (eight independent chains), else 2: 4x2 accumulators +
// 4 A vectors + 1 B vector fit the 16 ymm registers (4x3 did not: gcc then
// reloads A for every FMA).
#define TILE_J(R, J) tile(out + (size_t)i * N + j, N, A + (size_t)i * K, B + (size_t)j * K, K, accumulate, R, J)
static void tile_nt(float *out, const float *A, const float *B, int M, int N, int K, int accumulate) {
    int j = 0;
    if (M == 1) {
        int i = 0;
        for (; j + 8 <= N; j += 8) TILE_J(1, 8);
    }
    for (; j + 2 <= N; j += 2) {
        int i = 0;
        for (; i + 4 <= M; i += 4) TILE_J(4, 2);
        switch (M - i) {
        case 3: TILE_J(3, 2); break;
        case 2: TILE_J(2, 2); break;
        case 1: TILE_J(1, 2); break;
        default: break;
        }
    }
    for (; j < N; j++) {
        int i = 0;
        for (; i + 4 <= M; i += 4) TILE_J(4, 1);
        for (; i < M; i++) TILE_J(1, 1);
    }
}

static void sgemm_nt(float *out, const float *A, const float *B, int M, int N, int K, int accumulate) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, accumulate ? 1.0f : 0.0f, out, N);
}

typedef void (*mm_fn)(float *, const float *, const float *, int, int, int, int);

// ---------------------------------------------------------------- the step
typedef struct { int n, k; size_t off; } mat;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void fill(float *x, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = ((float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f) * 0.05f;
    }
}

int main(int argc, char **argv) {
    int rows[8] = {1, 4, 16}, nrows = 3, rounds = 5, C = 768, L = 12, V = 50257;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc) {
            nrows = 0;
            for (char *t = strtok(argv[++i], ","); t && nrows < 8; t = strtok(NULL, ",")) rows[nrows++] = atoi(t);
        } else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dim") && i + 1 < argc) C = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) L = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--vocab") && i + 1 < argc) V = atoi(argv[++i]);
        else { fprintf(stderr, "usage: bench_lm_mm [--rows 1,4,16] [--rounds 5] [--dim C --layers L --vocab V]\n"); return 2; }
    }
    if (rounds < 1) rounds = 1;
    openblas_set_num_threads(1);
    int H = 4 * C, maxM = 1;
    for (int r = 0; r < nrows; r++) maxM = rows[r] > maxM ? rows[r] : maxM;

    // weight matrices in model order
    int nm = 4 * L + 1;
    mat *ms = malloc((size_t)nm * sizeof *ms);
    size_t total = 0;
    for (int l = 0; l < L; l++) {
        int shapes[4][2] = {{3 * C, C}, {C, C}, {H, C}, {C, H}};
        for (int q = 0; q < 4; q++) {
            ms[4 * l + q] = (mat){shapes[q][0], shapes[q][1], total};
            total += (size_t)shapes[q][0] * shapes[q][1];
        }
    }
    ms[4 * L] = (mat){V, C, total};
    total += (size_t)V * C;
    // the weights twice: ordinary 4 KiB pages (what the engine's copies and
    // mappings mostly get) and madvise(MADV_HUGEPAGE) (what they could get)
    float *Wp[2];
    for (int h = 0; h < 2; h++) {
        Wp[h] = mmap(NULL, total * sizeof(float), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (Wp[h] == MAP_FAILED) { fprintf(stderr, "bench_lm_mm: out of memory\n"); return 1; }
        (void)madvise(Wp[h], total * sizeof(float), h ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
        fill(Wp[h], total, 1);
    }
    float *A = eng_xaligned((size_t)maxM * H * sizeof(float));
    int maxN = V > H ? V : H;
    maxN = maxN > 3 * C ? maxN : 3 * C;
    float *out = eng_xaligned((size_t)maxM * maxN * sizeof(float));
    fill(A, (size_t)maxM * H, 2);
    double bytes = (double)total * sizeof(float);
    printf("mm weights=%.1f MB per step (%d matrices, dim %d, layers %d, vocab %d), 1 thread unless named\n",
           bytes / 1e6, nm, C, L, V);

    // checks on a small shape: accuracy vs naive, invariance of row 0 (M=1 vs M=16)
    {
        int cm = 16, cn = 37, ck = 203;
        float *ca = eng_xaligned((size_t)cm * ck * 4), *cb = eng_xaligned((size_t)cn * ck * 4);
        float *o1 = eng_xaligned((size_t)cm * cn * 4), *o2 = eng_xaligned((size_t)cm * cn * 4);
        float *o3 = eng_xaligned((size_t)cn * 4);
        fill(ca, (size_t)cm * ck, 3);
        fill(cb, (size_t)cn * ck, 4);
        eng_matmul_nt_naive(o1, ca, cb, cm, cn, ck, 0);
        const char *names[3] = {"rowwise", "tile", "sgemm"};
        mm_fn fns[3] = {eng_matmul_nt_rowwise, tile_nt, sgemm_nt};
        for (int f = 0; f < 3; f++) {
            fns[f](o2, ca, cb, cm, cn, ck, 0);
            float md = 0;
            for (int i = 0; i < cm * cn; i++) md = fmaxf(md, fabsf(o1[i] - o2[i]));
            fns[f](o3, ca, cb, 1, cn, ck, 0);
            int inv = memcmp(o3, o2, (size_t)cn * 4) == 0;
            printf("mm check kernel=%s max_abs_diff_vs_naive=%.2g row0_same_bits_M1_M16=%s\n", names[f], md,
                   inv ? "yes" : "no");
        }
        free(ca); free(cb); free(o1); free(o2); free(o3);
    }

    const char *names[4] = {"rowwise", "tile", "sgemm", "sgemm-2threads"};
    mm_fn fns[4] = {eng_matmul_nt_rowwise, tile_nt, sgemm_nt, sgemm_nt};
    double *sec = malloc((size_t)rounds * sizeof(double));
    for (int ri = 0; ri < nrows; ri++)
      for (int h = 0; h < 2; h++) {
        int M = rows[ri];
        const float *W = Wp[h];
        for (int f = 0; f < 4; f++) {
            if (h && f != 0) continue;   // huge pages: the serving kernel only
            openblas_set_num_threads(f == 3 ? 2 : 1);
            for (int r = -1; r < rounds; r++) {   // r = -1 warms up
                double t0 = eng_now();
                for (int q = 0; q < nm; q++) fns[f](out, A, W + ms[q].off, M, ms[q].n, ms[q].k, 0);
                if (r >= 0) sec[r] = eng_now() - t0;
            }
            qsort(sec, (size_t)rounds, sizeof *sec, cmp_double);
            double s = sec[rounds / 2];
            printf("mm kernel=%s pages=%s M=%d ms_step=%.2f weights_GB_s=%.1f GFLOP_s=%.1f\n", names[f],
                   h ? "huge" : "4k", M, 1e3 * s, bytes / s / 1e9, 2.0 * M * (double)total / s / 1e9);
            fflush(stdout);
        }
    }
    for (int h = 0; h < 2; h++) munmap(Wp[h], total * sizeof(float));
    free(sec); free(ms); free(A); free(out);
    return 0;
}
