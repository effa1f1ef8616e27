// safetensors.h — reading (mmap, shared read-only by every worker) and
// writing (temp file + fsync + rename) of the safetensors format:
//   u64 little-endian header length N, N bytes of JSON header
//   {"name":{"dtype":"F32","shape":[..],"data_offsets":[begin,end]}, "__metadata__":{"k":"v"}},
//   then the raw data; offsets are relative to the end of the header.
// Every float tensor is exposed as F32: aligned F32 data points straight into
// the mapping; F16/BF16 (and unaligned F32) are converted into owned buffers.
// Integer dtypes (I64, I32, I16, I8, U8, BOOL, F64 ...) are accepted and listed
// with data == NULL (PyTorch state dicts carry e.g. num_batches_tracked).
// A file that lies (offsets out of range or overlapping, shape*dtype size !=
// byte length, truncated, bad JSON, unknown dtype) is refused with a message.
#ifndef ENG_SAFETENSORS_H
#define ENG_SAFETENSORS_H
#include <stddef.h>   // size_t
#include <stdint.h>   // int64_t

#define ENG_ST_MAX_DIMS 8

typedef struct {
    char *name;                      // tensor name, e.g. "layers.0.weight"
    char dtype[8];                   // as in the file: "F32", "F16", "BF16", "I64", ...
    int ndim;                        // number of dimensions (0 = scalar)
    int64_t shape[ENG_ST_MAX_DIMS];  // dimensions, outermost first
    size_t numel;                    // product of shape (1 for a scalar)
    const float *data;               // F32 view [numel], or NULL for non-float dtypes
    int data_owned;                  // 1 if data was converted/copied (freed by close)
    const void *raw;                 // the tensor's bytes as stored (any dtype, little-endian, maybe unaligned)
} eng_st_tensor;

typedef struct {
    void *map;              // the read-only mapping of the whole file
    size_t map_len;         // its length in bytes
    int n;                  // number of tensors
    eng_st_tensor *tensors; // [n], sorted by name
    int n_meta;             // number of __metadata__ entries
    char **meta;            // [2*n_meta] key, value, key, value ...
} eng_st_file;

// Opens and validates `path`. Returns 0, or -1 with *err (f is then cleared).
int eng_st_open(eng_st_file *f, const char *path, char **err);
// Parses an in-memory buffer (not copied; must outlive f). Same checks.
int eng_st_parse(eng_st_file *f, const void *buf, size_t len, char **err);
void eng_st_close(eng_st_file *f);   // NULL-safe, idempotent

// Looks a tensor up by exact name; NULL when absent.
const eng_st_tensor *eng_st_find(const eng_st_file *f, const char *name);
// Finds a float tensor and checks its shape (ndim dims in `shape`). Returns the
// F32 data, or NULL with *err naming the tensor and what was expected/found.
const float *eng_st_get(const eng_st_file *f, const char *name, int ndim, const int64_t *shape, char **err);
// Value of a __metadata__ key, or NULL.
const char *eng_st_meta(const eng_st_file *f, const char *key);

// One tensor to write: F32 from data, or I8 from i8 when that is set.
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[ENG_ST_MAX_DIMS];
    const float *data;      // [product of shape]
    const int8_t *i8;       // [product of shape] (int8 weights), or NULL: data as F32
} eng_st_entry;

// Writes tensors (and optional metadata: NULL-terminated array of key, value,
// key, value ...) to `path` atomically. Header padded to 8 bytes with spaces.
int eng_st_write(const char *path, const eng_st_entry *entries, int n,
                 const char *const *meta_kv, char **err);

#endif
