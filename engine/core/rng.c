// rng.c — SplitMix64 + xoshiro256** (Blackman & Vigna, public domain algorithms).
#include "engine/core/rng.h"
#include <math.h>   // logf, sqrtf, cosf

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void eng_rng_seed(eng_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t eng_rng_u64(eng_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float eng_rng_uniform(eng_rng *r) {
    return (float)(eng_rng_u64(r) >> 40) * (1.0f / 16777216.0f);   // 24 random bits
}

float eng_rng_normal(eng_rng *r) {
    float u1 = eng_rng_uniform(r), u2 = eng_rng_uniform(r);
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

uint64_t eng_rng_below(eng_rng *r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;   // reject the biased tail
    uint64_t x;
    do { x = eng_rng_u64(r); } while (x >= limit);
    return x % n;
}
