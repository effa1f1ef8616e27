// sample.h — choosing the next token from logits: greedy (temperature 0),
// temperature, top-k, top-p (nucleus), with a per-request seeded RNG so the
// same seed and request give the same tokens whatever else is running.
// Linear time in the vocabulary (PERF-NOTES: a full sort of 32,000 logits
// costs more than a small model's forward pass): top-k by selection,
// top-p over the candidates above a cutoff only.
#ifndef ENG_SAMPLE_H
#define ENG_SAMPLE_H
#include "engine/core/rng.h"   // eng_rng

typedef struct {
    float temperature;   // 0 = greedy; else logits / temperature
    int top_k;           // keep the k most likely tokens; 0 = off
    float top_p;         // keep the smallest set with cumulative probability >= top_p; 1 = off
} eng_sampler;

// Index of the largest logit (ties: the lowest index).
int eng_argmax(const float *logits, int n);

// Samples a token. `scratch` must hold 2*n floats (as ints/floats; reused, no
// allocation). Modifies nothing in `logits`.
int eng_sample(const eng_sampler *s, const float *logits, int n, eng_rng *rng, float *scratch);

// log-softmax value of token `id` under logits (computed in one pass, stable).
float eng_logprob(const float *logits, int n, int id);
// The k most likely tokens' ids and log-probabilities, most likely first (k <= 20).
void eng_top_logprobs(const float *logits, int n, int k, int *ids, float *logprobs);

#endif
