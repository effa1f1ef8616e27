// notify.c — sd_notify(3) re-implemented in a few lines: one datagram to the
// AF_UNIX socket named by $NOTIFY_SOCKET. Not supported: vsock addresses and
// passing file descriptors (FDSTORE=1), which inferd does not use.
#include "server/notify.h"

#include <errno.h>        // errno, EINVAL, EMSGSIZE
#include <stddef.h>       // offsetof
#include <stdlib.h>       // getenv
#include <string.h>       // strlen, memcpy
#include <sys/socket.h>   // socket, sendto
#include <sys/un.h>       // struct sockaddr_un
#include <unistd.h>       // close

int srv_notify(const char *state) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) return 0;
    if (!state || !*state) { errno = EINVAL; return -1; }

    // "/run/systemd/notify" is a filesystem path; "@name" is the abstract
    // socket "\0name", whose address length counts exactly its bytes.
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t plen = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || plen < 2 || plen > sizeof addr.sun_path - (path[0] == '/')) {
        errno = EINVAL;   // relative path, lone '@', too long, or an unsupported scheme
        return -1;
    }
    memcpy(addr.sun_path, path, plen);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    if (path[0] == '@') addr.sun_path[0] = '\0';
    else alen++;          // include the path's terminating NUL, as systemd does

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    size_t len = strlen(state);
    ssize_t sent = sendto(fd, state, len, MSG_NOSIGNAL, (const struct sockaddr *)&addr, alen);
    int saved = errno;
    close(fd);
    if (sent < 0) { errno = saved; return -1; }
    if ((size_t)sent != len) { errno = EMSGSIZE; return -1; }
    return 1;
}
