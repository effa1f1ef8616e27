// safetensors.c — validating reader (mmap or caller's buffer) and atomic
// writer for the safetensors format; see safetensors.h for the layout.
// Not here: any notion of which tensors a model needs (the architectures ask
// by name through eng_st_get) and any dtype but F32 and I8 (int8 weights) on the write side.
// Assumes a little-endian host, as the file format is little-endian.
#include "engine/io/safetensors.h"
#include "engine/core/util.h"   // eng_errorf, eng_xmalloc (writer only), eng_write_file_atomic
#include "engine/io/weights_map.h"   // eng_weights_map

#include <errno.h>         // errno
#include <fcntl.h>         // open
#include <jansson.h>       // json_loadb, json_object_*, json_dumps
#include <math.h>          // ldexpf, INFINITY, NAN
#include <stdlib.h>        // malloc, free, qsort, bsearch
#include <string.h>        // memcpy, strcmp, strerror
#include <sys/mman.h>      // munmap
#include <sys/stat.h>      // fstat
#include <unistd.h>        // close

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads little-endian data in place; port the loads first"
#endif

#define ST_MAX_HEADER ((uint64_t)100 << 20)   // bytes; larger headers are refused as absurd

// ---------------------------------------------------------------------------
// dtypes

typedef struct {
    const char *name;   // as spelled in the header
    size_t size;        // bytes per element
} st_dtype;

// Every dtype of the safetensors spec. Only F32/F16/BF16 get an F32 view.
static const st_dtype st_dtypes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2},
    {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
    {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},
    {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
};

// Table entry for a dtype name (case-sensitive, as the spec spells them), or
// NULL for anything else, which the caller refuses as unknown.
static const st_dtype *st_dtype_find(const char *name) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, name) == 0) return &st_dtypes[i];
    return NULL;
}

// IEEE 754 binary16 -> binary32, exact for every input (normals,
// subnormals, signed zeros, infinities, NaNs keep their payload's top bits).
static float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15);
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0) {   // zero or subnormal: mant * 2^-24
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    }
    uint32_t bits;
    if (exp == 31) bits = 0x7f800000u | (mant << 13);            // inf / NaN
    else bits = ((exp + (127 - 15)) << 23) | (mant << 13);       // rebias exponent
    bits |= sign << 31;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// bfloat16 is the top half of a binary32.
static float st_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// ---------------------------------------------------------------------------
// parsing

// qsort/bsearch order of tensors: by name, so eng_st_find is O(log n).
static int st_cmp_name(const void *a, const void *b) {
    return strcmp(((const eng_st_tensor *)a)->name, ((const eng_st_tensor *)b)->name);
}

// Byte range of one tensor inside the data section, for the overlap check.
typedef struct {
    uint64_t begin, end;   // [begin, end) relative to the data section
    const char *name;      // borrowed from the tensor
} st_range;

