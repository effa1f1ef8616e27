// image_stylization.c — training a fast style network (`inferd train --task
// image-stylization --style art.jpg --data <photos> --out DIR`): Johnson et
// al. 2016's recipe. A TransformerNet (engine/arch/transformer_net_train.h)
// turns random square crops of the content photos into images whose
// perceptual loss (engine/arch/style_loss.h: features of a fixed random
// multi-scale network; content = one layer's features of the photo, style =
// Gram matrices of the style image) it learns to minimise, with Adam at a
// constant rate, as pytorch/examples fast_neural_style does. The result is a
// model directory POST /v1/stylizations serves as it is.
//
// The content photos (a directory searched recursively for PNG and JPEG
// files, or a tar of them: a training job's upload) are decoded once and kept downscaled to twice the crop side, so a
// step only cuts and resamples: a crop of a random side between the crop size
// and the photo's shorter side, at a random place, mirrored half the time,
// area-averaged down to image_size x image_size.
#include "engine/train/train_internal.h"
#include "engine/train/checkpoint.h"   // eng_ckpt
#include <archive.h>        // archive_read_* (a tar of photos)
#include <archive_entry.h>  // archive_entry_*
#include <dirent.h>         // opendir, readdir
#include <errno.h>          // errno
#include <math.h>           // lroundf
#include <stdio.h>          // snprintf, open_memstream
#include <stdlib.h>         // qsort, free
#include <string.h>         // strcmp, strcasecmp, memset
#include <strings.h>        // strcasecmp
#include <sys/stat.h>       // stat
#include "engine/arch/style_loss.h"              // eng_lossnet, eng_style_loss
#include "engine/arch/transformer_net.h"         // ENG_TNET_MIN_SIDE
#include "engine/arch/transformer_net_train.h"   // eng_tnet_train
#include "engine/core/optim.h"   // eng_adamw_step
#include "engine/core/rng.h"     // eng_rng
#include "engine/core/tape.h"    // eng_tape, eng__tape_record
#include "engine/core/tape_seq.h"  // eng_t_add
#include "engine/core/util.h"    // eng_errorf, eng_now, eng_read_file
#include "engine/io/dataset_tar.h"   // eng_dataset_is_tar
#include "engine/io/image.h"     // eng_image_decode

#define DEFAULT_WIDTH 0.5f            // a quarter of the full network's multiply-adds
#define DEFAULT_SIZE 256
#define DEFAULT_STRUCTURE_WEIGHT 1.0f   // the Laplacian term's (see laplacian_loss)
#define MAX_PHOTOS 100000
#define MAX_FILE_BYTES (64LL << 20)   // one photo or style image
#define MAX_PIXELS (64LL << 20)       // one decoded image: 64 megapixels
#define MAX_DEPTH 8                   // directory levels searched under --data
#define MAX_TAR_MEMBERS 1000000
#define MAX_TAR_BYTES (4LL << 30)     // photo bytes in one tar

// ---------------------------------------------------------------- pixels
// An RGB image, 8 bits, interleaved [h][w][3].
typedef struct { int w, h; uint8_t *px; } rgb8;

