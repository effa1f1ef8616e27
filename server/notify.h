// notify.h — the systemd readiness protocol (sd_notify) without libsystemd.
// With Type=notify, systemd sets $NOTIFY_SOCKET to an AF_UNIX datagram
// socket; the daemon sends "READY=1" once the models are loaded and the port
// is listening, "RELOADING=1" / "STOPPING=1" around a reload or shutdown, and
// "STATUS=..." for `systemctl status`. Without $NOTIFY_SOCKET nothing happens.
#ifndef SRV_NOTIFY_H
#define SRV_NOTIFY_H

// Sends state (one or more "KEY=value" lines, e.g. "READY=1") as one datagram
// to $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
// Returns 1 if sent, 0 if $NOTIFY_SOCKET is unset or empty, -1 on error
// (errno set: EINVAL for a bad state or address, else the socket call's).
// Does not unset $NOTIFY_SOCKET. Safe to call from any thread.
int srv_notify(const char *state);

#endif