// Orders ranges by begin, then end, so overlaps are between neighbours.
static int st_cmp_range(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

// Reads a JSON integer >= 0 into *v; 0 on success, -1 if not such a number.
static int st_json_uint(const json_t *j, uint64_t *v) {
    if (!json_is_integer(j) || json_integer_value(j) < 0) return -1;
    *v = (uint64_t)json_integer_value(j);
    return 0;
}

// Fills t (name already set) from its header entry and the data section
// [data, data + data_len). Stores the byte range in *r. 0 or -1 with *err.
static int st_parse_entry(eng_st_tensor *t, st_range *r, json_t *e,
                          const uint8_t *data, uint64_t data_len, char **err) {
    const char *nm = t->name;
    if (!json_is_object(e)) return eng_errorf(err, "safetensors: tensor '%s': entry is not an object", nm);

    // Presence first, so a missing key is named rather than reported as a
    // wrong type.
    json_t *jd = json_object_get(e, "dtype");
    json_t *js = json_object_get(e, "shape");
    json_t *jo = json_object_get(e, "data_offsets");
    if (!jd) return eng_errorf(err, "safetensors: tensor '%s': missing \"dtype\"", nm);
    if (!js) return eng_errorf(err, "safetensors: tensor '%s': missing \"shape\"", nm);
    if (!jo) return eng_errorf(err, "safetensors: tensor '%s': missing \"data_offsets\"", nm);

    if (!json_is_string(jd)) return eng_errorf(err, "safetensors: tensor '%s': \"dtype\" is not a string", nm);
    const st_dtype *dt = st_dtype_find(json_string_value(jd));
    if (!dt) return eng_errorf(err, "safetensors: tensor '%s': unknown dtype \"%.32s\"", nm, json_string_value(jd));
    snprintf(t->dtype, sizeof t->dtype, "%s", dt->name);

    // Shape: 0..ENG_ST_MAX_DIMS integers >= 0 (JSON reals such as 2.0 are
    // refused: a writer that emits them is not one we understand).
    if (!json_is_array(js)) return eng_errorf(err, "safetensors: tensor '%s': \"shape\" is not an array", nm);
    size_t nd = json_array_size(js);
    if (nd > ENG_ST_MAX_DIMS)
        return eng_errorf(err, "safetensors: tensor '%s': %zu dimensions, at most %d supported", nm, nd, ENG_ST_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (st_json_uint(json_array_get(js, i), &d) != 0)
            return eng_errorf(err, "safetensors: tensor '%s': shape[%zu] is not a non-negative integer", nm, i);
        // numel * d must fit in size_t and numel * d * dtype size in int64_t
        if (d != 0 && numel > (uint64_t)INT64_MAX / 8 / d)
            return eng_errorf(err, "safetensors: tensor '%s': shape product overflows", nm);
        numel *= d;
        t->shape[i] = (int64_t)d;
    }
    if (numel > SIZE_MAX / 8) return eng_errorf(err, "safetensors: tensor '%s': shape product overflows", nm);
    t->numel = (size_t)numel;

    // Offsets are relative to the data section; the byte length must match
    // the shape exactly, so no reader can walk past the tensor's bytes.
    uint64_t begin, end;
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        st_json_uint(json_array_get(jo, 0), &begin) != 0 || st_json_uint(json_array_get(jo, 1), &end) != 0)
        return eng_errorf(err, "safetensors: tensor '%s': \"data_offsets\" must be [begin, end] of non-negative integers", nm);
    if (begin > end)
        return eng_errorf(err, "safetensors: tensor '%s': data_offsets begin %llu > end %llu", nm,
                          (unsigned long long)begin, (unsigned long long)end);
    if (end > data_len)
        return eng_errorf(err, "safetensors: tensor '%s': data_offsets end %llu beyond the %llu data bytes (truncated file?)",
                          nm, (unsigned long long)end, (unsigned long long)data_len);
    if (end - begin != numel * dt->size)
        return eng_errorf(err, "safetensors: tensor '%s': %llu bytes but shape x %s needs %llu", nm,
                          (unsigned long long)(end - begin), dt->name, (unsigned long long)(numel * dt->size));
    r->begin = begin;
    r->end = end;
    r->name = nm;

    // F32 view: in place when aligned, otherwise an owned copy or conversion.
    const uint8_t *src = data + begin;
    t->raw = src;
    size_t alloc_n = t->numel ? t->numel : 1;   // never malloc(0): data == NULL means "not float"
    if (strcmp(dt->name, "F32") == 0) {
        if (((uintptr_t)src & 3) == 0) {
            t->data = (const float *)(const void *)src;
        } else {
            float *dst = malloc(alloc_n * sizeof(float));
            if (!dst) return eng_errorf(err, "safetensors: tensor '%s': out of memory for %zu floats", nm, alloc_n);
            memcpy(dst, src, t->numel * sizeof(float));
            t->data = dst;
            t->data_owned = 1;
        }
    } else if (strcmp(dt->name, "F16") == 0 || strcmp(dt->name, "BF16") == 0) {
        // Byte-wise loads: the source may sit at any address.
        int bf = dt->name[0] == 'B';
        float *dst = malloc(alloc_n * sizeof(float));
        if (!dst) return eng_errorf(err, "safetensors: tensor '%s': out of memory for %zu floats", nm, alloc_n);
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
            dst[i] = bf ? st_bf16_to_f32(h) : st_f16_to_f32(h);
        }
        t->data = dst;
        t->data_owned = 1;
    }
    return 0;
}