// The mean of src's pixels under each destination pixel's footprint, for the
// cw x ch rectangle at (x0, y0) scaled to dw x dh (cw >= dw, ch >= dh: only
// ever downscales). Mirrored horizontally when `flip`. Writes planar floats
// (0..255) into dst[3][dh][dw], or interleaved bytes into dst8 when dst is NULL.
static void area_resample(const uint8_t *src, int sw, int x0, int y0, int cw, int ch, int dw, int dh, int flip,
                          float *dst, uint8_t *dst8) {
    for (int y = 0; y < dh; y++) {
        int ya = y0 + (int)((long)y * ch / dh), yb = y0 + (int)((long)(y + 1) * ch / dh);
        if (yb <= ya) yb = ya + 1;
        for (int x = 0; x < dw; x++) {
            int xa = x0 + (int)((long)x * cw / dw), xb = x0 + (int)((long)(x + 1) * cw / dw);
            if (xb <= xa) xb = xa + 1;
            unsigned sum[3] = {0, 0, 0};
            for (int yy = ya; yy < yb; yy++) {
                const uint8_t *p = src + ((size_t)yy * sw + xa) * 3;
                for (int xx = xa; xx < xb; xx++, p += 3) sum[0] += p[0], sum[1] += p[1], sum[2] += p[2];
            }
            float inv = 1.0f / (float)((yb - ya) * (xb - xa));
            int dx = flip ? dw - 1 - x : x;
            for (int c = 0; c < 3; c++) {
                if (dst) dst[((size_t)c * dh + y) * dw + dx] = (float)sum[c] * inv;
                else dst8[((size_t)y * dw + dx) * 3 + c] = (uint8_t)lroundf((float)sum[c] * inv);
            }
        }
    }
}

// Decodes PNG or JPEG bytes into RGB (alpha dropped), shrunk so its shorter
// side (or, with longer = 1, its longer side) is at most `side`. `what` names
// it in errors. 0 or -1 with *err.
static int decode_rgb(rgb8 *out, const char *what, const void *data, size_t len, int side, int longer, char **err) {
    memset(out, 0, sizeof *out);
    eng_image img;
    char *why = NULL;
    if (eng_image_decode(&img, data, len, (size_t)MAX_PIXELS, &why) != ENG_IMG_OK) {
        eng_errorf(err, "%s: %s", what, why ? why : "cannot decode");
        free(why);
        return -1;
    }
    int s = longer ? (img.width > img.height ? img.width : img.height) : (img.width < img.height ? img.width : img.height);
    double f = s > side ? (double)side / s : 1.0;
    out->w = (int)lround(img.width * f), out->h = (int)lround(img.height * f);
    if (out->w < 1) out->w = 1;
    if (out->h < 1) out->h = 1;
    uint8_t *rgb = malloc((size_t)img.width * img.height * 3);
    out->px = malloc((size_t)out->w * out->h * 3);
    if (!rgb || !out->px) {
        free(rgb);
        free(out->px);
        out->px = NULL;
        eng_image_free(&img);
        return eng_errorf(err, "%s: out of memory", what);
    }
    for (size_t i = 0; i < (size_t)img.width * img.height; i++)
        for (int c = 0; c < 3; c++) rgb[i * 3 + c] = img.rgba[i * 4 + c];
    area_resample(rgb, img.width, 0, 0, img.width, img.height, out->w, out->h, 0, NULL, out->px);
    free(rgb);
    eng_image_free(&img);
    return 0;
}

static int load_rgb(rgb8 *out, const char *path, int side, int longer, char **err) {
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st) != 0) return eng_errorf(err, "%s: %s", path, strerror(errno));
    if (st.st_size > MAX_FILE_BYTES) return eng_errorf(err, "%s: larger than %lld MB", path, MAX_FILE_BYTES >> 20);
    size_t len;
    char *data = eng_read_file(path, &len, err);
    if (!data) return -1;
    int rc = decode_rgb(out, path, data, len, side, longer, err);
    free(data);
    return rc;
}

// ---------------------------------------------------------------- the content photos
typedef struct {
    rgb8 *photos;
    int n;
    char **paths;   // sorted, for the order (and so the run) to be reproducible
    int n_paths, cap_paths;
} photo_set;

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0);
}

