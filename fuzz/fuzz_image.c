// fuzz_image.c — PNG and JPEG decoding and the resize to a model's input.
//
// Each input is the bytes of an image upload (a raw POST /v1/classifications
// body, or one base64-decoded "image"). It goes through eng_image_decode with
// the daemon's default max_image_pixels, then eng_image_to_tensor for two
// model inputs: fashion-cnn's (28x28 gray, "invert":"auto", through
// eng_model_image_input as the handler does) and a 3-channel 32x24 one with
// a grey background (alpha compositing, colour path, bilinear growth). Every
// decoded image must have positive dimensions within the limit, and every
// input value must be finite. The EXIF orientation (read from every input,
// decodable or not) must be 1..8, and turning the image by it keeps its
// pixel count and swaps the sides for 5..8 (what /v1/stylizations does).
#include <math.h>              // isfinite
#include "engine/io/exif.h"       // eng_jpeg_orientation, eng_image_orient
#include "engine/io/image.h"      // eng_image_decode, eng_image_to_tensor
#include "engine/arch/model.h"      // eng_model_image_input
#include "fuzz/fuzz.h"         // FUZZ_CHECK
#include "server/http.h"       // srv_http_config (defaults)
#include "server/registry.h"   // srv_registry_get

static const eng_model *cnn;

int fuzz_image_init(void) {
    if (!fuzz_registry()) return -1;
    srv_model *m = srv_registry_get("fashion-cnn");   // keeps its reference for the process
    cnn = m ? m->m : NULL;
    return cnn ? 0 : -1;
}

void fuzz_image_one(const uint8_t *data, size_t size) {
    eng_image img;
    char *err = NULL;
    size_t max_pixels = (size_t)srv_http_config()->max_image_pixels;
    int orientation = eng_jpeg_orientation(data, size);
    FUZZ_CHECK(orientation >= 1 && orientation <= 8);
    int rc = eng_image_decode(&img, data, size, max_pixels, &err);
    if (rc != ENG_IMG_OK) {
        FUZZ_CHECK(rc == ENG_IMG_EFORMAT || rc == ENG_IMG_ECORRUPT || rc == ENG_IMG_ETOOLARGE);
        FUZZ_CHECK(err != NULL);
        free(err);
        return;
    }
    FUZZ_CHECK(img.width > 0 && img.height > 0 && (size_t)img.width * (size_t)img.height <= max_pixels && img.rgba);
    float gray[28 * 28];
    eng_model_image_input(cnn, &img, gray);
    for (size_t i = 0; i < sizeof gray / sizeof gray[0]; i++) FUZZ_CHECK(isfinite(gray[i]));
    eng_image_prep rgb = {.channels = 3, .height = 24, .width = 32, .mean = {0.5f, 0.5f, 0.5f},
                          .std = {0.25f, 0.25f, 0.25f}, .background = 128, .invert = 0};
    float out[3 * 24 * 32];
    eng_image_to_tensor(out, &img, &rgb);
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) FUZZ_CHECK(isfinite(out[i]));
    int w = img.width, h = img.height;
    if (eng_image_orient(&img, orientation) == 0)
        FUZZ_CHECK(orientation >= 5 ? (img.width == h && img.height == w) : (img.width == w && img.height == h));
    eng_image_free(&img);
}

FUZZ_ENTRY(image)