// Copies the string -> string "__metadata__" object into f->meta.
static int st_parse_meta(eng_st_file *f, json_t *m, char **err) {
    if (!json_is_object(m)) return eng_errorf(err, "safetensors: \"__metadata__\" is not an object");
    size_t n = json_object_size(m);
    f->meta = calloc(2 * n + 1, sizeof(char *));
    if (!f->meta) return eng_errorf(err, "safetensors: out of memory for __metadata__");
    const char *key;
    json_t *v;
    json_object_foreach(m, key, v) {
        if (!json_is_string(v)) return eng_errorf(err, "safetensors: __metadata__ \"%.64s\" is not a string", key);
        f->meta[2 * f->n_meta] = strdup(key);
        f->meta[2 * f->n_meta + 1] = strdup(json_string_value(v));
        if (!f->meta[2 * f->n_meta] || !f->meta[2 * f->n_meta + 1]) {
            free(f->meta[2 * f->n_meta]);
            free(f->meta[2 * f->n_meta + 1]);
            f->meta[2 * f->n_meta] = f->meta[2 * f->n_meta + 1] = NULL;
            return eng_errorf(err, "safetensors: out of memory for __metadata__");
        }
        f->n_meta++;
    }
    return 0;
}

// Validates and indexes buf into f (map fields untouched). On failure
// everything allocated so far is released by the caller via eng_st_close.
static int st_parse(eng_st_file *f, const uint8_t *buf, size_t len, char **err) {
    if (len < 8) return eng_errorf(err, "safetensors: file is %zu bytes, shorter than the 8-byte header length", len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen > ST_MAX_HEADER)
        return eng_errorf(err, "safetensors: header length %llu is absurd (limit %llu)", (unsigned long long)hlen,
                          (unsigned long long)ST_MAX_HEADER);
    if (hlen > len - 8)
        return eng_errorf(err, "safetensors: header length %llu exceeds the %zu bytes after it (truncated file?)",
                          (unsigned long long)hlen, len - 8);
    const uint8_t *data = buf + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;

    // Duplicate keys would let two entries claim one name; jansson refuses
    // them for us, and also anything but whitespace after the object.
    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return eng_errorf(err, "safetensors: header is not valid JSON: %s (at byte %d)", jerr.text, jerr.position);
    int rc = -1;
    st_range *ranges = NULL;
    if (!json_is_object(root)) {
        eng_errorf(err, "safetensors: header is not a JSON object");
        goto done;
    }

    // Every key but __metadata__ is a tensor.
    size_t n = json_object_size(root);
    json_t *meta = json_object_get(root, "__metadata__");
    if (meta) n--;
    if (n > INT32_MAX) {
        eng_errorf(err, "safetensors: too many tensors");
        goto done;
    }
    if (meta && st_parse_meta(f, meta, err) != 0) goto done;

    f->tensors = calloc(n ? n : 1, sizeof(eng_st_tensor));
    ranges = calloc(n ? n : 1, sizeof(st_range));
    if (!f->tensors || !ranges) {
        eng_errorf(err, "safetensors: out of memory for %zu tensors", n);
        goto done;
    }
    const char *key;
    json_t *e;
    json_object_foreach(root, key, e) {
        if (strcmp(key, "__metadata__") == 0) continue;
        eng_st_tensor *t = &f->tensors[f->n];
        t->name = strdup(key);
        if (!t->name) {
            eng_errorf(err, "safetensors: out of memory");
            goto done;
        }
        f->n++;
        if (st_parse_entry(t, &ranges[f->n - 1], e, data, data_len, err) != 0) goto done;
    }

    // No byte may belong to two tensors (empty tensors own no bytes). Gaps
    // between tensors are tolerated: they are harmless, and some writers
    // align tensors with padding.
    qsort(ranges, (size_t)f->n, sizeof *ranges, st_cmp_range);
    const st_range *prev = NULL;
    for (int i = 0; i < f->n; i++) {
        if (ranges[i].begin == ranges[i].end) continue;
        if (prev && ranges[i].begin < prev->end) {
            eng_errorf(err, "safetensors: tensors '%s' and '%s' overlap (bytes %llu..%llu and %llu..%llu)", prev->name,
                       ranges[i].name, (unsigned long long)prev->begin, (unsigned long long)prev->end,
                       (unsigned long long)ranges[i].begin, (unsigned long long)ranges[i].end);
            goto done;
        }
        prev = &ranges[i];
    }
    qsort(f->tensors, (size_t)f->n, sizeof *f->tensors, st_cmp_name);
    rc = 0;
done:
    free(ranges);
    json_decref(root);
    return rc;
}

