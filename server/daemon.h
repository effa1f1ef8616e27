// daemon.h — `inferd serve`: brings the pieces up in order (metrics,
// registry, workers, models, HTTP), tells systemd READY=1, and runs the libuv
// control loop: SIGTERM/SIGINT stop accepting, drain in-flight requests and
// return 0; SIGHUP reloads the model repository; a timer sweeps queues for
// requests past their deadline or abandoned by their client.
#ifndef SRV_DAEMON_H
#define SRV_DAEMON_H
#include "server/config.h"   // srv_config

// Runs until shutdown. Returns the process exit code.
int srv_daemon_run(const srv_config *cfg);

#endif
