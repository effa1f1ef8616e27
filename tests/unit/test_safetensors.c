// test_safetensors.c — eng_st_* against fixtures written by an independent
// writer (tests/ref/make_safetensors_ref.py), a write/read round trip, and
// every kind of lying file we refuse, built here by hand-editing bytes.
#include "engine/io/safetensors.h"

#include <check.h>      // Check unit-test framework
#include <jansson.h>    // parsing the written header independently
#include <math.h>       // isnan, isinf, signbit
#include <stdio.h>      // FILE
#include <stdlib.h>     // mkstemp
#include <string.h>     // memcmp, strstr
#include <unistd.h>     // unlink, truncate

#define REF_PAD "tests/ref/st_ref.safetensors"
#define REF_NOPAD "tests/ref/st_ref_nopad.safetensors"

// ---------------------------------------------------------------------------
// helpers

// Reads a whole file into a malloc'd buffer.
static uint8_t *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s (run from the repo root)", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const void *b, size_t n) {
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fwrite(b, 1, n, fp), n);
    fclose(fp);
}

// Builds u64 header length + header text + dlen data bytes (0, 1, 2 ...).
static uint8_t *build(const char *hdr, size_t dlen, size_t *len) {
    size_t h = strlen(hdr);
    uint8_t *b = malloc(8 + h + dlen + 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, hdr, h);
    for (size_t i = 0; i < dlen; i++) b[8 + h + i] = (uint8_t)i;
    *len = 8 + h + dlen;
    return b;
}

