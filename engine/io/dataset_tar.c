// dataset_tar.c — image-classification datasets from a tar of label folders
// (see dataset_tar.h). One pass over the archive with libarchive: each
// member's bytes are read into memory, decoded, shrunk to the target shape
// and dropped; labels are numbered once every folder name is known.
#include "engine/io/dataset_tar.h"
#include <archive.h>          // archive_read_*
#include <archive_entry.h>    // archive_entry_*
#include <errno.h>            // errno
#include <math.h>             // lrintf
#include <stdio.h>            // FILE, fopen
#include <stdlib.h>           // malloc, realloc, free, qsort
#include <string.h>           // strcmp, strchr, strncmp
#include "engine/core/util.h"      // eng_errorf
#include "engine/io/image.h"       // eng_image_decode, eng_image_to_tensor
#include "engine/text/utf8.h"      // eng_utf8_valid

#define MAX_LABELS 256        // labels are stored as bytes
#define MAX_LABEL_LEN 64

void eng_tar_opts_init(eng_tar_opts *o) {
    o->channels = 1;
    o->height = o->width = 28;
    o->max_members = 1000000;
    o->max_total_bytes = 4LL << 30;
    o->max_member_bytes = 32LL << 20;
    o->max_pixels = 16LL << 20;
}

void eng_image_dataset_free(eng_image_dataset *d) {
    if (!d) return;
    for (int i = 0; i < d->n_labels; i++) free(d->label_names[i]);
    free(d->label_names);
    free(d->pixels);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

int eng_dataset_is_tar(const char *path) {
    unsigned char h[512];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    if (n >= 2 && h[0] == 0x1f && h[1] == 0x8b) return 1;                  // gzip
    return n == 512 && (memcmp(h + 257, "ustar", 5) == 0);                 // POSIX / GNU tar
}

// ---------------------------------------------------------------- member names
// Classifies `name` (the member's name with a leading "./" and the
// archive's top folder stripped): 1 = an image at <label>/<file>
// (*label_len set), 0 = skip (hidden), -1 = refused with *err naming `member`.
static int split_name(const char *name, const char *member, size_t *label_len, char **err) {
    if (name[0] == '/') return eng_errorf(err, "member \"%s\": absolute names are not allowed", member);
    for (const char *p = name; (p = strstr(p, "..")); p += 2) {
        int starts = p == name || p[-1] == '/', ends = p[2] == 0 || p[2] == '/';
        if (starts && ends) return eng_errorf(err, "member \"%s\": \"..\" in a name is not allowed", member);
    }
    const char *slash = strchr(name, '/');
    if (!slash || slash == name)
        return eng_errorf(err, "member \"%s\" is not inside a label folder (expected label/image.png)", member);
    const char *file = slash + 1;
    if (!*file || strchr(file, '/'))
        return eng_errorf(err, "member \"%s\" is not directly inside a label folder (expected label/image.png)", member);
    if (name[0] == '.' || file[0] == '.') return 0;   // hidden folder or file (._x AppleDouble, .DS_Store)
    size_t n = (size_t)(slash - name);
    if (n > MAX_LABEL_LEN) return eng_errorf(err, "member \"%s\": label folder names are at most %d bytes", member, MAX_LABEL_LEN);
    if (!eng_utf8_valid(name, n)) return eng_errorf(err, "member \"%s\": the label folder's name is not UTF-8", member);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return eng_errorf(err, "member \"%s\": control characters in a label name", member);
    *label_len = n;
    return 1;
}

// ---------------------------------------------------------------- reading
typedef struct {
    eng_image_dataset *d;   // where images go; NULL when only checking
    int n;                  // images so far
    int cap;                // capacity of d->pixels / d->labels, in images
    char *names[MAX_LABELS];   // label names in order of appearance
    int n_names;
    uint8_t *labels;        // [n] index into names (in d->labels when loading)
} reader;

// The index of label name[0..len) in r->names, adding it. -1 with *err when there are too many.
static int label_index(reader *r, const char *name, size_t len, char **err) {
    for (int i = 0; i < r->n_names; i++)
        if (strlen(r->names[i]) == len && memcmp(r->names[i], name, len) == 0) return i;
    if (r->n_names == MAX_LABELS) return eng_errorf(err, "more than %d label folders", MAX_LABELS);
    char *s = malloc(len + 1);
    if (!s) return eng_errorf(err, "out of memory");
    memcpy(s, name, len);
    s[len] = 0;
    r->names[r->n_names] = s;
    return r->n_names++;
}

// Room for one more image. 0 or -1 with *err.
static int grow(reader *r, size_t image_bytes, char **err) {
    if (r->n < r->cap) return 0;
    int cap = r->cap ? r->cap * 2 : 1024;
    uint8_t *l = realloc(r->labels, (size_t)cap);
    if (!l) return eng_errorf(err, "out of memory");
    r->labels = l;
    if (r->d) {
        uint8_t *p = realloc(r->d->pixels, (size_t)cap * image_bytes);
        if (!p) return eng_errorf(err, "out of memory (%d images)", cap);
        r->d->pixels = p;
    }
    r->cap = cap;
    return 0;
}

// Reads the current member's data (at most max bytes) into a malloc'd buffer.
static int read_member(struct archive *a, const char *name, long long max, char **buf, size_t *len, char **err) {
    size_t cap = 64 * 1024, n = 0;
    char *b = malloc(cap);
    if (!b) return eng_errorf(err, "out of memory");
    for (;;) {
        if (n == cap) {
            if ((long long)cap >= max + 1) break;
            size_t nc = cap * 2 > (size_t)max + 1 ? (size_t)max + 1 : cap * 2;
            char *nb = realloc(b, nc);
            if (!nb) { free(b); return eng_errorf(err, "out of memory"); }
            b = nb;
            cap = nc;
        }
        la_ssize_t got = archive_read_data(a, b + n, cap - n);
        if (got < 0) {
            eng_errorf(err, "member \"%s\": %s (truncated or corrupt archive)", name, archive_error_string(a));
            free(b);
            return -1;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    if ((long long)n > max) { free(b); return eng_errorf(err, "member \"%s\" is larger than %lld bytes", name, max); }
    *buf = b;
    *len = n;
    return 0;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// The pass over the archive shared by load and check.
static int read_tar(reader *r, const char *path, const eng_tar_opts *o, char **err) {
    if (o->channels != 1 && o->channels != 3) return eng_errorf(err, "channels must be 1 or 3");
    if (o->height < 1 || o->height > 1024 || o->width < 1 || o->width > 1024) return eng_errorf(err, "image size out of range");
    size_t image_bytes = (size_t)o->channels * (size_t)o->height * (size_t)o->width;
    float *t = malloc(image_bytes * sizeof(float));
    struct archive *a = archive_read_new();
    if (!t || !a) { free(t); archive_read_free(a); return eng_errorf(err, "out of memory"); }
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    eng_image_prep prep = {.channels = o->channels, .height = o->height, .width = o->width,
                           .mean = {0, 0, 0}, .std = {1, 1, 1}, .background = 0, .invert = 0};
    int rc = -1;
    long members = 0;
    long long total = 0;
    char last[256] = "";   // the last member read, for errors between members
    char top[MAX_LABEL_LEN + 2] = "";   // "dir/" when the images are wrapped in one top folder
    int top_known = 0;
    if (archive_read_open_filename(a, path, 64 * 1024) != ARCHIVE_OK) {   // reads the first block: format known
        FILE *f = fopen(path, "rb");   // unreadable, or readable but no tar?
        if (!f) eng_errorf(err, "%s: %s", path, strerror(errno));
        else eng_errorf(err, "%s is not a readable tar archive (plain or gzip'd): %s", path, archive_error_string(a));
        if (f) fclose(f);
        goto done;
    }
    for (;;) {
        struct archive_entry *e;
        int h = archive_read_next_header(a, &e);
        if (h == ARCHIVE_EOF) break;
        if (h < ARCHIVE_WARN) {
            if (members == 0) eng_errorf(err, "%s is not a tar archive (plain or gzip'd): %s", path, archive_error_string(a));
            else eng_errorf(err, "after member \"%s\": %s (truncated or corrupt archive)", last, archive_error_string(a));
            goto done;
        }
        if (++members > o->max_members) { eng_errorf(err, "more than %ld members in the archive", o->max_members); goto done; }
        const char *name = archive_entry_pathname(e);
        if (!name || !*name) { eng_errorf(err, "member %ld has no usable name", members); goto done; }
        snprintf(last, sizeof last, "%s", name);
        while (name[0] == '.' && name[1] == '/') name += 2;
        if (archive_entry_filetype(e) == AE_IFDIR) continue;
        if (archive_entry_hardlink(e) || archive_entry_filetype(e) != AE_IFREG) {
            eng_errorf(err, "member \"%s\" is not a regular file (links and devices are not allowed)", last);
            goto done;
        }
        // One top folder around the label folders (`tar czf x.tar.gz dataset/`)
        // is allowed: decided by the first file, then required of every one.
        if (!top_known) {
            const char *s1 = strchr(name, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
            top_known = 1;
            if (s1 && s2 && s1 > name && name[0] != '.' && !strchr(s2 + 1, '/') && (size_t)(s1 - name) <= MAX_LABEL_LEN &&
                !(s1 - name == 2 && name[0] == '.' && name[1] == '.'))
                snprintf(top, sizeof top, "%.*s", (int)(s1 - name + 1), name);
        }
        if (*top) {
            if (strncmp(name, top, strlen(top)) != 0) {
                eng_errorf(err, "member \"%s\" is outside the archive's top folder \"%s\"", last, top);
                goto done;
            }
            name += strlen(top);
        }
        size_t label_len = 0;
        int kind = split_name(name, last, &label_len, err);
        if (kind < 0) goto done;
        if (kind == 0) continue;
        if (archive_entry_size_is_set(e) && archive_entry_size(e) > o->max_member_bytes) {
            eng_errorf(err, "member \"%s\" is larger than %lld bytes", last, o->max_member_bytes);
            goto done;
        }
        char *buf = NULL;
        size_t len = 0;
        if (read_member(a, last, o->max_member_bytes, &buf, &len, err) != 0) goto done;
        total += (long long)len;
        if (total > o->max_total_bytes) {
            free(buf);
            eng_errorf(err, "the archive holds more than %lld bytes of images", o->max_total_bytes);
            goto done;
        }
        eng_image img = {0};
        char *derr = NULL;
        int dc = eng_image_decode(&img, buf, len, (size_t)o->max_pixels, &derr);
        free(buf);
        if (dc != ENG_IMG_OK) {
            eng_errorf(err, "member \"%s\" is not a usable image: %s", last, derr ? derr : "cannot decode");
            free(derr);
            goto done;
        }
        int li = label_index(r, name, label_len, err);
        int ok = li >= 0 && grow(r, image_bytes, err) == 0;
        if (ok && eng_image_to_tensor(t, &img, &prep) != 0) ok = 0, eng_errorf(err, "member \"%s\": out of memory", last);
        eng_image_free(&img);
        if (!ok) goto done;
        if (r->d) {
            uint8_t *px = r->d->pixels + (size_t)r->n * image_bytes;
            for (size_t i = 0; i < image_bytes; i++) {
                float v = t[i] * 255.0f;
                px[i] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : lrintf(v));
            }
        }
        r->labels[r->n++] = (uint8_t)li;
    }
    if (r->n == 0) { eng_errorf(err, "%s holds no images (expected label/image.png members)", path); goto done; }
    if (r->n_names < 2) {
        eng_errorf(err, "%s has one label folder (\"%s\"); classification needs at least two", path, r->names[0]);
        goto done;
    }
    rc = 0;
done:
    archive_read_free(a);
    free(t);
    return rc;
}

static void reader_free(reader *r) {
    for (int i = 0; i < r->n_names; i++) free(r->names[i]);
    free(r->labels);
}

int eng_dataset_tar_check(const char *path, const eng_tar_opts *o, int *n_images, int *n_labels, char **err) {
    reader r = {0};
    int rc = read_tar(&r, path, o, err);
    if (rc == 0) {
        if (n_images) *n_images = r.n;
        if (n_labels) *n_labels = r.n_names;
    }
    reader_free(&r);
    return rc;
}

int eng_dataset_tar_load(eng_image_dataset *d, const char *path, const eng_tar_opts *o, char **err) {
    memset(d, 0, sizeof *d);
    reader r = {.d = d};
    if (read_tar(&r, path, o, err) != 0) {
        reader_free(&r);
        eng_image_dataset_free(d);
        return -1;
    }
    // number the labels in sorted order
    char *sorted[MAX_LABELS];
    uint8_t remap[MAX_LABELS];
    memcpy(sorted, r.names, (size_t)r.n_names * sizeof *sorted);
    qsort(sorted, (size_t)r.n_names, sizeof *sorted, cmp_names);
    for (int i = 0; i < r.n_names; i++)
        for (int j = 0; j < r.n_names; j++)
            if (sorted[j] == r.names[i]) remap[i] = (uint8_t)j;
    for (int i = 0; i < r.n; i++) r.labels[i] = remap[r.labels[i]];
    d->label_names = malloc((size_t)r.n_names * sizeof *d->label_names);
    if (!d->label_names) { reader_free(&r); eng_image_dataset_free(d); return eng_errorf(err, "out of memory"); }
    memcpy(d->label_names, sorted, (size_t)r.n_names * sizeof *sorted);
    d->n_labels = r.n_names;
    d->labels = r.labels;        // handed over
    d->n = r.n;
    d->channels = o->channels;
    d->height = o->height;
    d->width = o->width;
    return 0;
}
