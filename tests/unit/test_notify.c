// test_notify.c — unit tests for server/notify: srv_notify against a real
// AF_UNIX datagram socket bound by the test (filesystem path and abstract
// namespace), no socket configured, and bad addresses.
#include "server/notify.h"

#include <check.h>
#include <errno.h>
#include <stddef.h>      // offsetof
#include <stdio.h>
#include <stdlib.h>      // setenv, unsetenv, mkdtemp
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

// Binds a datagram socket at path ("@name" = abstract). Returns the fd.
static int bind_dgram(const char *path) {
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    size_t len = strlen(path);
    ck_assert_uint_lt(len, sizeof a.sun_path);
    memcpy(a.sun_path, path, len);
    if (path[0] == '@') a.sun_path[0] = '\0';
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
    ck_assert_msg(bind(fd, (struct sockaddr *)&a, alen) == 0, "bind %s: %s", path, strerror(errno));
    return fd;
}

// Receives one datagram (non-blocking: it must already be there).
static void expect_datagram(int fd, const char *want) {
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    ck_assert_msg(n >= 0, "no datagram: %s", strerror(errno));
    buf[n] = '\0';
    ck_assert_int_eq(n, (ssize_t)strlen(want));
    ck_assert_str_eq(buf, want);
}

START_TEST(test_notify_path) {
    char dir[] = "/tmp/inferd_notify_XXXXXX", path[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/notify.sock", dir);
    int fd = bind_dgram(path);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
    ck_assert_int_eq(srv_notify("READY=1"), 1);
    expect_datagram(fd, "READY=1");
    ck_assert_int_eq(srv_notify("STATUS=serving 3 models\nMAINPID=1"), 1);
    expect_datagram(fd, "STATUS=serving 3 models\nMAINPID=1");
    ck_assert_int_eq(srv_notify("STOPPING=1"), 1);
    expect_datagram(fd, "STOPPING=1");
    // Nothing else arrived.
    char buf[8];
    ck_assert_int_eq(recv(fd, buf, sizeof buf, MSG_DONTWAIT), -1);
    // The variable is left alone.
    ck_assert_str_eq(getenv("NOTIFY_SOCKET"), path);
    close(fd);
    unlink(path);
    rmdir(dir);
    // The socket is gone: an error, not a crash.
    errno = 0;
    ck_assert_int_eq(srv_notify("READY=1"), -1);
    ck_assert_int_ne(errno, 0);
    unsetenv("NOTIFY_SOCKET");
}
END_TEST

START_TEST(test_notify_abstract) {
    char name[64];
    snprintf(name, sizeof name, "@inferd-test-notify-%d", (int)getpid());
    int fd = bind_dgram(name);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", name, 1), 0);
    ck_assert_int_eq(srv_notify("RELOADING=1"), 1);
    expect_datagram(fd, "RELOADING=1");
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}
END_TEST

START_TEST(test_notify_unset_and_bad) {
    unsetenv("NOTIFY_SOCKET");
    ck_assert_int_eq(srv_notify("READY=1"), 0);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", "", 1), 0);
    ck_assert_int_eq(srv_notify("READY=1"), 0);
    static const char *const bad[] = { "relative/path", "@", "vsock:2:1234" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(setenv("NOTIFY_SOCKET", bad[i], 1), 0);
        errno = 0;
        ck_assert_int_eq(srv_notify("READY=1"), -1);
        ck_assert_int_eq(errno, EINVAL);
    }
    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", longpath, 1), 0);
    ck_assert_int_eq(srv_notify("READY=1"), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", "/tmp/x", 1), 0);
    ck_assert_int_eq(srv_notify(""), -1);
    ck_assert_int_eq(srv_notify(NULL), -1);
    unsetenv("NOTIFY_SOCKET");
}
END_TEST

static Suite *notify_suite(void) {
    Suite *s = suite_create("notify");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_notify_path);
    tcase_add_test(tc, test_notify_abstract);
    tcase_add_test(tc, test_notify_unset_and_bad);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(notify_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