static char *tmp_path(void) {
    static char path[64];
    strcpy(path, "/tmp/test_st_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    return path;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

// ---------------------------------------------------------------------------
// the independent fixture

// Values as listed in make_safetensors_ref.py.
static void check_ref(const eng_st_file *f) {
    ck_assert_int_eq(f->n, 7);
    // sorted by name
    for (int i = 1; i < f->n; i++) ck_assert(strcmp(f->tensors[i - 1].name, f->tensors[i].name) < 0);

    const int64_t s23[] = {2, 3};
    char *err = NULL;
    const float *a = eng_st_get(f, "a.f32", 2, s23, &err);
    ck_assert_ptr_nonnull(a);
    const float a_want[] = {1.5f, -2.0f, 0.0f, 3.25f, 0.125f, -7.0f};
    for (int i = 0; i < 6; i++) ck_assert_uint_eq(f32_bits(a[i]), f32_bits(a_want[i]));

    const eng_st_tensor *b = eng_st_find(f, "b.f16");
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(b->dtype, "F16");
    ck_assert_int_eq(b->ndim, 1);
    ck_assert_int_eq(b->numel, 10);
    ck_assert(b->data_owned);
    ck_assert(b->data[0] == 1.0f);
    ck_assert(b->data[1] == -2.0f);
    ck_assert(b->data[2] == 5.9604644775390625e-08f);       // 2^-24, smallest subnormal
    ck_assert(b->data[3] == 6.0975551605224609375e-05f);    // 1023 * 2^-24, largest subnormal
    ck_assert(b->data[4] == 65504.0f);
    ck_assert(isinf(b->data[5]) && b->data[5] > 0);
    ck_assert(isinf(b->data[6]) && b->data[6] < 0);
    ck_assert(isnan(b->data[7]));
    ck_assert(b->data[8] == 0.0f && signbit(b->data[8]));
    ck_assert(b->data[9] == 0.333251953125f);

    const eng_st_tensor *c = eng_st_find(f, "c.bf16");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->dtype, "BF16");
    ck_assert_int_eq(c->shape[0], 2);
    ck_assert_int_eq(c->shape[1], 3);
    ck_assert(c->data[0] == 1.0f);
    ck_assert(c->data[1] == -3.5f);
    ck_assert(c->data[2] == 0.15625f);
    ck_assert(c->data[3] == 196608.0f);
    ck_assert(c->data[4] == ldexpf(1.0f, -130));
    ck_assert(isinf(c->data[5]) && c->data[5] < 0);

    const eng_st_tensor *d = eng_st_find(f, "d.i64");
    ck_assert_ptr_nonnull(d);
    ck_assert_str_eq(d->dtype, "I64");
    ck_assert_ptr_null(d->data);
    ck_assert_int_eq(d->numel, 3);
    ck_assert_ptr_null(eng_st_get(f, "d.i64", 1, (const int64_t[]){3}, &err));
    ck_assert_ptr_nonnull(strstr(err, "d.i64"));
    free(err);
    err = NULL;

    const eng_st_tensor *e = eng_st_find(f, "e.u8");
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_null(e->data);

    const float *ff = eng_st_get(f, "f.f32", 1, (const int64_t[]){2}, &err);
    ck_assert_ptr_nonnull(ff);
    ck_assert(((uintptr_t)ff & 3) == 0);   // misaligned in the file, so copied
    ck_assert(ff[0] == 0.5f && ff[1] == -0.25f);

    const eng_st_tensor *g = eng_st_find(f, "g.scalar");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(g->ndim, 0);
    ck_assert_int_eq(g->numel, 1);
    ck_assert(g->data[0] == 42.0f);
    ck_assert_ptr_nonnull(eng_st_get(f, "g.scalar", 0, NULL, &err));

    ck_assert_str_eq(eng_st_meta(f, "format"), "pt");
    ck_assert_str_eq(eng_st_meta(f, "note"), "written by make_safetensors_ref.py");
    ck_assert_ptr_null(eng_st_meta(f, "missing"));
    ck_assert_ptr_null(eng_st_find(f, "zzz"));
    ck_assert_ptr_null(eng_st_find(f, "a"));
}

START_TEST(test_ref_fixture_mmap) {
    const char *paths[] = {REF_PAD, REF_NOPAD};
    for (int i = 0; i < 2; i++) {
        eng_st_file f;
        char *err = NULL;
        ck_assert_msg(eng_st_open(&f, paths[i], &err) == 0, "%s: %s", paths[i], err);
        ck_assert_ptr_nonnull(f.map);
        check_ref(&f);
        // In the padded file the data section is aligned, so F32 is not copied.
        const eng_st_tensor *a = eng_st_find(&f, "a.f32");
        if (i == 0) ck_assert(!a->data_owned && (const uint8_t *)a->data > (const uint8_t *)f.map);
        else ck_assert(a->data_owned);
        eng_st_close(&f);
        eng_st_close(&f);   // idempotent
    }
}
END_TEST

START_TEST(test_ref_fixture_buffer_misaligned) {
    size_t len;
    uint8_t *raw = slurp(REF_PAD, &len);
    uint8_t *buf = malloc(len + 1);
    memcpy(buf + 1, raw, len);   // every tensor now sits at an odd address
    eng_st_file f;
    char *err = NULL;
    ck_assert_msg(eng_st_parse(&f, buf + 1, len, &err) == 0, "%s", err);
    ck_assert_ptr_null(f.map);
    check_ref(&f);
    eng_st_close(&f);
    free(buf);
    free(raw);
}
END_TEST

START_TEST(test_get_errors) {
    eng_st_file f;
    char *err = NULL;
    ck_assert_int_eq(eng_st_open(&f, REF_PAD, &err), 0);
    ck_assert_ptr_null(eng_st_get(&f, "nope", 1, (const int64_t[]){1}, &err));
    ck_assert_ptr_nonnull(strstr(err, "nope"));
    free(err);
    err = NULL;
    ck_assert_ptr_null(eng_st_get(&f, "a.f32", 2, (const int64_t[]){3, 2}, &err));
    ck_assert_ptr_nonnull(strstr(err, "a.f32"));
    ck_assert_ptr_nonnull(strstr(err, "[2, 3]"));
    ck_assert_ptr_nonnull(strstr(err, "[3, 2]"));
    free(err);
    err = NULL;
    ck_assert_ptr_null(eng_st_get(&f, "a.f32", 1, (const int64_t[]){6}, &err));
    free(err);
    eng_st_close(&f);
}
END_TEST

// ---------------------------------------------------------------------------
// round trip

START_TEST(test_roundtrip) {
    float w[2 * 3] = {1, 2, 3, 4, 5, -6.5f};
    float v[5] = {0.1f, 0.2f, 0.3f, -1e30f, 1e-40f};
    float s = 3.0f;
    float big[2 * 1 * 2 * 3];
    for (int i = 0; i < 12; i++) big[i] = (float)i * 0.5f - 2.0f;
    eng_st_entry ents[] = {
        {"zeta.weight", 2, {2, 3}, w, NULL},
        {"alpha", 1, {5}, v, NULL},
        {"scalar", 0, {0}, &s, NULL},
        {"empty", 2, {0, 4}, NULL, NULL},
        {"m.big", 4, {2, 1, 2, 3}, big, NULL},
    };
    const char *meta[] = {"arch", "cnn", "version", "1", NULL};
    char *path = tmp_path();
    char *err = NULL;
    ck_assert_msg(eng_st_write(path, ents, 5, meta, &err) == 0, "%s", err);

    // Layout checked independently of the reader.
    size_t len;
    uint8_t *raw = slurp(path, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | raw[i];
    ck_assert_int_eq(hlen % 8, 0);
    ck_assert_int_eq(len, 8 + hlen + 4 * (6 + 5 + 1 + 0 + 12));
    json_error_t je;
    json_t *root = json_loadb((const char *)raw + 8, hlen, 0, &je);
    ck_assert_msg(root != NULL, "%s", je.text);
    // tensors in the given order, data contiguous from 0
    const char *order[] = {"zeta.weight", "alpha", "scalar", "empty", "m.big"};
    const char *hdr = (const char *)raw + 8;
    const char *prev = hdr;
    long off = 0;
    const long nbytes[] = {24, 20, 4, 0, 48};
    for (int i = 0; i < 5; i++) {
        char quoted[64];
        snprintf(quoted, sizeof quoted, "\"%s\"", order[i]);
        const char *at = strstr(hdr, quoted);
        ck_assert_ptr_nonnull(at);
        ck_assert(at > prev);
        prev = at;
        json_t *t = json_object_get(root, order[i]);
        ck_assert_str_eq(json_string_value(json_object_get(t, "dtype")), "F32");
        json_t *o = json_object_get(t, "data_offsets");
        ck_assert_int_eq(json_integer_value(json_array_get(o, 0)), off);
        ck_assert_int_eq(json_integer_value(json_array_get(o, 1)), off + nbytes[i]);
        off += nbytes[i];
    }
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(root, "__metadata__"), "arch")), "cnn");
    json_decref(root);
    ck_assert_int_eq(memcmp(raw + 8 + hlen, w, sizeof w), 0);
    free(raw);

    eng_st_file f;
    ck_assert_msg(eng_st_open(&f, path, &err) == 0, "%s", err);
    ck_assert_int_eq(f.n, 5);
    ck_assert_str_eq(f.tensors[0].name, "alpha");   // sorted
    const float *rw = eng_st_get(&f, "zeta.weight", 2, (const int64_t[]){2, 3}, &err);
    ck_assert_int_eq(memcmp(rw, w, sizeof w), 0);
    ck_assert_int_eq(memcmp(eng_st_get(&f, "alpha", 1, (const int64_t[]){5}, &err), v, sizeof v), 0);
    ck_assert(eng_st_get(&f, "scalar", 0, NULL, &err)[0] == 3.0f);
    ck_assert_int_eq(memcmp(eng_st_get(&f, "m.big", 4, (const int64_t[]){2, 1, 2, 3}, &err), big, sizeof big), 0);
    const eng_st_tensor *e = eng_st_find(&f, "empty");
    ck_assert_int_eq(e->numel, 0);
    ck_assert_ptr_nonnull(e->data);   // a float tensor, just empty
    ck_assert_str_eq(eng_st_meta(&f, "version"), "1");
    ck_assert_int_eq(f.n_meta, 2);
    eng_st_close(&f);

    // no metadata at all
    ck_assert_int_eq(eng_st_write(path, ents, 1, NULL, &err), 0);
    ck_assert_int_eq(eng_st_open(&f, path, &err), 0);
    ck_assert_int_eq(f.n, 1);
    ck_assert_int_eq(f.n_meta, 0);
    eng_st_close(&f);
    unlink(path);
}
END_TEST

