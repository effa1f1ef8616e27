// weights_map.h — a checkpoint file's bytes in memory, read-only, for
// serving: either the file mapped (pages shared with the page cache) or a
// copy on 2 MiB transparent huge pages.
//
// WHY a copy: a decode step streams every weight from DRAM once. From a file
// mapping the weights sit on 4 KiB pages, and one step over stories110M
// (438 MB) walks ~107,000 of them: measured here, the step's matmuls drew
// 48.6 GB/s from the file mapping and 59.2 GB/s from the same bytes on huge
// pages (2 compute threads), 1.22x (PERF-NOTES; make bench prints
// weights_on_huge). The page cache does not put file pages on PMD mappings
// on this kernel, so the weights are read into anonymous memory that can be.
// The cost: the copy is the process's own memory (the page cache's copy
// stays reclaimable), and loading reads the file once.
#ifndef ENG_WEIGHTS_MAP_H
#define ENG_WEIGHTS_MAP_H
#include <stddef.h>   // size_t

typedef enum {
    ENG_WEIGHTS_AUTO,   // huge when the kernel gives transparent huge pages to madvise, else file
    ENG_WEIGHTS_HUGE,   // a copy on 2 MiB pages (files of 4 MiB or more; smaller ones are mapped)
    ENG_WEIGHTS_FILE,   // the file mapped privately, read-only
} eng_weights_pages;

// Process-wide choice (the daemon's weights_pages option); default AUTO.
void eng_weights_pages_set(eng_weights_pages p);
// The choice in effect for a file of len bytes: HUGE or FILE (AUTO resolved).
eng_weights_pages eng_weights_pages_for(size_t len);
// Parses "auto", "huge" or "file": 0, or -1 for anything else.
int eng_weights_pages_parse(const char *s, eng_weights_pages *out);

// The first len (> 0) bytes of the open file fd, read-only, placed as
// eng_weights_pages_for(len) says. Returns the address, or NULL with errno
// set (the file shorter than len gives EIO). Release with munmap(p, len),
// whichever way it was placed.
void *eng_weights_map(int fd, size_t len);

#endif