static int find_photos(photo_set *s, const char *dir, int depth, char **err) {
    DIR *d = opendir(dir);
    if (!d) return eng_errorf(err, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;   // ., .., hidden files
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth < MAX_DEPTH) rc = find_photos(s, path, depth + 1, err);
        } else if (S_ISREG(st.st_mode) && has_image_ext(e->d_name)) {
            if (s->n_paths >= MAX_PHOTOS) { rc = eng_errorf(err, "%s: more than %d photos", dir, MAX_PHOTOS); break; }
            if (s->n_paths == s->cap_paths) {
                int cap = s->cap_paths ? 2 * s->cap_paths : 64;
                char **grown = realloc(s->paths, (size_t)cap * sizeof *s->paths);
                if (!grown) { rc = eng_errorf(err, "%s: out of memory", dir); break; }
                s->paths = grown, s->cap_paths = cap;
            }
            if (!(s->paths[s->n_paths] = strdup(path))) { rc = eng_errorf(err, "%s: out of memory", dir); break; }
            s->n_paths++;
        }
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void photo_set_free(photo_set *s) {
    for (int i = 0; i < s->n; i++) free(s->photos[i].px);
    for (int i = 0; i < s->n_paths; i++) free(s->paths[i]);
    free(s->photos);
    free(s->paths);
    memset(s, 0, sizeof *s);
}

// Appends a decoded photo (shrunk to a shorter side of at most 2 * size),
// which must be at least size x size; frees its pixels unless `keep`.
static int add_photo(photo_set *s, const char *what, const void *data, size_t len, int size, int keep, char **err) {
    if (s->n % 64 == 0) {
        rgb8 *grown = realloc(s->photos, (size_t)(s->n + 64) * sizeof *grown);
        if (!grown) return eng_errorf(err, "%s: out of memory", what);
        s->photos = grown;
    }
    rgb8 *p = &s->photos[s->n];
    if (decode_rgb(p, what, data, len, 2 * size, 0, err) != 0) return -1;
    s->n++;
    if (p->w < size || p->h < size)
        return eng_errorf(err, "%s: %dx%d is smaller than the %dx%d training crops (see --size)", what, p->w, p->h, size,
                          size);
    if (!keep) { free(p->px); p->px = NULL; }
    return 0;
}

// A tar (plain or gzip'd) of photos, read member by member in memory: every
// regular file named *.png, *.jpg or *.jpeg at any depth (hidden files and
// other names skipped), in archive order. Links and devices are refused;
// members, bytes and pixels are bounded.
static int load_tar(photo_set *s, const char *path, int size, int keep, char **err) {
    struct archive *a = archive_read_new();
    if (!a) return eng_errorf(err, "out of memory");
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    int rc = -1;
    long members = 0;
    long long total = 0;
    if (archive_read_open_filename(a, path, 64 * 1024) != ARCHIVE_OK) {
        eng_errorf(err, "%s is not a readable tar archive: %s", path, archive_error_string(a));
        goto done;
    }
    for (;;) {
        struct archive_entry *e;
        int h = archive_read_next_header(a, &e);
        if (h == ARCHIVE_EOF) break;
        if (h < ARCHIVE_WARN) { eng_errorf(err, "%s: %s (truncated or corrupt archive)", path, archive_error_string(a)); goto done; }
        if (++members > MAX_TAR_MEMBERS) { eng_errorf(err, "%s: more than %d members", path, MAX_TAR_MEMBERS); goto done; }
        const char *name = archive_entry_pathname(e);
        if (!name || archive_entry_filetype(e) == AE_IFDIR) continue;
        if (archive_entry_hardlink(e) || archive_entry_filetype(e) != AE_IFREG) {
            eng_errorf(err, "member \"%s\" is not a regular file (links and devices are not allowed)", name);
            goto done;
        }
        const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
        if (base[0] == '.' || !has_image_ext(base)) continue;
        char what[512];
        snprintf(what, sizeof what, "member \"%s\"", name);
        if (archive_entry_size(e) > MAX_FILE_BYTES || s->n >= MAX_PHOTOS) {
            eng_errorf(err, "%s: larger than %lld MB, or more than %d photos", what, MAX_FILE_BYTES >> 20, MAX_PHOTOS);
            goto done;
        }
        size_t len = (size_t)archive_entry_size(e), got = 0;
        char *buf = malloc(len ? len : 1);
        if (!buf) { eng_errorf(err, "%s: out of memory", what); goto done; }
        while (got < len) {
            la_ssize_t k = archive_read_data(a, buf + got, len - got);
            if (k <= 0) break;
            got += (size_t)k;
        }
        total += (long long)got;
        int ok = got == len && total <= MAX_TAR_BYTES;
        if (!ok) eng_errorf(err, "%s: %s", what, got != len ? "truncated" : "the archive holds too many bytes of photos");
        else ok = add_photo(s, what, buf, len, size, keep, err) == 0;
        free(buf);
        if (!ok) goto done;
    }
    if (s->n == 0) { eng_errorf(err, "%s: no .png, .jpg or .jpeg member", path); goto done; }
    rc = 0;
done:
    archive_read_free(a);
    return rc;
}