// I8 entries (int8 weights): dtype I8, one byte per element, read back as raw bytes.
START_TEST(test_roundtrip_i8) {
    const int8_t q[6] = {-127, -1, 0, 1, 64, 127};
    const float sc[2] = {0.5f, 0.25f};
    eng_st_entry ents[] = {
        {.name = "w_scale", .ndim = 2, .shape = {2, 1}, .data = sc},
        {.name = "w", .ndim = 2, .shape = {2, 3}, .i8 = q},
    };
    char *path = tmp_path();
    char *err = NULL;
    ck_assert_msg(eng_st_write(path, ents, 2, NULL, &err) == 0, "%s", err);
    size_t len;
    uint8_t *raw = slurp(path, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | raw[i];
    ck_assert_int_eq(len, 8 + hlen + 8 + 6);
    free(raw);
    eng_st_file f;
    ck_assert_msg(eng_st_open(&f, path, &err) == 0, "%s", err);
    const eng_st_tensor *t = eng_st_find(&f, "w");
    ck_assert_str_eq(t->dtype, "I8");
    ck_assert_int_eq(t->numel, 6);
    ck_assert_ptr_null(t->data);
    ck_assert_int_eq(memcmp(t->raw, q, 6), 0);
    ck_assert(eng_st_get(&f, "w_scale", 2, (const int64_t[]){2, 1}, &err)[1] == 0.25f);
    ck_assert_ptr_null(eng_st_get(&f, "w", 2, (const int64_t[]){2, 3}, &err));   // not a float tensor
    free(err);
    eng_st_close(&f);
    unlink(path);
}
END_TEST

START_TEST(test_write_refuses) {
    float x[2] = {1, 2};
    char *path = tmp_path();
    char *err = NULL;
    eng_st_entry dup[] = {{"a", 1, {2}, x, NULL}, {"a", 1, {2}, x, NULL}};
    ck_assert_int_eq(eng_st_write(path, dup, 2, NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "'a'"));
    free(err);
    err = NULL;
    eng_st_entry neg[] = {{"n", 1, {-2}, x, NULL}};
    ck_assert_int_eq(eng_st_write(path, neg, 1, NULL, &err), -1);
    free(err);
    err = NULL;
    eng_st_entry nd[] = {{"d", 9, {1}, x, NULL}};
    ck_assert_int_eq(eng_st_write(path, nd, 1, NULL, &err), -1);
    free(err);
    err = NULL;
    eng_st_entry meta_name[] = {{"__metadata__", 1, {2}, x, NULL}};
    ck_assert_int_eq(eng_st_write(path, meta_name, 1, NULL, &err), -1);
    free(err);
    err = NULL;
    const char *odd_meta[] = {"k", NULL, NULL};
    ck_assert_int_eq(eng_st_write(path, dup, 1, (const char *const *)odd_meta, &err), -1);   // key without value
    ck_assert_ptr_nonnull(strstr(err, "'k'"));
    free(err);
    unlink(path);
}
END_TEST

// ---------------------------------------------------------------------------
// malformed files

typedef struct {
    const char *header;   // JSON header text
    size_t data_len;      // bytes of data after it
    const char *want;     // substring the error must contain (tensor name etc.)
} bad_case;

static const bad_case bad_cases[] = {
    {"[1,2]", 0, "not a JSON object"},
    {"\"str\"", 0, "JSON"},
    {"{\"x\":", 8, "JSON"},
    {"", 8, "JSON"},
    {"{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'w': missing \"dtype\""},
    {"{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "'w': missing \"shape\""},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "'w': missing \"data_offsets\""},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "'w': shape[0]"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, "'w': shape[0]"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,\"2\"],\"data_offsets\":[0,8]}}", 8, "'w': shape[1]"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, "'w'"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
     "'w': shape product overflows"},
    {"{\"w\":{\"dtype\":\"U8\",\"shape\":[65536,65536,65536,65536],\"data_offsets\":[0,8]}}", 8,
     "'w': shape product overflows"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 8, "'w': 9 dimensions"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "'w': data_offsets begin 8 > end 0"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", 8, "'w': data_offsets end 12 beyond"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "'w': 8 bytes but shape x F32 needs 4"},
    {"{\"w\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,4]}}", 8, "'w': 4 bytes but shape x F16 needs 8"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,-8]}}", 8, "'w': \"data_offsets\""},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "'w': \"data_offsets\""},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 8, "'w': \"data_offsets\""},
    {"{\"w\":{\"dtype\":\"F17\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'w': unknown dtype \"F17\""},
    {"{\"w\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype"},
    {"{\"w\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'w': \"dtype\" is not a string"},
    {"{\"w\":3}", 8, "'w': entry is not an object"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "'a' and 'b' overlap"},
    {"{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", 12, "overlap"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "duplicate"},
    {"{\"__metadata__\":{\"k\":1}}", 0, "\"k\" is not a string"},
    {"{\"__metadata__\":[1]}", 0, "__metadata__"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} xyz", 8, "JSON"},
};

