// fuzz_dataset_tar.c — image-classification datasets uploaded as a tar of
// label folders (engine/io/dataset_tar.c; POST /v1/files, then a job).
//
// Each input is a whole file (a tar, plain or gzip'd), read through a memfd
// with small bounds so a hostile input cannot take long. A dataset it
// accepts must be consistent: at least one image, 2..256 labels, every
// label index below n_labels, label names distinct, non-empty and sorted,
// every pixel readable (ASan checks them).
#include <string.h>            // strcmp
#include <unistd.h>            // close
#include "engine/io/dataset_tar.h"
#include "fuzz/fuzz.h"         // FUZZ_CHECK, fuzz_memfile

int fuzz_dataset_tar_init(void) { return 0; }

void fuzz_dataset_tar_one(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_memfile(data, size, 0, path, sizeof path);
    if (fd < 0) return;
    eng_tar_opts o;
    eng_tar_opts_init(&o);
    o.height = o.width = 8;
    o.max_members = 64;
    o.max_member_bytes = 1 << 20;
    o.max_total_bytes = 4 << 20;
    o.max_pixels = 1 << 16;
    eng_image_dataset d;
    char *err = NULL;
    if (eng_dataset_tar_load(&d, path, &o, &err) != 0) {
        FUZZ_CHECK(err != NULL);
        free(err);
        close(fd);
        return;
    }
    FUZZ_CHECK(d.n >= 1 && d.n_labels >= 2 && d.n_labels <= 256);
    for (int i = 0; i < d.n_labels; i++) {
        FUZZ_CHECK(d.label_names[i] && d.label_names[i][0]);
        if (i) FUZZ_CHECK(strcmp(d.label_names[i - 1], d.label_names[i]) < 0);
    }
    volatile unsigned sink = 0;
    size_t image = (size_t)d.channels * d.height * d.width;
    for (int i = 0; i < d.n; i++) {
        FUZZ_CHECK(d.labels[i] < d.n_labels);
        for (size_t k = 0; k < image; k++) sink += d.pixels[(size_t)i * image + k];
    }
    (void)sink;
    eng_image_dataset_free(&d);
    close(fd);
}

FUZZ_ENTRY(dataset_tar)