// The content photos: a directory searched recursively (sorted names) or a
// tar of them, each decoded and shrunk (see add_photo).
static int photo_set_load(photo_set *s, const char *path, int size, int keep, char **err) {
    memset(s, 0, sizeof *s);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && eng_dataset_is_tar(path)) {
        if (load_tar(s, path, size, keep, err) != 0) { photo_set_free(s); return -1; }
        return 0;
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return eng_errorf(err, "%s: the content photos must be a directory of PNG/JPEG files or a tar of them", path);
    if (find_photos(s, path, 0, err) != 0) { photo_set_free(s); return -1; }
    if (s->n_paths == 0) { photo_set_free(s); return eng_errorf(err, "%s: no .png, .jpg or .jpeg file found", path); }
    qsort(s->paths, (size_t)s->n_paths, sizeof *s->paths, cmp_str);
    for (int i = 0; i < s->n_paths; i++) {
        struct stat ps;
        if (stat(s->paths[i], &ps) != 0 || ps.st_size > MAX_FILE_BYTES) {
            eng_errorf(err, "%s: unreadable or larger than %lld MB", s->paths[i], MAX_FILE_BYTES >> 20);
            photo_set_free(s);
            return -1;
        }
        size_t len;
        char *data = eng_read_file(s->paths[i], &len, err);
        int rc = data ? add_photo(s, s->paths[i], data, len, size, keep, err) : -1;
        free(data);
        if (rc != 0) { photo_set_free(s); return -1; }
    }
    return 0;
}

// One training image: a random square of side in [size, shorter side] of a
// random photo, mirrored half the time, scaled to size x size.
static void random_crop(const photo_set *s, eng_rng *r, int size, float *dst) {
    const rgb8 *p = &s->photos[eng_rng_below(r, (uint64_t)s->n)];
    int shorter = p->w < p->h ? p->w : p->h;
    int side = size + (int)eng_rng_below(r, (uint64_t)(shorter - size + 1));
    int x0 = (int)eng_rng_below(r, (uint64_t)(p->w - side + 1)), y0 = (int)eng_rng_below(r, (uint64_t)(p->h - side + 1));
    int flip = (int)eng_rng_below(r, 2);
    area_resample(p->px, p->w, x0, y0, side, side, size, size, flip, dst, NULL);
}

// ---------------------------------------------------------------- the structure term
// The random loss network's features are dominated by local colour (a 5x5
// blur moves its content layer by 0.2%, a +30 brightness shift by 17%), so
// its content term asks for the photo's blurred colours and little of its
// edges. The Laplacian loss of Li et al. 2017 ("Laplacian-steered neural
// style transfer") adds what is missing: the mean squared difference of the
// 3x3 Laplacians of output and photo (after 2x2 average pooling, so fine
// texture stays free for the style), relative to the photo's own Laplacian
// energy. A Laplacian ignores any constant, so the palette stays free too.
typedef struct { eng_var *y; float *diff; float k; } lap_ctx;   // diff: L(y) - L(x), [P][H-2][W-2]

