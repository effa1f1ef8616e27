// test_sched.c — unit tests for server/sched.c with a fake batch runner and
// no HTTP: batch assembly (whole requests up to max_batch_size items, held
// until full or the queue delay), deadlines (504 before any compute),
// clients that went away (socket closed: dropped before compute, whether
// the sweeper or the worker notices), and a full queue (503 at submit).
// Requests complete through their `complete` hook, as the HTTP layer's do.
#include "server/sched.h"

#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>   // socketpair
#include <unistd.h>       // close, usleep
#include "engine/core/util.h"   // eng_now
#include "server/metrics.h"     // srv_metrics_init

// ---------------------------------------------------------------- a fake runner and front end
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static int batches[64];     // items of each batch the runner saw, in order
static int n_batches;
static int n_done;          // requests completed

static void fake_run(srv_worker *w, srv_model *m, srv_request **reqs, int n) {
    int items = 0;
    for (int i = 0; i < n; i++) {
        items += reqs[i]->n_items;
        srv_request_json(reqs[i], 200, strdup("{}"));
    }
    pthread_mutex_lock(&mu);
    if (n_batches < 64) batches[n_batches++] = items;
    pthread_mutex_unlock(&mu);
}

static void on_complete(srv_request *r) {
    pthread_mutex_lock(&mu);
    n_done++;
    pthread_cond_broadcast(&done_cv);
    pthread_mutex_unlock(&mu);
}

// Waits until `n` requests completed (at most 5 s); returns how many did.
static int wait_done(int n) {
    double until = eng_now() + 5;
    pthread_mutex_lock(&mu);
    while (n_done < n && eng_now() < until) {
        pthread_mutex_unlock(&mu);
        usleep(1000);
        pthread_mutex_lock(&mu);
    }
    int got = n_done;
    pthread_mutex_unlock(&mu);
    return got;
}

static int batches_run(void) {
    pthread_mutex_lock(&mu);
    int n = n_batches;
    pthread_mutex_unlock(&mu);
    return n;
}

// A model with batching settings and no weights (the fake runner needs none).
static srv_model *fake_model(int max_batch, int delay_us, int max_queue, int timeout_ms) {
    srv_model *m = calloc(1, sizeof *m);
    snprintf(m->id, sizeof m->id, "fake");
    m->m = calloc(1, sizeof *m->m);
    m->m->task = ENG_TASK_IMAGE_CLASSIFICATION;
    m->max_batch_size = max_batch;
    m->max_queue_delay_us = delay_us;
    m->max_queue_size = max_queue;
    m->timeout_ms = timeout_ms;
    atomic_init(&m->refs, 1);   // the test's reference
    return m;
}

// A request of n_items on m; the test keeps one reference (the HTTP layer's).
static srv_request *fake_request(srv_model *m, int n_items, int fd) {
    srv_request *r = calloc(1, sizeof *r);
    atomic_init(&r->refs, 1);
    r->client_fd = fd;
    r->complete = on_complete;
    r->n_items = n_items;
    r->t_start = eng_now();
    r->deadline = r->t_start + m->timeout_ms / 1000.0;
    srv_model_ref(m);
    r->model = m;
    return r;
}

static void setup(void) {
    srv_metrics_init();
    srv_sched_set_runner(ENG_TASK_IMAGE_CLASSIFICATION, fake_run);
    ck_assert_int_eq(srv_sched_start(1), 0);
}

// ---------------------------------------------------------------- tests
START_TEST(test_batch_assembly) {
    setup();
    srv_model *m = fake_model(4, 10 * 1000 * 1000, 100, 60000);   // the delay never expires here
    srv_request *r[6];
    for (int i = 0; i < 3; i++) ck_assert_int_eq(srv_sched_submit(r[i] = fake_request(m, 1, -1)), SRV_OK);
    usleep(50000);
    ck_assert_int_eq(batches_run(), 0);   // 3 of 4 items and the delay not over: held
    ck_assert_int_eq(atomic_load(&m->queue_depth), 3);
    ck_assert_int_eq(srv_sched_submit(r[3] = fake_request(m, 1, -1)), SRV_OK);
    ck_assert_int_eq(wait_done(4), 4);    // full: one batch of 4
    // a request is never split: 3 + 2 items do not fit in 4, so the 3 go alone
    ck_assert_int_eq(srv_sched_submit(r[4] = fake_request(m, 3, -1)), SRV_OK);
    ck_assert_int_eq(srv_sched_submit(r[5] = fake_request(m, 2, -1)), SRV_OK);
    ck_assert_int_eq(wait_done(5), 5);
    usleep(50000);
    ck_assert_int_eq(n_done, 5);          // the 2 items wait for a fuller batch
    srv_sched_set_draining(1);            // drain: batches close at once
    ck_assert_int_eq(wait_done(6), 6);
    srv_sched_stop();
    ck_assert_int_eq(n_batches, 3);
    ck_assert_int_eq(batches[0], 4);
    ck_assert_int_eq(batches[1], 3);
    ck_assert_int_eq(batches[2], 2);
    for (int i = 0; i < 6; i++) { ck_assert_int_eq(r[i]->status, 200); srv_request_unref(r[i]); }
    ck_assert_int_eq(atomic_load(&m->queue_depth), 0);
    srv_model_unref(m);
}
END_TEST

