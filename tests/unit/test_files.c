// test_files.c — server/files: ids and filenames, uploads (sha256 against
// the FIPS 180-2 vectors, fed in odd chunk sizes), the size limit, atomic
// commit, list paging, delete, and a restart that reloads the index and
// sweeps interrupted uploads.
#include "server/files.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>   // stat
#include <unistd.h>     // access
#include "engine/core/util.h"  // eng_read_file
#include "tests/unit/testutil.h"

static char *data_dir;

static void setup(void) {
    data_dir = tu_temp_dir("inferd_test_files");
    char *err = NULL;
    ck_assert_msg(srv_files_init(data_dir, 4096, &err) == 0, "%s", err ? err : "");
}

static void teardown(void) {
    srv_files_free();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data_dir);
    ck_assert_int_eq(system(cmd), 0);
    free(data_dir);
}

// Uploads data in chunks of `chunk` bytes; returns the object (or NULL).
static json_t *upload(const char *data, size_t n, size_t chunk, const char *name) {
    char *err = NULL;
    srv_file_upload *u = srv_files_upload_begin(&err);
    ck_assert_msg(u != NULL, "%s", err ? err : "");
    for (size_t off = 0; off < n; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        if (srv_files_upload_write(u, data + off, k, &err) != 0) { srv_files_upload_abort(u); return NULL; }
    }
    json_t *o = srv_files_upload_finish(u, name, "train", &err);
    ck_assert_msg(o != NULL, "%s", err ? err : "");
    srv_files_upload_abort(u);
    return o;
}

static int n_dir_entries(const char *sub) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls -A '%s/%s' | wc -l", data_dir, sub);
    FILE *p = popen(cmd, "r");
    int n = -1;
    ck_assert_int_eq(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

START_TEST(test_names) {
    ck_assert(srv_files_valid_id("file-0123456789abcdef01234567"));
    ck_assert(!srv_files_valid_id("file-0123456789abcdef0123456"));     // short
    ck_assert(!srv_files_valid_id("file-0123456789abcdef012345678"));   // long
    ck_assert(!srv_files_valid_id("file-0123456789ABCDEF01234567"));    // upper case
    ck_assert(!srv_files_valid_id("file-../../../../etc/passwd0000"));
    ck_assert(!srv_files_valid_id("file-0123456789abcdef0123456/"));
    ck_assert(!srv_files_valid_id("xxxx-0123456789abcdef01234567"));
    ck_assert(!srv_files_valid_id(""));
    ck_assert(!srv_files_valid_id(NULL));
    ck_assert(srv_files_valid_filename("data.tar.gz"));
    ck_assert(srv_files_valid_filename("Fashion_MNIST-1"));
    ck_assert(!srv_files_valid_filename(".."));
    ck_assert(!srv_files_valid_filename("."));
    ck_assert(!srv_files_valid_filename("a..b"));
    ck_assert(!srv_files_valid_filename("../x"));
    ck_assert(!srv_files_valid_filename("a/b"));
    ck_assert(!srv_files_valid_filename("a b"));
    ck_assert(!srv_files_valid_filename("a\\b"));
    ck_assert(!srv_files_valid_filename(""));
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    ck_assert(!srv_files_valid_filename(longname));
    longname[255] = 0;
    ck_assert(srv_files_valid_filename(longname));
}
END_TEST

START_TEST(test_sha256_vectors) {
    // FIPS 180-2 appendix B and the empty message
    static const struct { const char *msg; const char *hex; } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        for (size_t chunk = 1; chunk <= 64; chunk *= 7) {
            json_t *o = upload(v[i].msg, strlen(v[i].msg), chunk, "v.txt");
            ck_assert_str_eq(json_string_value(json_object_get(o, "sha256")), v[i].hex);
            ck_assert_int_eq(json_integer_value(json_object_get(o, "bytes")), (json_int_t)strlen(v[i].msg));
            json_decref(o);
        }
    }
}
END_TEST

