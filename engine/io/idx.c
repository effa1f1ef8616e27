// idx.c — loader for IDX files (MNIST / Fashion-MNIST), raw or gzip'd; see
// idx.h. zlib's gzread passes non-gzip files through unchanged, so one code
// path serves both. Not here: splitting into images/labels or normalising.
#include "engine/io/idx.h"
#include "engine/core/util.h"   // eng_errorf

#include <errno.h>         // errno
#include <limits.h>        // INT_MAX
#include <stdlib.h>        // realloc, free
#include <string.h>        // strerror, memset
#include <zlib.h>          // gzopen, gzread, gzerror

#define IDX_MAX_BYTES ((uint64_t)1 << 34)   // 16 GiB: anything claiming more is not a dataset we serve
#define IDX_FIRST_ALLOC ((size_t)16 << 20)  // bytes allocated before the data proves to exist

// Reads up to n bytes; returns the count read (short only at EOF), -1 on a
// zlib error (then *msg points to zlib's text).
static int64_t idx_read(gzFile gz, uint8_t *dst, size_t n, const char **msg) {
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done > (1u << 30) ? (1u << 30) : n - done;   // gzread takes an unsigned int
        int r = gzread(gz, dst + done, (unsigned)chunk);
        if (r < 0) {
            int zerr;
            *msg = gzerror(gz, &zerr);
            return -1;
        }
        if (r == 0) break;
        done += (size_t)r;
    }
    return (int64_t)done;
}

// Header, dims, then the data in growing chunks; on any failure out is left
// zeroed and nothing is leaked (single cleanup label).
int eng_idx_load(eng_idx *out, const char *path, char **err) {
    memset(out, 0, sizeof *out);
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz) return eng_errorf(err, "%s: %s", path, errno ? strerror(errno) : "cannot open");
    int rc = -1;
    uint8_t *data = NULL;
    const char *zmsg = NULL;

    uint8_t hdr[4 + 4 * 4];   // magic + up to 4 big-endian u32 dims
    int64_t got = idx_read(gz, hdr, 4, &zmsg);
    if (got != 4) {
        eng_errorf(err, "%s: %s", path, got < 0 ? zmsg : "too short for an IDX header");
        goto done;
    }
    if (hdr[0] != 0 || hdr[1] != 0) {
        eng_errorf(err, "%s: bad IDX magic %02x %02x (want 00 00)", path, hdr[0], hdr[1]);
        goto done;
    }
    if (hdr[2] != 0x08) {
        eng_errorf(err, "%s: IDX element type 0x%02x not supported (only 0x08, unsigned byte)", path, hdr[2]);
        goto done;
    }
    // dims[4] in idx.h bounds the rank; MNIST uses 1 (labels) and 3 (images).
    int ndim = hdr[3];
    if (ndim < 1 || ndim > 4) {
        eng_errorf(err, "%s: IDX has %d dimensions (1..4 supported)", path, ndim);
        goto done;
    }
    got = idx_read(gz, hdr + 4, 4 * (size_t)ndim, &zmsg);
    if (got != 4 * ndim) {
        eng_errorf(err, "%s: %s", path, got < 0 ? zmsg : "truncated IDX header");
        goto done;
    }
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        const uint8_t *p = hdr + 4 + 4 * i;
        uint32_t d = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (d > INT_MAX) {
            eng_errorf(err, "%s: IDX dimension %d is %u, too large", path, i, d);
            goto done;
        }
        out->dims[i] = (int)d;
        n *= d;   // at most 4 factors < 2^31 each: checked against the cap as we go
        if (n > IDX_MAX_BYTES) {
            eng_errorf(err, "%s: IDX claims more than %llu bytes", path, (unsigned long long)IDX_MAX_BYTES);
            goto done;
        }
    }

    // Grow the buffer as data arrives, so a 20-byte file claiming gigabytes
    // costs nothing before it is found to be truncated.
    size_t cap = n < IDX_FIRST_ALLOC ? (size_t)n : IDX_FIRST_ALLOC;
    data = malloc(cap ? cap : 1);
    if (!data) {
        eng_errorf(err, "%s: out of memory", path);
        goto done;
    }
    size_t have = 0;
    while (have < n) {
        if (have == cap) {
            size_t ncap = cap * 2 < n ? cap * 2 : (size_t)n;
            uint8_t *nd = realloc(data, ncap);
            if (!nd) {
                eng_errorf(err, "%s: out of memory for %llu bytes", path, (unsigned long long)n);
                goto done;
            }
            data = nd;
            cap = ncap;
        }
        got = idx_read(gz, data + have, cap - have, &zmsg);
        if (got < 0) {
            eng_errorf(err, "%s: %s", path, zmsg);
            goto done;
        }
        have += (size_t)got;
        if (have < cap) break;   // EOF
    }
    if (have != n) {
        eng_errorf(err, "%s: truncated: %zu of %llu data bytes", path, have, (unsigned long long)n);
        goto done;
    }
    // Data past the end means the dims lie as much as missing data does.
    uint8_t extra;
    got = idx_read(gz, &extra, 1, &zmsg);
    if (got != 0) {
        eng_errorf(err, "%s: %s", path, got < 0 ? zmsg : "data continues past the size given by the dims");
        goto done;
    }
    out->ndim = ndim;
    out->n = (size_t)n;
    out->data = data;
    data = NULL;
    rc = 0;
done:
    free(data);
    gzclose(gz);
    if (rc != 0) memset(out, 0, sizeof *out);
    return rc;
}

void eng_idx_free(eng_idx *x) {
    if (!x) return;
    free(x->data);
    memset(x, 0, sizeof *x);
}