// ---------------------------------------------------------------------------
// public: open / parse / close / lookup

// The caller's buffer is not owned: map stays NULL so close never unmaps it.
int eng_st_parse(eng_st_file *f, const void *buf, size_t len, char **err) {
    memset(f, 0, sizeof *f);
    if (!buf && len) return eng_errorf(err, "safetensors: NULL buffer");
    if (st_parse(f, buf, len, err) != 0) {
        eng_st_close(f);
        return -1;
    }
    return 0;
}

// The file's bytes read-only, shared by every worker: mapped privately (so
// nothing can write back to the file), or copied onto huge pages
// (engine/io/weights_map.h says when and why).
int eng_st_open(eng_st_file *f, const char *path, char **err) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return eng_errorf(err, "safetensors: %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return eng_errorf(err, "safetensors: %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return eng_errorf(err, "safetensors: %s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    if (len < 8) {   // also keeps mmap away from empty files
        close(fd);
        return eng_errorf(err, "safetensors: %s: file is %zu bytes, shorter than the 8-byte header length", path, len);
    }
    // mapped, or copied onto huge pages where that streams faster (weights_map.h)
    void *map = eng_weights_map(fd, len);
    int e = errno;
    close(fd);   // a mapping keeps the file alive
    if (!map) return eng_errorf(err, "safetensors: reading %s: %s", path, strerror(e));

    char *msg = NULL;
    if (st_parse(f, map, len, &msg) != 0) {
        eng_st_close(f);
        munmap(map, len);
        eng_errorf(err, "%s: %s", path, msg ? msg : "invalid safetensors file");
        free(msg);
        return -1;
    }
    f->map = map;
    f->map_len = len;
    return 0;
}

// Frees names, converted buffers and metadata, unmaps, and zeroes f so a
// second call (or a call after a failed open) is a no-op.
void eng_st_close(eng_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) {
        free(f->tensors[i].name);
        if (f->tensors[i].data_owned) free((void *)f->tensors[i].data);
    }
    free(f->tensors);
    for (int i = 0; i < 2 * f->n_meta; i++) free(f->meta[i]);
    free(f->meta);
    if (f->map) munmap(f->map, f->map_len);
    memset(f, 0, sizeof *f);
}

const eng_st_tensor *eng_st_find(const eng_st_file *f, const char *name) {
    if (!f || !f->tensors || !name) return NULL;
    eng_st_tensor key = {.name = (char *)name};
    return bsearch(&key, f->tensors, (size_t)f->n, sizeof *f->tensors, st_cmp_name);
}

// Formats shape as "[a, b, c]" into buf.
static void st_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

const float *eng_st_get(const eng_st_file *f, const char *name, int ndim, const int64_t *shape, char **err) {
    const eng_st_tensor *t = eng_st_find(f, name);
    if (!t) {
        eng_errorf(err, "tensor '%s' not found", name);
        return NULL;
    }
    if (!t->data) {
        eng_errorf(err, "tensor '%s' has dtype %s, expected a float tensor", name, t->dtype);
        return NULL;
    }
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char want[160], have[160];
        st_shape_str(want, sizeof want, ndim, shape);
        st_shape_str(have, sizeof have, t->ndim, t->shape);
        eng_errorf(err, "tensor '%s' has shape %s, expected %s", name, have, want);
        return NULL;
    }
    return t->data;
}