START_TEST(test_sha256_million_a) {
    srv_files_free();
    char *err = NULL;
    ck_assert_int_eq(srv_files_init(data_dir, 2000000, &err), 0);
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    json_t *o = upload(a, 1000000, 4099, "a.bin");
    ck_assert_str_eq(json_string_value(json_object_get(o, "sha256")),
                     "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    // the stored bytes are the uploaded bytes
    char *path = srv_files_path(json_string_value(json_object_get(o, "id")));
    ck_assert_ptr_nonnull(path);
    ck_assert_int_eq(path[0], '/');
    size_t len;
    char *back = eng_read_file(path, &len, &err);
    ck_assert_ptr_nonnull(back);
    ck_assert_int_eq(len, 1000000);
    ck_assert_int_eq(memcmp(back, a, len), 0);
    free(back); free(path); free(a);
    json_decref(o);
}
END_TEST

START_TEST(test_too_large) {
    char buf[5000];
    memset(buf, 'x', sizeof buf);
    char *err = NULL;
    srv_file_upload *u = srv_files_upload_begin(&err);
    ck_assert_int_eq(srv_files_upload_write(u, buf, 4000, &err), 0);
    ck_assert_int_eq(n_dir_entries("files"), 1);   // the temp file
    ck_assert_int_eq(srv_files_upload_write(u, buf, 97, &err), SRV_FILES_ETOOLARGE);
    ck_assert_int_eq(n_dir_entries("files"), 0);   // removed at once
    srv_files_upload_abort(u);
    // exactly the limit is fine
    json_t *o = upload(buf, 4096, 1000, "x");
    ck_assert_ptr_nonnull(o);
    json_decref(o);
    // an aborted upload leaves nothing
    u = srv_files_upload_begin(&err);
    ck_assert_int_eq(srv_files_upload_write(u, buf, 10, &err), 0);
    srv_files_upload_abort(u);
    ck_assert_int_eq(n_dir_entries("files"), 2);   // x and x.json
}
END_TEST

START_TEST(test_list_get_delete_restart) {
    char *ids[5];
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        json_t *o = upload(name, strlen(name), 3, name);
        ids[i] = strdup(json_string_value(json_object_get(o, "id")));
        ck_assert(srv_files_valid_id(ids[i]));
        ck_assert_str_eq(json_string_value(json_object_get(o, "object")), "file");
        ck_assert_str_eq(json_string_value(json_object_get(o, "purpose")), "train");
        json_decref(o);
    }
    // paging: 5 files in pages of 2, ascending then descending, every file once
    for (int desc = 0; desc < 2; desc++) {
        const char *after = NULL;
        int seen = 0, more = 1, pages = 0;
        char last[64] = "";
        while (more) {
            json_t *a = srv_files_list(after, 2, desc, &more);
            ck_assert_ptr_nonnull(a);
            seen += (int)json_array_size(a);
            pages++;
            if (json_array_size(a)) {
                snprintf(last, sizeof last, "%s", json_string_value(json_object_get(json_array_get(a, json_array_size(a) - 1), "id")));
                after = last;
            }
            json_decref(a);
        }
        ck_assert_int_eq(seen, 5);
        ck_assert_int_eq(pages, 3);
    }
    int more;
    ck_assert_ptr_null(srv_files_list("file-000000000000000000000000", 2, 0, &more));   // unknown cursor
    ck_assert_ptr_null(srv_files_list("../x", 2, 0, &more));
    // get, delete
    json_t *o = srv_files_object(ids[2]);
    ck_assert_ptr_nonnull(o);
    json_decref(o);
    ck_assert_int_eq(srv_files_delete(ids[2]), 0);
    ck_assert_ptr_null(srv_files_object(ids[2]));
    ck_assert_ptr_null(srv_files_path(ids[2]));
    ck_assert_int_eq(srv_files_delete(ids[2]), -1);
    ck_assert_int_eq(srv_files_delete("file-../../x"), -1);
    ck_assert_int_eq(n_dir_entries("files"), 8);
    // an interrupted upload and orphaned bytes are swept at the next start; files survive
    char *err = NULL;
    srv_file_upload *u = srv_files_upload_begin(&err);
    ck_assert_int_eq(srv_files_upload_write(u, "zz", 2, &err), 0);
    char orphan[512];
    snprintf(orphan, sizeof orphan, "%s/files/file-aaaaaaaaaaaaaaaaaaaaaaaa", data_dir);
    FILE *f = fopen(orphan, "w");
    fputs("x", f);
    fclose(f);
    ck_assert_int_eq(n_dir_entries("files"), 10);
    srv_files_free();
    ck_assert_int_eq(srv_files_init(data_dir, 4096, &err), 0);
    ck_assert_int_eq(n_dir_entries("files"), 8);
    json_t *a = srv_files_list(NULL, 100, 0, &more);
    ck_assert_int_eq(json_array_size(a), 4);
    json_decref(a);
    for (int i = 0; i < 5; i++) {
        json_t *x = srv_files_object(ids[i]);
        ck_assert_int_eq(x != NULL, i != 2);
        json_decref(x);
        free(ids[i]);
    }
    srv_files_upload_abort(u);   // its temp file is gone already: harmless
}
END_TEST

static Suite *files_suite(void) {
    Suite *s = suite_create("files");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_sha256_vectors);
    tcase_add_test(tc, test_sha256_million_a);
    tcase_add_test(tc, test_too_large);
    tcase_add_test(tc, test_list_get_delete_restart);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(files_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