// out[p][i][j] = x[i][j+1] + x[i+2][j+1] + x[i+1][j] + x[i+1][j+2] - 4 x[i+1][j+1] (interior pixels)
static void laplacian(const float *x, int P, int H, int W, float *out) {
    for (int p = 0; p < P; p++)
        for (int i = 0; i < H - 2; i++)
            for (int j = 0; j < W - 2; j++) {
                const float *c = x + ((size_t)p * H + i + 1) * W + j + 1;
                out[((size_t)p * (H - 2) + i) * (W - 2) + j] = c[-W] + c[W] + c[-1] + c[1] - 4 * c[0];
            }
}

static void lap_back(void *vc, eng_var *out) {
    lap_ctx *c = vc;
    eng_var *y = c->y;
    int P = y->shape[0] * y->shape[1], H = y->shape[2], W = y->shape[3];
    float g0 = out->grad[0] * c->k;
    for (int p = 0; p < P; p++)   // the Laplacian is its own transpose: scatter each term back
        for (int i = 0; i < H - 2; i++)
            for (int j = 0; j < W - 2; j++) {
                float g = g0 * c->diff[((size_t)p * (H - 2) + i) * (W - 2) + j];
                float *d = y->grad + ((size_t)p * H + i + 1) * W + j + 1;
                d[-W] += g, d[W] += g, d[-1] += g, d[1] += g, d[0] -= 4 * g;
            }
}

// weight * mean((L(y) - L(x))^2) / (mean(L(x)^2) + 1) -> [1]; y, x [B,3,H,W] (x without grad).
static eng_var *laplacian_loss(eng_tape *t, eng_var *y, eng_var *x, float weight, float *rel) {
    eng_var *py = eng_t_avgpool2d(t, y, 2, 2), *px = eng_t_avgpool2d(t, x, 2, 2);
    int P = py->shape[0] * py->shape[1], H = py->shape[2], W = py->shape[3];
    size_t n = (size_t)P * (H - 2) * (W - 2);
    float *ly = eng_arena_alloc(&t->arena, n * sizeof(float)), *lx = eng_arena_alloc(&t->arena, n * sizeof(float));
    laplacian(py->val, P, H, W, ly);
    laplacian(px->val, P, H, W, lx);
    double se = 0, ex = 0;
    for (size_t i = 0; i < n; i++) {
        ly[i] -= lx[i];   // now the difference
        se += (double)ly[i] * ly[i];
        ex += (double)lx[i] * lx[i];
    }
    double norm = ex / (double)n + 1.0;   // + 1: a flat photo has no edges to keep
    *rel = (float)(se / (double)n / norm);
    eng_var *out = eng_tape_var(t, 1, (int[]){1});
    out->val[0] = weight * *rel;
    if (t->grad_enabled && py->grad) {
        lap_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        *c = (lap_ctx){py, ly, (float)(2.0 * weight / ((double)n * norm))};
        eng__tape_record(t, out, lap_back, c);
    }
    return out;
}

// ---------------------------------------------------------------- options
typedef struct {
    float width, style_weight, content_weight, structure_weight;
    int size, style_size;
} style_opts;

static int resolve_opts(const eng_train_opts *o, style_opts *so, char **err) {
    if (o->arch && strcmp(o->arch, "transformer_net") != 0)
        return eng_errorf(err, "image-stylization trains arch \"transformer_net\" only");
    if (!o->style) return eng_errorf(err, "image-stylization needs --style (the style image, PNG or JPEG)");
    so->width = o->net_width > 0 ? o->net_width : DEFAULT_WIDTH;
    so->size = o->image_size > 0 ? o->image_size : DEFAULT_SIZE;
    so->style_size = o->style_size > 0 ? o->style_size : 2 * so->size;
    so->style_weight = o->style_weight > 0 ? o->style_weight : ENG_STYLE_DEFAULT_STYLE_WEIGHT;
    so->content_weight = o->content_weight > 0 ? o->content_weight : 1.0f;
    so->structure_weight = o->structure_weight >= 0 ? o->structure_weight : DEFAULT_STRUCTURE_WEIGHT;
    if (!(so->width >= 1.0f / 32 && so->width <= 4)) return eng_errorf(err, "--width must be in 1/32..4");
    int min_side = ENG_LOSSNET_MIN_SIDE > ENG_TNET_MIN_SIDE ? ENG_LOSSNET_MIN_SIDE : ENG_TNET_MIN_SIDE;
    if (so->size < min_side || so->size > 1024 || so->size % 4)
        return eng_errorf(err, "--size must be a multiple of 4 in %d..1024", min_side);
    if (so->style_size < min_side || so->style_size > 4096) return eng_errorf(err, "--style-size must be in %d..4096", min_side);
    if (!(so->style_weight <= 1e9f) || !(so->content_weight <= 1e9f) || !(so->structure_weight <= 1e9f)) return eng_errorf(err, "loss weights out of range");
    return 0;
}