// Linear scan: files carry a handful of metadata keys.
const char *eng_st_meta(const eng_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[2 * i], key) == 0) return f->meta[2 * i + 1];
    return NULL;
}

// ---------------------------------------------------------------------------
// writing

// Builds header and data in one buffer (our checkpoints are small enough)
// and hands it to eng_write_file_atomic, so a crash mid-write never leaves a
// half-written checkpoint under `path`. Tensors keep the caller's order and
// are packed back to back; __metadata__ comes first, as PyTorch's writer does.
int eng_st_write(const char *path, const eng_st_entry *entries, int n, const char *const *meta_kv, char **err) {
    int rc = -1;
    char *hdr = NULL;
    uint8_t *buf = NULL;
    json_t *root = json_object();
    if (!root) abort();   // out of memory

    if (meta_kv && meta_kv[0]) {
        json_t *m = json_object();
        for (int i = 0; meta_kv[i]; i += 2) {
            if (!meta_kv[i + 1]) {
                json_decref(m);
                eng_errorf(err, "safetensors: metadata key '%s' has no value", meta_kv[i]);
                goto done;
            }
            json_object_set_new(m, meta_kv[i], json_string(meta_kv[i + 1]));
        }
        json_object_set_new(root, "__metadata__", m);
    }

    // Validate every entry before any bytes are produced.
    uint64_t off = 0;   // running data offset in bytes
    for (int i = 0; i < n; i++) {
        const eng_st_entry *e = &entries[i];
        if (!e->name || !*e->name || strcmp(e->name, "__metadata__") == 0) {
            eng_errorf(err, "safetensors: entry %d has an invalid name", i);
            goto done;
        }
        if (json_object_get(root, e->name)) {
            eng_errorf(err, "safetensors: tensor '%s' given twice", e->name);
            goto done;
        }
        if (e->ndim < 0 || e->ndim > ENG_ST_MAX_DIMS) {
            eng_errorf(err, "safetensors: tensor '%s': ndim %d out of range", e->name, e->ndim);
            goto done;
        }
        uint64_t numel = 1;
        json_t *shape = json_array();
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] < 0 || (e->shape[d] && numel > (uint64_t)INT64_MAX / 8 / (uint64_t)e->shape[d])) {
                json_decref(shape);
                eng_errorf(err, "safetensors: tensor '%s': bad shape[%d] = %lld", e->name, d, (long long)e->shape[d]);
                goto done;
            }
            numel *= (uint64_t)e->shape[d];
            json_array_append_new(shape, json_integer(e->shape[d]));
        }
        if (numel && !e->data && !e->i8) {
            json_decref(shape);
            eng_errorf(err, "safetensors: tensor '%s' has no data", e->name);
            goto done;
        }
        uint64_t esize = e->i8 ? 1 : 4;
        json_t *t = json_object();
        json_object_set_new(t, "dtype", json_string(e->i8 ? "I8" : "F32"));
        json_object_set_new(t, "shape", shape);
        json_object_set_new(t, "data_offsets", json_pack("[II]", (json_int_t)off, (json_int_t)(off + esize * numel)));
        json_object_set_new(root, e->name, t);
        off += esize * numel;
    }

    hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!hdr) {
        eng_errorf(err, "safetensors: cannot serialise the header (invalid UTF-8 in a name?)");
        goto done;
    }
    size_t hlen = strlen(hdr);
    size_t padded = (hlen + 7) & ~(size_t)7;   // data then starts 8-byte aligned
    size_t total = 8 + padded + (size_t)off;
    buf = eng_xmalloc(total);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, hdr, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    uint8_t *p = buf + 8 + padded;
    for (int i = 0; i < n; i++) {
        size_t bytes = entries[i].i8 ? 1 : sizeof(float);
        for (int d = 0; d < entries[i].ndim; d++) bytes *= (size_t)entries[i].shape[d];
        if (bytes) memcpy(p, entries[i].i8 ? (const void *)entries[i].i8 : (const void *)entries[i].data, bytes);
        p += bytes;
    }
    rc = eng_write_file_atomic(path, buf, total, err);
done:
    free(buf);
    free(hdr);
    json_decref(root);
    return rc;
}
