// exif.h — the EXIF orientation of a JPEG, and turning decoded pixels the
// way it says. Read by a small bounded parser of the APP1 "Exif" segment
// (one tag of IFD0 is all we need: libexif would be a dependency for it).
#ifndef ENG_EXIF_H
#define ENG_EXIF_H
#include <stddef.h>            // size_t
#include "engine/io/image.h"   // eng_image

// The orientation tag (0x0112) of a JPEG's EXIF data: 1..8, or 1 when the
// data is not a JPEG, has no EXIF, or the tag is missing or malformed.
// Reads only within data[0..len).
int eng_jpeg_orientation(const void *data, size_t len);

// Rewrites img upright for EXIF orientation o (1: as is; 2 mirror; 3 180°;
// 4 flip; 5 transpose; 6 rotate 90° clockwise; 7 transverse; 8 rotate 90°
// counter-clockwise); 5..8 swap width and height. Returns 0, or -1 when out
// of memory (img unchanged).
int eng_image_orient(eng_image *img, int o);

#endif