START_TEST(test_malformed) {
    const bad_case *c = &bad_cases[_i];
    size_t len;
    uint8_t *buf = build(c->header, c->data_len, &len);
    eng_st_file f;
    char *err = NULL;
    ck_assert_int_eq(eng_st_parse(&f, buf, len, &err), -1);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, c->want) != NULL, "case %d: error '%s' lacks '%s'", _i, err, c->want);
    ck_assert_int_eq(f.n, 0);   // cleared
    ck_assert_ptr_null(f.tensors);
    ck_assert_ptr_null(f.meta);
    free(err);
    eng_st_close(&f);   // safe on a cleared struct
    free(buf);
}
END_TEST

START_TEST(test_valid_edge_cases) {
    // Gaps between tensors and empty tensors at any offset are fine, as are
    // trailing spaces after the JSON and the integer dtypes.
    const char *hdr =
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
        "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[10,10]},"
        "\"b\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}    ";
    size_t len;
    uint8_t *buf = build(hdr, 12, &len);
    eng_st_file f;
    char *err = NULL;
    ck_assert_msg(eng_st_parse(&f, buf, len, &err) == 0, "%s", err);
    ck_assert_int_eq(f.n, 3);
    const eng_st_tensor *a = eng_st_find(&f, "a");
    uint8_t want[4] = {8, 9, 10, 11};   // build() fills data with 0, 1, 2 ...
    ck_assert_int_eq(memcmp(a->data, want, 4), 0);
    ck_assert_int_eq(eng_st_find(&f, "e")->numel, 0);
    ck_assert_ptr_null(eng_st_find(&f, "b")->data);
    eng_st_close(&f);
    free(buf);
}
END_TEST