START_TEST(test_deadline_before_compute) {
    setup();
    srv_model *m = fake_model(8, 10 * 1000 * 1000, 100, 60000);
    srv_request *r = fake_request(m, 1, -1);
    r->deadline = eng_now() + 0.05;       // expires long before the batch would close
    ck_assert_int_eq(srv_sched_submit(r), SRV_OK);
    ck_assert_int_eq(wait_done(1), 1);    // the worker wakes at the deadline, not the delay
    ck_assert_int_eq(r->status, 504);
    ck_assert_int_eq(batches_run(), 0);   // no compute spent on it
    ck_assert_int_eq(atomic_load(&m->queue_depth), 0);
    srv_sched_stop();
    srv_request_unref(r);
    srv_model_unref(m);
}
END_TEST

START_TEST(test_client_gone_while_queued) {
    setup();
    srv_model *m = fake_model(8, 10 * 1000 * 1000, 100, 60000);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    srv_request *r = fake_request(m, 1, sv[0]);
    ck_assert_int_eq(srv_sched_submit(r), SRV_OK);
    srv_sched_sweep();                    // client still there: nothing happens
    ck_assert_int_eq(n_done, 0);
    close(sv[1]);                         // the client hangs up
    srv_sched_sweep();                    // the peek (outside the lock) notices, the sweep answers
    ck_assert_int_eq(wait_done(1), 1);
    ck_assert_int_eq(r->status, 499);
    ck_assert_int_eq(batches_run(), 0);
    srv_sched_stop();
    close(sv[0]);
    srv_request_unref(r);
    srv_model_unref(m);
}
END_TEST

START_TEST(test_client_gone_at_batch) {
    setup();
    srv_model *m = fake_model(2, 10 * 1000 * 1000, 100, 60000);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);                         // gone before any sweep ran
    srv_request *gone = fake_request(m, 1, sv[0]), *live = fake_request(m, 1, -1);
    ck_assert_int_eq(srv_sched_submit(gone), SRV_OK);
    ck_assert_int_eq(srv_sched_submit(live), SRV_OK);   // full: the worker takes both
    ck_assert_int_eq(wait_done(2), 2);
    srv_sched_stop();
    ck_assert_int_eq(gone->status, 499);  // dropped from the batch before compute
    ck_assert_int_eq(live->status, 200);
    ck_assert_int_eq(n_batches, 1);
    ck_assert_int_eq(batches[0], 1);      // only the live request was computed
    close(sv[0]);
    srv_request_unref(gone);
    srv_request_unref(live);
    srv_model_unref(m);
}
END_TEST

START_TEST(test_queue_full) {
    setup();
    srv_model *m = fake_model(8, 10 * 1000 * 1000, 3, 60000);
    srv_request *a = fake_request(m, 2, -1), *b = fake_request(m, 2, -1), *c = fake_request(m, 1, -1);
    ck_assert_int_eq(srv_sched_submit(a), SRV_OK);
    ck_assert_int_eq(srv_sched_submit(b), SRV_E_QUEUE_FULL);   // 2 + 2 > 3 items
    ck_assert_int_eq(srv_sched_submit(c), SRV_OK);             // 2 + 1 fits
    ck_assert_int_eq(srv_sched_queued(), 3);
    srv_sched_stop();                     // stopping answers what is queued 503
    ck_assert_int_eq(wait_done(2), 2);
    ck_assert_int_eq(a->status, 503);
    ck_assert_int_eq(c->status, 503);
    ck_assert_int_eq(srv_sched_submit(b), SRV_E_UNAVAILABLE);  // stopped: refused
    ck_assert_int_eq(batches_run(), 0);
    srv_request_unref(a); srv_request_unref(b); srv_request_unref(c);
    srv_model_unref(m);
}
END_TEST

static Suite *sched_suite(void) {
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("batching");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_batch_assembly);
    tcase_add_test(tc, test_deadline_before_compute);
    tcase_add_test(tc, test_client_gone_while_queued);
    tcase_add_test(tc, test_client_gone_at_batch);
    tcase_add_test(tc, test_queue_full);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(sched_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
