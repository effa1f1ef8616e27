// dataset_tar.h — image-classification datasets as a tar of label folders
// (`label/xxx.png`, `label/yyy.jpg`; plain or gzip'd), read with libarchive
// member by member in memory: nothing is ever extracted to disk.
//
// Layout: every image is a regular file exactly one folder deep; the folder
// is its label (a leading "./" is allowed, so `tar -C dir -cf x.tar .`
// works). One top folder around the label folders is allowed too
// (`tar -czf x.tar.gz dir/`): when the first file is two folders deep, every
// file must be inside that same top folder. Labels are numbered in sorted (strcmp) order. Directory entries
// are skipped, and so are hidden files (a basename starting with '.', such
// as macOS's ._x AppleDouble files). Everything else is an error that names
// the member: a file outside a label folder or deeper, a name with "..", an
// absolute name, a symlink, hard link or device, an image that does not
// decode, a member over the size limits, a truncated or corrupt archive, no
// image at all, only one label.
//
// Each image is decoded (engine/io/image.c: PNG or JPEG) and preprocessed
// the way the server prepares a request for a model with the same input:
// composited on black, converted to `channels`, resized to height x width,
// not inverted, kept as 8-bit values (v = round(255 * tensor value)).
#ifndef ENG_DATASET_TAR_H
#define ENG_DATASET_TAR_H
#include <stdint.h>   // uint8_t

// What to produce and the bounds a hostile archive meets.
typedef struct {
    int channels;                // 1 (luminance) or 3 (RGB)
    int height, width;           // target size, 1..1024
    long max_members;            // archive entries read at most (any type)
    long long max_total_bytes;   // uncompressed bytes over all members
    long long max_member_bytes;  // one member
    long long max_pixels;        // one image's width*height (checked from its header)
} eng_tar_opts;

// Grayscale 28x28 (Fashion-MNIST's shape, the default CNN's input), at most
// 1,000,000 members, 4 GiB in all, 32 MiB and 16 megapixels per image.
void eng_tar_opts_init(eng_tar_opts *o);

typedef struct {
    int n;                       // images
    int channels, height, width; // as asked
    uint8_t *pixels;             // [n][channels][height][width]
    uint8_t *labels;             // [n] index into label_names
    int n_labels;                // 2..256
    char **label_names;          // [n_labels], sorted
} eng_image_dataset;

// Reads the whole dataset. 0, or -1 with *err naming the member at fault
// (d is then empty).
int eng_dataset_tar_load(eng_image_dataset *d, const char *path, const eng_tar_opts *o, char **err);
// Validates without keeping the images (each is still decoded): 0 with the
// counts (either pointer may be NULL), or -1 with *err as above.
int eng_dataset_tar_check(const char *path, const eng_tar_opts *o, int *n_images, int *n_labels, char **err);
void eng_image_dataset_free(eng_image_dataset *d);   // NULL-safe

// 1 if the file at path starts like a tar archive or a gzip stream (the
// trainer's way of telling a tar from an IDX directory); 0 otherwise.
int eng_dataset_is_tar(const char *path);

#endif
