// job_stylize.c — the image-stylization-optimize job task (see job_stylize.h).
#include "server/job_stylize.h"
#include <math.h>                 // sqrt
#include <stdio.h>                // snprintf
#include <stdlib.h>               // free
#include <string.h>               // strcmp
#include "engine/core/util.h"     // eng_errorf, eng_read_file, eng_write_file_atomic
#include "engine/io/image.h"      // ENG_IMG_*
#include "server/files.h"         // srv_files_path

int srv_job_is_stylize(const char *task) { return task && strcmp(task, SRV_TASK_STYLIZE_OPTIMIZE) == 0; }

static int side(int size) { return size > 0 ? size : ENG_STYLIZE_DEFAULT_SIZE; }

// Reads and decodes uploaded file `id` (the hyperparameter `key`) at the
// job's size. SRV_OK with *x, *H, *W, or an error with *msg and *param.
static srv_err load(const char *id, const char *key, const char *param_name, int max_side, long long max_pixels,
                    float **x, int *H, int *W, char **msg, const char **param) {
    *x = NULL;
    *param = param_name;
    if (!id) { eng_errorf(msg, "%s (a PNG or JPEG file id from POST /v1/files) is required", param_name); return SRV_E_MISSING; }
    char *path = srv_files_path(id);
    if (!path) { eng_errorf(msg, "%s %s is not an uploaded file (GET /v1/files lists them)", param_name, id); return SRV_E_NOT_FOUND; }
    size_t len;
    char *err = NULL, *bytes = eng_read_file(path, &len, &err);
    free(path);
    if (!bytes) { eng_errorf(msg, "%s %s cannot be read: %s", param_name, id, err); free(err); return SRV_E_INTERNAL; }
    int rc = eng_stylize_decode(bytes, len, max_side, (size_t)max_pixels, x, H, W, &err);
    free(bytes);
    if (rc != ENG_IMG_OK) {
        eng_errorf(msg, "%s %s: %s", param_name, id, err ? err : "cannot decode the image");
        free(err);
        // the file is not the request's body: a wrong format is a bad value (400), not 415
        return rc == ENG_IMG_ETOOLARGE ? SRV_E_TOO_LARGE : rc < -1 ? SRV_E_BAD_IMAGE : SRV_E_UNAVAILABLE;
    }
    if (*H < ENG_LOSSNET_MIN_SIDE || *W < ENG_LOSSNET_MIN_SIDE) {
        eng_errorf(msg, "%s %s is %dx%d at size %d; the %s image needs at least %d pixels on each side", param_name, id,
                   *W, *H, max_side, key, ENG_LOSSNET_MIN_SIDE);
        free(*x);
        *x = NULL;
        return SRV_E_BAD_VALUE;
    }
    *param = NULL;
    return SRV_OK;
}

// The memory of the optimisation at this size, against max_bytes. SRV_OK or 400.
static srv_err check_bytes(const char *what, int H, int W, int size, long long max_bytes, char **msg, const char **param) {
    double need = (double)H * W * ENG_STYLIZE_BYTES_PER_PIXEL;
    if (need <= (double)max_bytes) return SRV_OK;
    // the largest side that fits at this aspect ratio, for the message
    double aspect = (double)(H > W ? H : W) / (H > W ? W : H);
    long fits = (long)sqrt((double)max_bytes / ENG_STYLIZE_BYTES_PER_PIXEL * aspect);
    *param = "hyperparameters.size";
    eng_errorf(msg, "optimising at size %d (the %s image is %dx%d) takes about %.0f MiB, over max_job_image_bytes (%.0f MiB): "
               "give a size of at most %ld", size, what, W, H, need / 1048576.0, (double)max_bytes / 1048576.0, fits);
    return SRV_E_BAD_VALUE;
}

srv_err srv_job_stylize_check(const char *style_file, const char *content_file, int size, long long max_pixels,
                              long long max_bytes, char **msg, const char **param) {
    float *x;
    int H, W;
    srv_err e = load(style_file, "style", "hyperparameters.style_file", side(size), max_pixels, &x, &H, &W, msg, param);
    free(x);
    if (e == SRV_OK) e = check_bytes("style", H, W, side(size), max_bytes, msg, param);
    if (e != SRV_OK) return e;
    e = load(content_file, "content", "hyperparameters.content_file", side(size), max_pixels, &x, &H, &W, msg, param);
    free(x);
    if (e == SRV_OK) e = check_bytes("content", H, W, side(size), max_bytes, msg, param);
    return e;
}

int srv_job_stylize_run(const char *style_file, const char *content_file, int size, const eng_stylize_opts *o,
                        const char *dir, long long max_pixels, char **err) {
    float *style = NULL, *content = NULL, *y = NULL;
    int SH, SW, H, W, rc = -1;
    char *msg = NULL;
    const char *param;
    uint8_t *png = NULL;
    size_t len = 0;
    if (load(style_file, "style", "hyperparameters.style_file", side(size), max_pixels, &style, &SH, &SW, &msg, &param) != SRV_OK ||
        load(content_file, "content", "hyperparameters.content_file", side(size), max_pixels, &content, &H, &W, &msg, &param) != SRV_OK) {
        *err = msg;
        goto done;
    }
    if (!(y = malloc((size_t)3 * H * W * sizeof(float)))) { eng_errorf(err, "out of memory for a %dx%d image", W, H); goto done; }
    if (eng_stylize(o, content, H, W, style, SH, SW, y, NULL, NULL, err) != 0) goto done;
    char path[4200];
    snprintf(path, sizeof path, "%s/result.png", dir);
    if (eng_stylize_encode_png(y, H, W, &png, &len, err) != 0 || eng_write_file_atomic(path, png, len, err) != 0) goto done;
    rc = 0;
done:
    free(style); free(content); free(y); free(png);
    return rc;
}