// ---------------------------------------------------------------- the task
static json_t *model_config(const style_opts *so) {
    return json_pack("{s:s,s:s,s:f}", "task", "image-stylization", "arch", "transformer_net", "width", (double)so->width);
}

static int write_readme(const eng_train_opts *o, const style_opts *so, const eng_tnet_train *m, const photo_set *s,
                        int total, double train_s, const double *last, char **err) {
    char *readme = NULL;
    size_t rl = 0;
    FILE *mf = open_memstream(&readme, &rl);
    const char *name = strrchr(o->out, '/') ? strrchr(o->out, '/') + 1 : o->out;
    fprintf(mf,
            "# %s\n\nA fast style network (Johnson et al. 2016: pytorch/examples' TransformerNet, width %g, "
            "%zu parameters) trained by inferd's own trainer to paint photos in the style of `%s`.\n\n"
            "```\ncurl -s --data-binary @photo.jpg -H 'Content-Type: image/jpeg' -H 'Accept: image/png' \\\n"
            "     'localhost:8080/v1/stylizations?model=%s' -o %s.png\n```\n\n"
            "## Reproduce\n\n```\n%s\n```\n\n"
            "Content: %d photos under `%s`, random %dx%d crops (side between %d and the photo's shorter side, "
            "mirrored half the time). Style targets: Gram matrices of the style image at %d pixels on its longer side. "
            "Loss: inferd's perceptual loss network (engine/arch/style_loss.h, random filters, seed %u); content "
            "weight %g, style weight %g, structure (Laplacian) weight %g. %d steps of batch %d, Adam lr %g, seed %llu. "
            "Training took %.0f s on this machine; the last report's loss was %.4f (content %.4f, style %.4f, "
            "structure %.4f, before their weights).\n",
            name, (double)so->width, m->n_params, o->style, name, name,
            o->command ? o->command : "inferd train --task image-stylization ...", s->n, o->data, so->size, so->size,
            so->size, so->style_size, (unsigned)ENG_LOSSNET_DEFAULT_SEED, (double)so->content_weight,
            (double)so->style_weight, (double)so->structure_weight, total, o->batch_size, (double)o->lr,
            (unsigned long long)o->seed, train_s, last[0], last[1], last[2], last[3]);
    fclose(mf);
    char path[4096];
    snprintf(path, sizeof path, "%s/README.md", o->out);
    int rc = eng_write_file_atomic(path, readme, rl, err);
    free(readme);
    return rc;
}

