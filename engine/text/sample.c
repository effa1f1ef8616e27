// sample.c — token sampling in linear time (see sample.h).
#include "engine/text/sample.h"
#include "engine/core/act_internal.h"   // eng__max_avx512, eng__exp_sum_avx512/avx2
#include "engine/core/cpu.h"            // eng_cpu_level_get
#include <math.h>     // expf, logf, INFINITY
#include <stdlib.h>   // qsort_r
#include <string.h>   // memcpy

int eng_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static float max_of(const float *x, int n) {
    float m = -INFINITY;
    for (int i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

float eng_logprob(const float *x, int n, int id) {
    float m = max_of(x, n);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)(x[i] - m));
    return (float)((double)(x[id] - m) - log(sum));
}

// Partially orders idx[0..n) by val[idx[.]] descending so that the first k
// are the k largest (Hoare-style quickselect; expected linear time).
static void select_top(int *idx, const float *val, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = val[idx[(lo + hi) / 2]];
        int i = lo, j = hi;
        while (i <= j) {
            while (val[idx[i]] > pivot) i++;
            while (val[idx[j]] < pivot) j--;
            if (i <= j) { int t = idx[i]; idx[i] = idx[j]; idx[j] = t; i++; j--; }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

// Descending by probability, ties by lower id: a total order, so the
// nucleus is the same for the same logits whatever qsort does with ties.
static int by_prob_desc(const void *a, const void *b, void *ctx) {
    const float *p = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    if (p[i] != p[j]) return p[i] > p[j] ? -1 : 1;
    return (i > j) - (i < j);
}

void eng_top_logprobs(const float *x, int n, int k, int *ids, float *logprobs) {
    if (k > n) k = n;
    // k <= 20: a single pass keeping a sorted list of the best k
    int cnt = 0;
    for (int i = 0; i < n; i++) {
        if (cnt == k && x[i] <= x[ids[k - 1]]) continue;
        int j = cnt < k ? cnt++ : k - 1;
        while (j > 0 && x[ids[j - 1]] < x[i]) { ids[j] = ids[j - 1]; j--; }
        ids[j] = i;
    }
    float m = max_of(x, n);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)(x[i] - m));
    float lse = m + (float)log(sum);
    for (int i = 0; i < k; i++) logprobs[i] = x[ids[i]] - lse;
}

// The order users of OpenAI, vLLM and HF expect: temperature, then top-k,
// then top-p over the renormalised top-k distribution; the most likely token
// always survives, so the result is a valid id for any knob values.
int eng_sample(const eng_sampler *s, const float *logits, int n, eng_rng *rng, float *scratch) {
    if (s->temperature <= 0 || n == 1) return eng_argmax(logits, n);
    float *p = scratch;                 // probabilities [n]
    int *idx = (int *)(scratch + n);    // candidate ids [n]
    float inv_t = 1.0f / s->temperature;
    double sum = 0;
    // the unnormalised probabilities: vector exp where the CPU has it (a
    // 32,000-word vocabulary took ~230 us a token with expf; act_simd.c)
    eng_cpu_level lvl = eng_cpu_level_get();
    if (lvl == ENG_CPU_AVX512) {
        sum = eng__exp_sum_avx512(p, logits, n, eng__max_avx512(logits, n), inv_t);
    } else if (lvl == ENG_CPU_AVX2) {
        sum = eng__exp_sum_avx2(p, logits, n, max_of(logits, n), inv_t);
    } else {
        float m = max_of(logits, n);
        for (int i = 0; i < n; i++) {
            float e = expf((logits[i] - m) * inv_t);
            p[i] = e >= 0 ? e : 0;          // NaN logits (a broken model) are never drawn
            sum += p[i];
        }
    }
    if (!(sum > 0) || !isfinite(sum)) return eng_argmax(logits, n);
    if (!(s->top_k > 0 && s->top_k < n) && !(s->top_p > 0 && s->top_p < 1)) {
        // temperature alone: draw straight from p (no candidate list)
        double r = (double)eng_rng_uniform(rng) * sum, acc = 0;
        int last = 0;
        for (int i = 0; i < n; i++) {
            if (p[i] <= 0) continue;
            acc += p[i];
            last = i;
            if (r < acc) return i;
        }
        return last;   // rounding: the last token with any probability
    }
    for (int i = 0; i < n; i++) idx[i] = i;

    int cand = n;
    if (s->top_k > 0 && s->top_k < n) {
        select_top(idx, p, n, s->top_k);
        cand = s->top_k;
    }
    double total = 0;                   // mass of the candidates (renormalises top-k)
    for (int i = 0; i < cand; i++) total += p[idx[i]];
    if (s->top_p > 0 && s->top_p < 1) {
        // Tokens below (1-top_p)*total/(cand-1) can never be needed to reach top_p
        // of the mass (llama2.c's cutoff): they are dropped before the sort, but
        // the most likely candidate is always kept.
        double cutoff = cand > 1 ? (1.0 - s->top_p) * total / (cand - 1) : 0;
        int best = 0, kept = 0;
        for (int i = 1; i < cand; i++)
            if (p[idx[i]] > p[idx[best]] || (p[idx[i]] == p[idx[best]] && idx[i] < idx[best])) best = i;
        int t = idx[0]; idx[0] = idx[best]; idx[best] = t;
        kept = 1;
        for (int i = 1; i < cand; i++)
            if (p[idx[i]] >= cutoff) idx[kept++] = idx[i];
        qsort_r(idx, (size_t)kept, sizeof(int), by_prob_desc, p);
        double cum = 0, target = s->top_p * total;
        int last = kept - 1;
        for (int i = 0; i < kept; i++) {
            cum += p[idx[i]];
            if (cum >= target) { last = i; break; }
        }
        cand = last + 1;
        total = 0;
        for (int i = 0; i < cand; i++) total += p[idx[i]];
    }
    // draw from the (renormalised) candidates
    double r = (double)eng_rng_uniform(rng) * total, acc = 0;
    for (int i = 0; i < cand; i++) {
        acc += p[idx[i]];
        if (r < acc) return idx[i];
    }
    return idx[cand - 1];   // rounding: the last candidate
}
