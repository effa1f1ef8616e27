// daemon.c — startup, the control loop and shutdown (see daemon.h).
// Signals only set state on the loop thread (libuv turns them into loop
// callbacks); all lifecycle work happens in loop callbacks.
#include "server/daemon.h"
#include <cblas.h>            // openblas_set_num_threads
#include <malloc.h>           // mallopt
#include <signal.h>           // SIGTERM, SIGPIPE
#include <uv.h>               // uv_loop_t, uv_signal_t, uv_timer_t
#include "engine/core/cpu.h"       // eng_cpu_init, eng_cpu_describe
#include "engine/core/gemm_q8.h"   // eng_q8_isa (logged)
#include "engine/core/pool.h"      // eng_pool_start/stop (compute_threads)
#include "engine/io/weights_map.h" // eng_weights_pages_set (weights_pages)
#include "engine/core/util.h"      // eng_now
#include "server/api.h"       // srv_api_routes, srv_run_classify_images, srv_run_classify_text
#include "server/files.h"     // srv_files_init
#include "server/gen.h"       // srv_gen_step
#include "server/http.h"      // srv_http_*
#include "server/jobs.h"      // srv_jobs_start, srv_jobs_keepalive, srv_jobs_quiesce, srv_jobs_stop
#include "server/log.h"       // log_*
#include "server/metrics.h"   // srv_metrics_init
#include "server/notify.h"    // srv_notify
#include "server/registry.h"  // srv_registry_*
#include "server/sched.h"     // srv_sched_*


static uv_loop_t loop;
static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t ticker;
static const srv_config *cfg;
static int shutting_down;
static double shutdown_started;

static void begin_shutdown(const char *why) {
    if (shutting_down) return;
    shutting_down = 1;
    shutdown_started = eng_now();
    log_info("%s: no longer accepting connections; finishing %d in-flight request(s)", why, srv_http_inflight());
    srv_notify("STOPPING=1");
    srv_http_quiesce();
    srv_jobs_quiesce();   // ends the jobs' event streams, so in-flight requests can drain
    srv_sched_set_draining(1);
}