int eng__train_image_stylization(const eng_train_opts *o, char **err) {
    style_opts so;
    if (resolve_opts(o, &so, err) != 0) return -1;
    photo_set s;
    if (photo_set_load(&s, o->data, so.size, 1, err) != 0) return -1;
    int rc = -1, B = o->batch_size, S = so.size;
    eng_tnet_train m;
    memset(&m, 0, sizeof m);
    eng_lossnet *net = NULL;
    eng_style_target target;
    memset(&target, 0, sizeof target);
    rgb8 style = {0};
    float *am = NULL, *av = NULL, *x = NULL, *style_planar = NULL;
    json_t *config = NULL;
    eng_tape tape;
    eng_tape_init(&tape, 1, 1);
    eng_ckpt ck;
    int ck_init = 0;
    if (eng_tnet_train_init(&m, so.width, o->seed, err) != 0) goto done;
    if (o->base_model && eng_tnet_train_load(&m, o->base_model, err) != 0) goto done;
    // the style's Gram targets, once
    if (load_rgb(&style, o->style, so.style_size, 1, err) != 0) goto done;
    if (style.w < ENG_LOSSNET_MIN_SIDE || style.h < ENG_LOSSNET_MIN_SIDE) {
        eng_errorf(err, "%s: %dx%d is too small for a style (at least %d pixels a side)", o->style, style.w, style.h,
                   ENG_LOSSNET_MIN_SIDE);
        goto done;
    }
    style_planar = eng_xmalloc((size_t)3 * style.w * style.h * sizeof(float));
    area_resample(style.px, style.w, 0, 0, style.w, style.h, style.w, style.h, 0, style_planar, NULL);
    if (eng_lossnet_new(&net, ENG_LOSSNET_DEFAULT_SEED, err) != 0) goto done;
    if (eng_style_target_compute(&target, net, style_planar, style.h, style.w, err) != 0) goto done;
    eng_style_weights w;
    eng_style_weights_default(&w);
    w.style_weight = so.style_weight;
    w.content_weight = so.content_weight;

    int total = o->steps > 0 ? o->steps : o->epochs * ((s.n + B - 1) / B);   // an epoch: a crop of each photo
    am = eng_xcalloc(m.n_params, sizeof(float));
    av = eng_xcalloc(m.n_params, sizeof(float));
    x = eng_xmalloc((size_t)B * 3 * S * S * sizeof(float));
    eng_rng data_rng;
    eng_rng_seed(&data_rng, o->seed ^ 0xc409);
    double sums[4] = {0};   // total, content, style, structure since the last report
    double last[4] = {0};
    int n_sum = 0;
    eng_ckpt_init(&ck, o, "transformer_net", total);
    ck_init = 1;
    eng_ckpt_floats(&ck, "params", m.owned, m.n_params);
    eng_ckpt_floats(&ck, "adam.m", am, m.n_params);
    eng_ckpt_floats(&ck, "adam.v", av, m.n_params);
    eng_ckpt_rng(&ck, "data.rng", &data_rng);
    for (int k = 0; k < 4; k++) {
        char name[16];
        snprintf(name, sizeof name, "sum.%d", k);
        eng_ckpt_double(&ck, name, &sums[k]);
        snprintf(name, sizeof name, "last.%d", k);
        eng_ckpt_double(&ck, name, &last[k]);
    }
    eng_ckpt_ints(&ck, "sum.n", &n_sum, 1);
    eng_ckpt_check(&ck, "data.n", s.n);
    eng_ckpt_check(&ck, "image_size", S);
    eng_ckpt_check(&ck, "style_size", so.style_size);
    eng_ckpt_check(&ck, "width.x1024", lroundf(so.width * 1024));
    eng_ckpt_check(&ck, "style_weight.x1000", lroundf(so.style_weight * 1000));
    eng_ckpt_check(&ck, "content_weight.x1000", lroundf(so.content_weight * 1000));
    eng_ckpt_check(&ck, "structure_weight.x1000", lroundf(so.structure_weight * 1000));
    long start;
    if (eng_ckpt_resume(&ck, &start, err) != 0) goto done;
    double t0 = eng_now(), t_last = t0;
    for (int step = (int)start + 1; step <= total; step++) {
        if (o->cancel && *o->cancel) { eng_errorf(err, "cancelled"); goto done; }
        for (int b = 0; b < B; b++) random_crop(&s, &data_rng, S, x + (size_t)b * 3 * S * S);
        eng_tape_reset(&tape);
        memset(m.grads, 0, m.n_params * sizeof(float));
        eng_var *xv = eng_tape_wrap(&tape, x, 4, (int[]){B, 3, S, S});
        eng_var *y = eng_tnet_train_forward(&m, &tape, xv);
        eng_style_loss_parts parts;
        eng_var *loss = eng_style_loss(&tape, net, y, xv, &target, &w, &parts);
        float structure = 0;
        if (so.structure_weight > 0) {
            loss = eng_t_add(&tape, loss, laplacian_loss(&tape, y, xv, so.structure_weight, &structure));
            parts.total += so.structure_weight * structure;
        }
        eng_tape_backward(&tape, loss);
        eng_adamw_step(m.owned, m.grads, am, av, m.n_params, o->lr, 0.9f, 0.999f, 1e-8f, 0.0f, step);
        sums[0] += parts.total, sums[1] += parts.content, sums[2] += parts.style, sums[3] += structure;
        n_sum++;
        if (step % o->log_every == 0 || step == total) {
            double now = eng_now();
            for (int k = 0; k < 4; k++) last[k] = sums[k] / n_sum;
            eng_train_progress p = {
                .step = step, .total_steps = total, .epoch = 1 + (int)((long)(step - 1) * B / s.n),
                .loss = (float)last[0], .lr = o->lr, .examples_per_s = n_sum * B / (now - t_last),
                .eta_s = (now - t0) / (step - start) * (total - step), .val_loss = -1, .val_accuracy = -1,
                .stylization = 1, .content_loss = (float)last[1], .style_loss = (float)last[2],
                .structure_loss = (float)last[3]};
            eng_ckpt_report(&ck, &p);
            t_last = now;
            memset(sums, 0, sizeof sums);
            n_sum = 0;
        }
        if (eng_ckpt_after_step(&ck, step, err) != 0) goto done;
    }
    double train_s = eng_ckpt_seconds(&ck);
    char path[4096];
    if (eng__train_mkdirs(o->out, err) != 0) goto done;
    snprintf(path, sizeof path, "%s/model.safetensors", o->out);
    if (eng_tnet_train_save(&m, path, err) != 0) goto done;
    config = model_config(&so);
    json_object_set_new(config, "training",
                        json_pack("{s:s,s:i,s:i,s:i,s:i,s:f,s:f,s:f,s:I,s:f,s:f,s:f,s:f}", "style", o->style, "steps",
                                  total, "batch_size", B, "image_size", S, "style_size", so.style_size, "style_weight",
                                  (double)so.style_weight, "content_weight", (double)so.content_weight,
                                  "learning_rate", (double)o->lr, "seed", (json_int_t)o->seed, "seconds", train_s,
                                  "loss", last[0], "content_loss", last[1], "style_loss", last[2]));
    json_object_set_new(json_object_get(config, "training"), "structure_weight", json_real(so.structure_weight));
    json_object_set_new(json_object_get(config, "training"), "structure_loss", json_real(last[3]));
    if (eng__train_write_json(o->out, "config.json", config, err) != 0) goto done;
    if (write_readme(o, &so, &m, &s, total, train_s, last, err) != 0) goto done;
    rc = 0;
done:
    if (ck_init) eng_ckpt_free(&ck);
    eng_tape_free(&tape);
    eng_tnet_train_free(&m);
    eng_style_target_free(&target);
    eng_lossnet_free(net);
    free(style.px);
    free(style_planar);
    free(am); free(av); free(x);
    json_decref(config);
    photo_set_free(&s);
    return rc;
}

int eng__check_image_stylization(const eng_train_opts *o, char **err) {
    style_opts so;
    if (resolve_opts(o, &so, err) != 0) return -1;
    rgb8 style;
    if (load_rgb(&style, o->style, so.style_size, 1, err) != 0) return -1;
    int small = style.w < ENG_LOSSNET_MIN_SIDE || style.h < ENG_LOSSNET_MIN_SIDE;
    free(style.px);
    if (small) return eng_errorf(err, "%s: too small for a style (at least %d pixels a side)", o->style, ENG_LOSSNET_MIN_SIDE);
    photo_set s;
    if (photo_set_load(&s, o->data, so.size, 0, err) != 0) return -1;
    photo_set_free(&s);
    return 0;
}
