// sample.c — token sampling in linear time (see sample.h).
#include "engine/sample.h"
#include <math.h>     // expf, logf, INFINITY
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

// Sorts a small candidate list descending by value (insertion sort; lists are short).
static void sort_desc(int *idx, const float *val, int n) {
    for (int i = 1; i < n; i++) {
        int v = idx[i], j = i - 1;
        while (j >= 0 && val[idx[j]] < val[v]) { idx[j + 1] = idx[j]; j--; }
        idx[j + 1] = v;
    }
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

int eng_sample(const eng_sampler *s, const float *logits, int n, eng_rng *rng, float *scratch) {
    if (s->temperature <= 0) return eng_argmax(logits, n);
    float *p = scratch;                 // probabilities [n]
    int *idx = (int *)(scratch + n);    // candidate ids [n]
    float inv_t = 1.0f / s->temperature, m = max_of(logits, n);
    double sum = 0;
    for (int i = 0; i < n; i++) { p[i] = expf((logits[i] - m) * inv_t); sum += p[i]; }
    float inv_sum = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) p[i] *= inv_sum;

    int cand = n;
    for (int i = 0; i < n; i++) idx[i] = i;
    if (s->top_k > 0 && s->top_k < n) {
        select_top(idx, p, n, s->top_k);
        cand = s->top_k;
    }
    if (s->top_p > 0 && s->top_p < 1) {
        // tokens below (1-top_p)/(cand-1) can never be in the nucleus (llama2.c's cutoff)
        float cutoff = cand > 1 ? (1.0f - s->top_p) / (float)(cand - 1) : 0.0f;
        int kept = 0;
        for (int i = 0; i < cand; i++)
            if (p[idx[i]] >= cutoff) idx[kept++] = idx[i];
        sort_desc(idx, p, kept);
        double cum = 0;
        int last = kept - 1;
        for (int i = 0; i < kept; i++) {
            cum += p[idx[i]];
            if (cum >= s->top_p) { last = i; break; }
        }
        cand = last + 1;
    }
    // draw from the (renormalised) candidates
    double total = 0;
    for (int i = 0; i < cand; i++) total += p[idx[i]];
    double r = (double)eng_rng_uniform(rng) * total, acc = 0;
    for (int i = 0; i < cand; i++) {
        acc += p[idx[i]];
        if (r < acc) return idx[i];
    }
    return idx[cand - 1];   // rounding: the last candidate
}
