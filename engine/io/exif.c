// exif.c — see exif.h.
#include "engine/io/exif.h"
#include <stdint.h>   // uint8_t
#include <stdlib.h>   // malloc, free
#include <string.h>   // memcmp

static unsigned rd16(const uint8_t *p, int le) { return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1]; }
static uint32_t rd32(const uint8_t *p, int le) {
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

// The orientation in one TIFF block t[0..n) (the APP1 payload after "Exif\0\0").
static int tiff_orientation(const uint8_t *t, size_t n) {
    if (n < 8) return 1;
    int le;
    if (memcmp(t, "II*\0", 4) == 0) le = 1;
    else if (memcmp(t, "MM\0*", 4) == 0) le = 0;
    else return 1;
    uint32_t ifd = rd32(t + 4, le);
    if (ifd > n - 2) return 1;
    unsigned count = rd16(t + ifd, le);
    for (unsigned i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > n) return 1;
        if (rd16(t + e, le) != 0x0112) continue;
        // type SHORT (3), count 1: the value sits in the first two bytes of the value field
        if (rd16(t + e + 2, le) != 3 || rd32(t + e + 4, le) != 1) return 1;
        unsigned o = rd16(t + e + 8, le);
        return o >= 1 && o <= 8 ? (int)o : 1;
    }
    return 1;
}

int eng_jpeg_orientation(const void *data, size_t len) {
    const uint8_t *d = data;
    if (!d || len < 4 || d[0] != 0xff || d[1] != 0xd8) return 1;
    size_t p = 2;
    // marker segments up to the first scan: FF xx, 2-byte length (counting itself)
    while (p + 4 <= len) {
        if (d[p] != 0xff) return 1;
        unsigned marker = d[p + 1];
        if (marker == 0xff) { p++; continue; }              // fill byte
        if (marker == 0xda || marker == 0xd9) return 1;     // start of scan / end of image: no EXIF before
        if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { p += 2; continue; }   // no length
        size_t seg = (size_t)d[p + 2] << 8 | d[p + 3];
        if (seg < 2 || p + 2 + seg > len) return 1;
        if (marker == 0xe1 && seg >= 2 + 6 && memcmp(d + p + 4, "Exif\0\0", 6) == 0)
            return tiff_orientation(d + p + 10, seg - 8);
        p += 2 + seg;
    }
    return 1;
}

int eng_image_orient(eng_image *img, int o) {
    if (o < 2 || o > 8) return 0;
    const int w = img->width, h = img->height;
    const int swap = o >= 5;
    const int ow = swap ? h : w, oh = swap ? w : h;
    uint32_t *out = malloc((size_t)w * (size_t)h * 4);
    if (!out) return -1;
    const uint32_t *src = (const uint32_t *)(void *)img->rgba;   // one RGBA pixel = 4 bytes, moved whole
    for (int y = 0; y < oh; y++) {
        for (int x = 0; x < ow; x++) {
            int sx, sy;
            switch (o) {
            case 2: sx = w - 1 - x, sy = y; break;
            case 3: sx = w - 1 - x, sy = h - 1 - y; break;
            case 4: sx = x, sy = h - 1 - y; break;
            case 5: sx = y, sy = x; break;
            case 6: sx = y, sy = h - 1 - x; break;
            case 7: sx = w - 1 - y, sy = h - 1 - x; break;
            default: sx = w - 1 - y, sy = x; break;   // 8
            }
            out[(size_t)y * ow + x] = src[(size_t)sy * w + sx];
        }
    }
    free(img->rgba);
    img->rgba = (uint8_t *)out;
    img->width = ow;
    img->height = oh;
    return 0;
}