static void on_signal(uv_signal_t *h, int signum) {
    if (signum == SIGHUP) {
        log_info("SIGHUP: reloading the model repository %s", cfg->models);
        srv_notify("RELOADING=1");
        int n = srv_registry_reload();
        log_info("reload done: %d model(s) loaded", n);
        srv_notify("READY=1");
        return;
    }
    begin_shutdown(signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_tick(uv_timer_t *t) {
    srv_sched_sweep();   // 504 for late requests, drop abandoned ones
    srv_jobs_keepalive();   // SSE comments to the followers of jobs (every 15 s)
    if (!shutting_down) return;
    int left = srv_http_inflight();
    if (left == 0) { uv_stop(&loop); return; }
    if (eng_now() - shutdown_started > cfg->shutdown_timeout_s) {
        log_warn("shutdown timeout (%d s): %d request(s) still in flight", cfg->shutdown_timeout_s, left);
        uv_stop(&loop);
    }
}

int srv_daemon_run(const srv_config *c) {
    cfg = c;
    char *err = NULL;
    signal(SIGPIPE, SIG_IGN);
    // Per-request buffers (image decode and resize, bodies, KV caches) come and
    // go in every size. glibc's default raises its mmap threshold to the
    // largest block freed so far (up to 32 MiB), after which such buffers live
    // in the per-thread heaps and stay resident once freed: RSS grew by
    // ~280 MB in a minute of tests/integration/test_random.sh. A fixed
    // threshold keeps large blocks mmapped, returned to the system on free.
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    srv_metrics_init();
    // Kernels follow the CPU found at run time (INFERD_CPU may lower the choice).
    if (eng_cpu_init(&err) != 0) {
        log_warn("%s", err);
        free(err);
        err = NULL;
    }
    char cpu_line[160];
    log_info("cpu kernels: %s; int8 weights: %s", eng_cpu_describe(cpu_line, sizeof cpu_line), eng_q8_isa_name(eng_q8_isa()));
    if (srv_files_init(c->data_dir, c->max_file_bytes, &err) != 0) {
        log_error("%s (HINT: --data-dir names a writable directory for uploads and jobs)", err);
        free(err);
        return 1;
    }
    srv_registry_init(c->models);
    srv_registry_set_prefill_chunk(c->prefill_chunk);
    srv_sched_set_runner(ENG_TASK_IMAGE_CLASSIFICATION, srv_run_classify_images);
    srv_sched_set_runner(ENG_TASK_TRANSLATION, srv_run_translate);
    srv_sched_set_runner(ENG_TASK_TEXT_CLASSIFICATION, srv_run_classify_text);
    srv_sched_set_runner(ENG_TASK_IMAGE_STYLIZATION, srv_run_stylize);
    srv_sched_set_runner(ENG_TASK_IMAGE_GENERATION, srv_run_generate_images);
    srv_sched_set_stepper(ENG_TASK_TEXT_GENERATION, srv_gen_step, srv_gen_abort);
    // One thread pool: with several workers, or a compute pool whose tasks
    // call OpenBLAS, OpenBLAS runs single-threaded (PERF-NOTES: OpenBLAS
    // threads and ours fight on 2 vCPUs).
    if (c->workers > 1 || c->compute_threads > 1) openblas_set_num_threads(1);
    eng_weights_pages wp = ENG_WEIGHTS_AUTO;
    (void)eng_weights_pages_parse(c->weights_pages, &wp);   // checked by the config
    eng_weights_pages_set(wp);
    if (eng_pool_start(c->compute_threads) != 0)
        log_warn("compute pool: no helper thread could be started; steps run on their worker's thread");
    if (srv_sched_start(c->workers) != 0) return 1;

    int n = srv_registry_load_all(c->load);
    log_info("%d model(s) loaded from %s", n, c->models);
    // training jobs after the models (a job may fine-tune one), before HTTP
    if (srv_jobs_start(c, &err) != 0) {
        log_error("training jobs: %s (HINT: --data-dir names a writable directory)", err);
        free(err);
        srv_sched_stop();
        srv_registry_free();
        return 1;
    }
    int port;
    if (srv_http_start(c, srv_api_routes, srv_api_n_routes, &port, &err) != 0) {
        log_error("%s", err);
        free(err);
        srv_jobs_stop();
        srv_sched_stop();
        srv_registry_free();
        return 1;
    }
    log_info("listening on http://%s:%d", c->host, port);
    log_info("inferd %s ready: %d worker(s), %d compute thread(s), %d HTTP thread(s)", INFERD_VERSION, c->workers,
             eng_pool_threads(), c->threads);
    srv_notify("READY=1");

    uv_loop_init(&loop);
    uv_signal_init(&loop, &sig_term);
    uv_signal_init(&loop, &sig_int);
    uv_signal_init(&loop, &sig_hup);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_hup, on_signal, SIGHUP);
    uv_timer_init(&loop, &ticker);
    uv_timer_start(&ticker, on_tick, 50, 50);
    uv_run(&loop, UV_RUN_DEFAULT);

    // drained (or timed out): stop training (running jobs resume at the next
    // start), answer what is left, then close everything
    srv_jobs_stop();
    srv_sched_stop();
    eng_pool_stop();
    for (int i = 0; i < 100 && srv_http_inflight() > 0; i++) uv_sleep(10);   // let resumed responses go out
    srv_http_stop();
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_hup, NULL);
    uv_close((uv_handle_t *)&ticker, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);   // runs the close callbacks
    int closed = uv_loop_close(&loop);
    srv_registry_free();
    srv_files_free();
    srv_metrics_free();
    log_info("stopped%s", closed == 0 ? "" : " (loop handles left open)");
    return 0;
}
