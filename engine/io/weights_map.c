// weights_map.c — a checkpoint's bytes, mapped or on huge pages (see
// weights_map.h).
#include "engine/io/weights_map.h"

#include <errno.h>      // errno, EIO, EINTR
#include <stdatomic.h>  // the process-wide choice
#include <stdint.h>     // uintptr_t
#include <stdio.h>      // fopen, fgets
#include <string.h>     // strcmp, strstr
#include <sys/mman.h>   // mmap, madvise, mprotect, munmap
#include <unistd.h>     // pread

enum { HUGE_PAGE = 2u << 20, SMALL_PAGE = 4096, MIN_HUGE_FILE = 4u << 20 };

static _Atomic int pages_choice = ENG_WEIGHTS_AUTO;

void eng_weights_pages_set(eng_weights_pages p) { atomic_store(&pages_choice, (int)p); }

int eng_weights_pages_parse(const char *s, eng_weights_pages *out) {
    if (!s) return -1;
    if (strcmp(s, "auto") == 0) *out = ENG_WEIGHTS_AUTO;
    else if (strcmp(s, "huge") == 0) *out = ENG_WEIGHTS_HUGE;
    else if (strcmp(s, "file") == 0) *out = ENG_WEIGHTS_FILE;
    else return -1;
    return 0;
}

// Whether madvise(MADV_HUGEPAGE) gets huge pages: THP "always" or "madvise"
// (not "never", and not a kernel without THP). Read once.
static int thp_usable(void) {
    static _Atomic int known = -1;
    int k = atomic_load(&known);
    if (k >= 0) return k;
    k = 0;
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        char line[128] = "";
        if (fgets(line, sizeof line, f)) k = strstr(line, "[always]") != NULL || strstr(line, "[madvise]") != NULL;
        fclose(f);
    }
    atomic_store(&known, k);
    return k;
}

eng_weights_pages eng_weights_pages_for(size_t len) {
    int c = atomic_load(&pages_choice);
    if (c == ENG_WEIGHTS_FILE || len < MIN_HUGE_FILE) return ENG_WEIGHTS_FILE;
    if (c == ENG_WEIGHTS_HUGE) return ENG_WEIGHTS_HUGE;
    return thp_usable() ? ENG_WEIGHTS_HUGE : ENG_WEIGHTS_FILE;
}

// Anonymous memory of len bytes (rounded to 4 KiB) starting on a 2 MiB
// boundary: over-reserve by 2 MiB, then unmap the unaligned head and the
// tail, so munmap(p, len) later releases exactly what is left.
static void *aligned_anon(size_t len) {
    size_t body = (len + SMALL_PAGE - 1) & ~(size_t)(SMALL_PAGE - 1);
    if (body < len || body + HUGE_PAGE < body) { errno = ENOMEM; return NULL; }
    char *raw = mmap(NULL, body + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    char *p = (char *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (p > raw) munmap(raw, (size_t)(p - raw));
    size_t tail = (size_t)(raw + body + HUGE_PAGE - (p + body));
    if (tail) munmap(p + body, tail);
    return p;
}

void *eng_weights_map(int fd, size_t len) {
    if (len == 0) { errno = EINVAL; return NULL; }
    if (eng_weights_pages_for(len) == ENG_WEIGHTS_FILE) {
        void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) return NULL;
        (void)madvise(map, len, MADV_WILLNEED);   // a hint: read ahead
        return map;
    }
    char *p = aligned_anon(len);
    if (!p) return NULL;
    (void)madvise(p, len & ~(size_t)(HUGE_PAGE - 1), MADV_HUGEPAGE);   // a hint: failure only costs speed
    for (size_t off = 0; off < len;) {
        ssize_t r = pread(fd, p + off, len - off, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;   // 0: the file shrank under us
            munmap(p, len);
            errno = e;
            return NULL;
        }
        off += (size_t)r;
    }
    (void)mprotect(p, len, PROT_READ);   // as a read-only mapping: a stray write faults
    return p;
}
