// cpu.c — run-time CPU feature detection and the kernels' ISA level (cpu.h).
// gcc's __builtin_cpu_supports reads cpuid and checks with xgetbv that the OS
// saves the ymm/zmm state, so a feature reported here is usable.
#include "engine/core/cpu.h"

#include <cpuid.h>     // __get_cpuid_count
#include <pthread.h>   // pthread_once
#include <stdatomic.h> // atomic_int
#include <stdio.h>     // snprintf, fprintf
#include <stdlib.h>    // getenv, free
#include <string.h>    // strcmp

#include "engine/core/util.h"  // eng_errorf

static eng_cpu_features feats;
static eng_cpu_level level_max_;
static atomic_int level_now = -1;  // -1: not chosen yet
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

static const char *const level_names[ENG_CPU_N_LEVELS] = {"generic", "avx2", "avx512"};
_Static_assert(sizeof level_names / sizeof level_names[0] == ENG_CPU_N_LEVELS, "one name per level");

static void detect(void)
{
    __builtin_cpu_init();
    feats.avx2 = __builtin_cpu_supports("avx2") != 0;
    feats.fma = __builtin_cpu_supports("fma") != 0;
    feats.avx512f = __builtin_cpu_supports("avx512f") != 0;
    feats.avx512bw = __builtin_cpu_supports("avx512bw") != 0;
    feats.avx512vl = __builtin_cpu_supports("avx512vl") != 0;
    feats.avx512vnni = __builtin_cpu_supports("avx512vnni") != 0;
    // AVX-VNNI: cpuid leaf 7 sub-leaf 1, EAX bit 4 (clang 14's builtin does not
    // know the name); its ymm state is the one AVX2 needs, checked above.
    unsigned a, b, c, d;
    feats.avxvnni = feats.avx2 && __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 4) & 1);
    level_max_ = ENG_CPU_GENERIC;
    if (feats.avx2 && feats.fma) level_max_ = ENG_CPU_AVX2;
    if (level_max_ == ENG_CPU_AVX2 && feats.avx512f && feats.avx512bw && feats.avx512vl) level_max_ = ENG_CPU_AVX512;
}

const eng_cpu_features *eng_cpu_features_get(void)
{
    pthread_once(&detect_once, detect);
    return &feats;
}

eng_cpu_level eng_cpu_level_max(void)
{
    pthread_once(&detect_once, detect);
    return level_max_;
}

const char *eng_cpu_level_name(eng_cpu_level lvl)
{
    return (unsigned)lvl < ENG_CPU_N_LEVELS ? level_names[lvl] : "?";
}

int eng_cpu_level_parse(const char *name)
{
    for (int i = 0; name && i < ENG_CPU_N_LEVELS; i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    return -1;
}

int eng_cpu_set_level(eng_cpu_level lvl, char **err)
{
    eng_cpu_level max = eng_cpu_level_max();
    if ((unsigned)lvl >= ENG_CPU_N_LEVELS) return eng_errorf(err, "unknown CPU level %d", (int)lvl);
    if (lvl > max)
        return eng_errorf(err, "this CPU cannot run %s kernels (it offers up to %s)", eng_cpu_level_name(lvl),
                          eng_cpu_level_name(max));
    atomic_store(&level_now, (int)lvl);
    return 0;
}

int eng_cpu_init(char **err)
{
    eng_cpu_level max = eng_cpu_level_max();
    const char *env = getenv("INFERD_CPU");
    atomic_store(&level_now, (int)max);
    if (!env || !*env) return 0;
    int want = eng_cpu_level_parse(env);
    if (want < 0)
        return eng_errorf(err, "INFERD_CPU=%s: unknown level (use generic, avx2 or avx512); using %s", env,
                          eng_cpu_level_name(max));
    if (want > (int)max)
        return eng_errorf(err, "INFERD_CPU=%s: this CPU offers up to %s; using %s", env,
                          eng_cpu_level_name(max), eng_cpu_level_name(max));
    atomic_store(&level_now, want);
    return 0;
}

eng_cpu_level eng_cpu_level_get(void)
{
    int l = atomic_load_explicit(&level_now, memory_order_relaxed);
    if (l >= 0) return (eng_cpu_level)l;
    // First use without eng_cpu_init (tools, tests): same choice, and a
    // bad INFERD_CPU is reported rather than silently ignored.
    char *err = NULL;
    if (eng_cpu_init(&err) != 0) {
        fprintf(stderr, "inferd: %s\n", err);
        free(err);
    }
    return (eng_cpu_level)atomic_load(&level_now);
}

const char *eng_cpu_describe(char *buf, size_t n)
{
    const eng_cpu_features *f = eng_cpu_features_get();
    const char *env = getenv("INFERD_CPU");
    snprintf(buf, n, "%s (cpu:%s%s%s%s%s%s%s%s%s%s)", eng_cpu_level_name(eng_cpu_level_get()),
             f->avx2 ? " avx2" : "", f->fma ? " fma" : "", f->avx512f ? " avx512f" : "",
             f->avx512bw ? " avx512bw" : "", f->avx512vl ? " avx512vl" : "", f->avx512vnni ? " avx512vnni" : "",
             f->avxvnni ? " avxvnni" : "", (f->avx2 || f->avx512f) ? "" : " baseline x86-64",
             env && *env ? "; INFERD_CPU=" : "", env && *env ? env : "");
    return buf;
}
