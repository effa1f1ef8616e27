// test_dataset_tar.c — engine/io/dataset_tar: archives written in the test
// with libarchive's writer (plain and gzip'd): labels sorted, pixels as the
// server would prepare them, hidden files skipped; hostile archives (path
// traversal, absolute names, symlinks, hard links, deep or top-level
// members, undecodable images, truncation, size, count and pixel bounds,
// empty, one label, not a tar) are errors naming the member, never crashes.
#include "engine/io/dataset_tar.h"
#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "engine/core/util.h"   // eng_read_file
#include "engine/io/image.h"   // eng_png_encode
#include "tests/unit/testutil.h"

typedef struct {
    const char *name;
    int type;              // 'f' file, 'd' dir, 'l' symlink, 'h' hard link
    const void *data;      // file bytes (or link target as a string)
    size_t len;
} member;

static char tar_path[64];

// Writes members to tar_path (gzip'd when gz). Returns the archive's size.
static long write_tar(const member *m, int n, int gz) {
    snprintf(tar_path, sizeof tar_path, "/tmp/inferd_test_tar_XXXXXX");
    int fd = mkstemp(tar_path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (gz) archive_write_add_filter_gzip(a);
    ck_assert_int_eq(archive_write_open_filename(a, tar_path), ARCHIVE_OK);
    for (int i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_perm(e, 0644);
        if (m[i].type == 'd') archive_entry_set_filetype(e, AE_IFDIR);
        else if (m[i].type == 'l') { archive_entry_set_filetype(e, AE_IFLNK); archive_entry_set_symlink(e, m[i].data); }
        else if (m[i].type == 'h') { archive_entry_set_filetype(e, AE_IFREG); archive_entry_set_hardlink(e, m[i].data); }
        else { archive_entry_set_filetype(e, AE_IFREG); archive_entry_set_size(e, (la_int64_t)m[i].len); }
        ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
        if (m[i].type == 'f' && m[i].len) ck_assert_int_eq(archive_write_data(a, m[i].data, m[i].len), (la_ssize_t)m[i].len);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    FILE *f = fopen(tar_path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    return size;
}

// A w x h gray PNG of one value (malloc'd, length in *len).
static uint8_t *gray_png(int w, int h, uint8_t v, size_t *len) {
    uint8_t *px = malloc((size_t)w * h);
    memset(px, v, (size_t)w * h);
    uint8_t *out;
    char *err = NULL;
    ck_assert_int_eq(eng_png_encode(&out, len, px, w, h, 1, &err), 0);
    free(px);
    return out;
}

// Loads tar_path and expects failure with a message containing `want`.
static void expect_error(const eng_tar_opts *o, const char *want) {
    eng_image_dataset d;
    char *err = NULL;
    ck_assert_int_eq(eng_dataset_tar_load(&d, tar_path, o, &err), -1);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" does not contain \"%s\"", err, want);
    ck_assert_int_eq(d.n, 0);
    free(err);
    err = NULL;
    ck_assert_int_eq(eng_dataset_tar_check(tar_path, o, NULL, NULL, &err), -1);
    ck_assert_msg(err && strstr(err, want), "check: %s", err ? err : "(null)");
    free(err);
}

START_TEST(test_load_sorted_labels) {
    size_t l1, l2, l3;
    uint8_t *p200 = gray_png(28, 28, 200, &l1), *p100 = gray_png(56, 56, 100, &l2), *p7 = gray_png(7, 9, 7, &l3);
    member m[] = {
        {"./", 'd', NULL, 0},
        {"./cat/", 'd', NULL, 0},
        {"./cat/1.png", 'f', p200, l1},
        {"./cat/._1.png", 'f', "junk", 4},        // macOS AppleDouble: skipped
        {"dog/a.png", 'f', p100, l2},
        {"ant/z.png", 'f', p7, l3},
        {"dog/b.png", 'f', p200, l1},
        {".hidden/x.png", 'f', "junk", 4},        // hidden folder: skipped
    };
    for (int gz = 0; gz < 2; gz++) {
        write_tar(m, 8, gz);
        ck_assert_int_eq(eng_dataset_is_tar(tar_path), 1);
        eng_tar_opts o;
        eng_tar_opts_init(&o);
        eng_image_dataset d;
        char *err = NULL;
        ck_assert_msg(eng_dataset_tar_load(&d, tar_path, &o, &err) == 0, "%s", err ? err : "");
        ck_assert_int_eq(d.n, 4);
        ck_assert_int_eq(d.n_labels, 3);
        ck_assert_str_eq(d.label_names[0], "ant");
        ck_assert_str_eq(d.label_names[1], "cat");
        ck_assert_str_eq(d.label_names[2], "dog");
        // in archive order: cat/1 (200), dog/a (100 at 56x56, shrunk), ant/z (7 at 7x9, grown), dog/b (200)
        const int want_label[4] = {1, 2, 0, 2}, want_value[4] = {200, 100, 7, 200};
        for (int i = 0; i < 4; i++) {
            ck_assert_int_eq(d.labels[i], want_label[i]);
            for (int k = 0; k < 28 * 28; k++)
                ck_assert_int_eq(d.pixels[i * 784 + k], want_value[i]);
        }
        int n_img = 0, n_lab = 0;
        ck_assert_int_eq(eng_dataset_tar_check(tar_path, &o, &n_img, &n_lab, &err), 0);
        ck_assert_int_eq(n_img, 4);
        ck_assert_int_eq(n_lab, 3);
        // RGB at another size
        eng_image_dataset_free(&d);
        o.channels = 3; o.height = 8; o.width = 5;
        ck_assert_int_eq(eng_dataset_tar_load(&d, tar_path, &o, &err), 0);
        ck_assert_int_eq(d.channels * d.height * d.width, 120);
        ck_assert_int_eq(d.pixels[120 * 3 + 119], 200);
        eng_image_dataset_free(&d);
        unlink(tar_path);
    }
    free(p200); free(p100); free(p7);
}
END_TEST

// One top folder around the label folders (tar czf x.tar.gz dataset/).
START_TEST(test_top_folder) {
    size_t l;
    uint8_t *png = gray_png(28, 28, 80, &l);
    member m[] = {
        {"shoes/", 'd', NULL, 0},
        {"shoes/boot/1.png", 'f', png, l},
        {"./shoes/sandal/2.png", 'f', png, l},
        {"shoes/boot/._1.png", 'f', "junk", 4},
    };
    write_tar(m, 4, 1);
    eng_tar_opts o;
    eng_tar_opts_init(&o);
    eng_image_dataset d;
    char *err = NULL;
    ck_assert_msg(eng_dataset_tar_load(&d, tar_path, &o, &err) == 0, "%s", err ? err : "");
    ck_assert_int_eq(d.n, 2);
    ck_assert_int_eq(d.n_labels, 2);
    ck_assert_str_eq(d.label_names[0], "boot");
    ck_assert_str_eq(d.label_names[1], "sandal");
    eng_image_dataset_free(&d);
    unlink(tar_path);
    // then every file must be inside it
    member out[] = {{"shoes/boot/1.png", 'f', png, l}, {"other/sandal/2.png", 'f', png, l}};
    write_tar(out, 2, 0);
    expect_error(&o, "member \"other/sandal/2.png\" is outside the archive's top folder \"shoes/\"");
    unlink(tar_path);
    member out2[] = {{"shoes/boot/1.png", 'f', png, l}, {"shoes/2.png", 'f', png, l}};
    write_tar(out2, 2, 0);
    expect_error(&o, "member \"shoes/2.png\" is not inside a label folder");
    unlink(tar_path);
    member trav[] = {{"shoes/../1.png", 'f', png, l}, {"shoes/b/2.png", 'f', png, l}};
    write_tar(trav, 2, 0);
    expect_error(&o, "\"..\" in a name");
    unlink(tar_path);
    free(png);
}
END_TEST

START_TEST(test_hostile) {
    size_t l;
    uint8_t *png = gray_png(28, 28, 50, &l);
    eng_tar_opts o;
    eng_tar_opts_init(&o);
    static const struct { const char *name; int type; const char *target; const char *want; } cases[] = {
        {"../evil.png", 'f', NULL, "\"..\" in a name"},
        {"a/../../evil.png", 'f', NULL, "\"..\" in a name"},
        {"/etc/evil.png", 'f', NULL, "absolute names"},
        {"a/link.png", 'l', "/etc/passwd", "not a regular file"},
        {"a/hard.png", 'h', "b/1.png", "not a regular file"},
        {"top.png", 'f', NULL, "not inside a label folder"},
        {"a/b/deep.png", 'f', NULL, "not directly inside a label folder"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        member m[] = {
            {"b/1.png", 'f', png, l},
            {"c/1.png", 'f', png, l},
            {cases[i].name, cases[i].type, cases[i].type == 'f' ? (const void *)png : cases[i].target, cases[i].type == 'f' ? l : 0},
        };
        write_tar(m, 3, (int)(i & 1));
        expect_error(&o, cases[i].want);
        expect_error(&o, cases[i].name[0] == '/' ? "etc/evil.png" : cases[i].name);   // names the member
        unlink(tar_path);
    }
    // an image that does not decode names its member
    member bad[] = {{"b/1.png", 'f', png, l}, {"c/broken.png", 'f', "\x89PNG\r\n\x1a\nnot really", 18}};
    write_tar(bad, 2, 1);
    expect_error(&o, "member \"c/broken.png\" is not a usable image");
    unlink(tar_path);
    // one label only; nothing at all; not a tar
    member one[] = {{"b/1.png", 'f', png, l}, {"b/2.png", 'f', png, l}};
    write_tar(one, 2, 0);
    expect_error(&o, "one label folder (\"b\")");
    unlink(tar_path);
    write_tar(one, 0, 0);
    expect_error(&o, "no images");
    unlink(tar_path);
    write_tar(one, 0, 1);
    expect_error(&o, "no images");
    unlink(tar_path);
    FILE *f = fopen("/tmp/inferd_test_tar_text", "w");
    fputs("hello, not a tar\n", f);
    fclose(f);
    snprintf(tar_path, sizeof tar_path, "/tmp/inferd_test_tar_text");
    ck_assert_int_eq(eng_dataset_is_tar(tar_path), 0);
    expect_error(&o, "not a readable tar archive");
    unlink(tar_path);
    snprintf(tar_path, sizeof tar_path, "/tmp/inferd_test_tar_missing");
    expect_error(&o, "inferd_test_tar_missing");
    free(png);
}
END_TEST

START_TEST(test_truncated) {
    size_t l;
    uint8_t *png = gray_png(64, 64, 50, &l);
    member m[] = {{"b/1.png", 'f', png, l}, {"c/2.png", 'f', png, l}, {"c/3.png", 'f', png, l}};
    eng_tar_opts o;
    eng_tar_opts_init(&o);
    for (int gz = 0; gz < 2; gz++) {
        long size = write_tar(m, 3, gz);
        size_t len;
        char *whole = eng_read_file(tar_path, &len, NULL);
        ck_assert_ptr_nonnull(whole);
        // every cut point in steps: an error (or, when only the end-of-archive
        // blocks are cut, a full read), never a crash
        for (long cut = 1; cut < size; cut += gz ? 7 : 97) {
            FILE *f = fopen(tar_path, "wb");
            ck_assert_int_eq(fwrite(whole, 1, (size_t)cut, f), (size_t)cut);
            fclose(f);
            eng_image_dataset d;
            char *err = NULL;
            int rc = eng_dataset_tar_load(&d, tar_path, &o, &err);
            if (rc == 0) { ck_assert_int_eq(d.n, 3); eng_image_dataset_free(&d); }
            else { ck_assert_ptr_nonnull(err); free(err); }
        }
        // plain: inside the last member's data (3 headers and 2 data blocks of 512 before it)
        ck_assert_int_eq(truncate(tar_path, gz ? size / 2 : 5 * 512 + 50), 0);
        expect_error(&o, "truncated");
        unlink(tar_path);
        free(whole);
    }
    free(png);
}
END_TEST

START_TEST(test_bounds) {
    size_t l, lbig;
    uint8_t *png = gray_png(28, 28, 50, &l), *big = gray_png(300, 300, 9, &lbig);
    member m[] = {{"b/1.png", 'f', png, l}, {"c/2.png", 'f', png, l}, {"c/3.png", 'f', big, lbig}};
    write_tar(m, 3, 1);
    eng_tar_opts o;
    eng_tar_opts_init(&o);
    o.max_pixels = 300 * 300 - 1;
    expect_error(&o, "c/3.png");
    eng_tar_opts_init(&o);
    o.max_member_bytes = (long long)lbig - 1;
    expect_error(&o, "member \"c/3.png\" is larger than");
    eng_tar_opts_init(&o);
    o.max_total_bytes = (long long)(2 * l + lbig) - 1;
    expect_error(&o, "more than");
    eng_tar_opts_init(&o);
    o.max_members = 2;
    expect_error(&o, "more than 2 members");
    eng_tar_opts_init(&o);
    eng_image_dataset d;
    char *err = NULL;
    ck_assert_int_eq(eng_dataset_tar_load(&d, tar_path, &o, &err), 0);
    ck_assert_int_eq(d.n, 3);
    eng_image_dataset_free(&d);
    eng_image_dataset_free(&d);   // twice is fine
    unlink(tar_path);
    free(png); free(big);
}
END_TEST

static Suite *tar_suite(void) {
    Suite *s = suite_create("dataset_tar");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_load_sorted_labels);
    tcase_add_test(tc, test_top_folder);
    tcase_add_test(tc, test_hostile);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_bounds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(tar_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