START_TEST(test_header_length_lies) {
    size_t len;
    uint8_t *buf = build("{}", 0, &len);
    eng_st_file f;
    char *err = NULL;
    // an empty object is a valid (empty) file
    ck_assert_int_eq(eng_st_parse(&f, buf, len, &err), 0);
    ck_assert_int_eq(f.n, 0);
    eng_st_close(&f);

    buf[0] = 3;   // claims 3 header bytes, file has 2
    ck_assert_int_eq(eng_st_parse(&f, buf, len, &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "exceeds"));
    free(err);
    err = NULL;
    buf[0] = 0;
    buf[3] = 0x10;   // 256 MiB header
    ck_assert_int_eq(eng_st_parse(&f, buf, len, &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "absurd"));
    free(err);
    err = NULL;
    memset(buf, 0xff, 8);   // 2^64 - 1
    ck_assert_int_eq(eng_st_parse(&f, buf, len, &err), -1);
    free(err);
    err = NULL;
    ck_assert_int_eq(eng_st_parse(&f, buf, 5, &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "shorter than"));
    free(err);
    err = NULL;
    ck_assert_int_eq(eng_st_parse(&f, buf, 0, &err), -1);
    free(err);
    free(buf);
}
END_TEST

START_TEST(test_truncated_files) {
    size_t len;
    uint8_t *raw = slurp(REF_PAD, &len);
    char *path = tmp_path();
    const size_t cuts[] = {0, 1, 7, 8, 9, 100, len - 100, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        spit(path, raw, cuts[i]);
        eng_st_file f;
        char *err = NULL;
        ck_assert_msg(eng_st_open(&f, path, &err) == -1, "cut at %zu accepted", cuts[i]);
        ck_assert_ptr_nonnull(err);
        ck_assert_ptr_nonnull(strstr(err, path));
        ck_assert_ptr_null(f.map);
        free(err);
    }
    // a bad dtype edited into the real file is refused with the tensor's name
    uint8_t *bad = malloc(len);
    memcpy(bad, raw, len);
    char *p = memmem(bad, len, "\"BF16\"", 6);
    ck_assert_ptr_nonnull(p);
    memcpy(p, "\"BF61\"", 6);
    spit(path, bad, len);
    eng_st_file f;
    char *err = NULL;
    ck_assert_int_eq(eng_st_open(&f, path, &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "c.bf16"));
    free(err);
    err = NULL;
    ck_assert_int_eq(eng_st_open(&f, "/nonexistent/x.safetensors", &err), -1);
    free(err);
    free(bad);
    free(raw);
    unlink(path);
}
END_TEST

static Suite *st_suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_ref_fixture_mmap);
    tcase_add_test(tc, test_ref_fixture_buffer_misaligned);
    tcase_add_test(tc, test_get_errors);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_roundtrip_i8);
    tcase_add_test(tc, test_write_refuses);
    tcase_add_loop_test(tc, test_malformed, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(tc, test_valid_edge_cases);
    tcase_add_test(tc, test_header_length_lies);
    tcase_add_test(tc, test_truncated_files);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(st_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
