// cpu.h — the CPU's vector features, detected once at run time, and the ISA
// level the engine's kernels use (the binary itself is built for baseline
// x86-64; kernels for wider ISAs are compiled with target attributes and
// picked here). The level is the highest one the CPU offers unless the
// environment variable INFERD_CPU=generic|avx2|avx512 (or
// eng_cpu_set_level, for tests) asks for a lower one; never a higher one.
#ifndef ENG_CPU_H
#define ENG_CPU_H

#include <stddef.h>  // size_t

typedef enum {
    ENG_CPU_GENERIC = 0,  // plain C (SSE2 at most: what every x86-64 has)
    ENG_CPU_AVX2,         // AVX2 + FMA (x86-64-v3)
    ENG_CPU_AVX512,       // AVX-512 F + BW + VL (and AVX2 + FMA)
    ENG_CPU_N_LEVELS
} eng_cpu_level;

// What the CPU (and OS: the register state is enabled) offers.
typedef struct {
    int avx2, fma;
    int avx512f, avx512bw, avx512vl;
    int avx512vnni;  // AVX-512 VNNI: int8 dot products on zmm
    int avxvnni;     // AVX-VNNI: the same on ymm (VEX encoded)
} eng_cpu_features;

// The detected features (computed on first call; thread-safe).
const eng_cpu_features *eng_cpu_features_get(void);
// The highest level the CPU can run.
eng_cpu_level eng_cpu_level_max(void);
// The level kernels use now: on first call the maximum, lowered by
// INFERD_CPU if set (a bad or too-high value falls back to the maximum with a
// message on stderr; servers call eng_cpu_init first to fail cleanly instead).
eng_cpu_level eng_cpu_level_get(void);
// Reads INFERD_CPU and sets the level from it (or the maximum when unset).
// Returns 0, or -1 with *err when the value is unknown or above what the CPU
// has (the level is then the maximum).
int eng_cpu_init(char **err);
// Forces a level (tests, benchmarks). Returns 0, or -1 with *err when the CPU
// lacks it (the level is then unchanged). Not for use while kernels run.
int eng_cpu_set_level(eng_cpu_level lvl, char **err);
// "generic", "avx2", "avx512"; "?" for anything else.
const char *eng_cpu_level_name(eng_cpu_level lvl);
// Parses a level name (exact, lower case); returns the level or -1.
int eng_cpu_level_parse(const char *name);
// One line for logs, e.g. "avx512 (cpu: avx2 fma avx512f avx512bw avx512vl
// avx512vnni avxvnni; INFERD_CPU=avx2)". Returns buf.
const char *eng_cpu_describe(char *buf, size_t n);

#endif
