// rng.h — a small, seedable, reproducible random number generator
// (SplitMix64 for seeding, xoshiro256** for the stream). Used for weight
// init, data shuffling and sampling; never global, so results depend only on
// the seed.
#ifndef ENG_RNG_H
#define ENG_RNG_H
#include <stdint.h>   // uint64_t

typedef struct { uint64_t s[4]; } eng_rng;

void eng_rng_seed(eng_rng *r, uint64_t seed);
uint64_t eng_rng_u64(eng_rng *r);
// Uniform in [0, 1).
float eng_rng_uniform(eng_rng *r);
// Standard normal (Box-Muller).
float eng_rng_normal(eng_rng *r);
// Uniform integer in [0, n) (n > 0), without modulo bias.
uint64_t eng_rng_below(eng_rng *r, uint64_t n);

#endif
