// test_gen.c — unit tests for the continuous batcher (server/gen.c) with a
// fake language model and no HTTP or worker threads: the test queues
// requests (srv_sched_submit) and calls srv_gen_step itself, so every step
// is deterministic. Covered: sequences joining and leaving at step
// boundaries, admission by the KV-cache budget (a request that does not fit
// waits for running ones to finish), max_tokens, cancellation of a request
// whose client hung up, running or still queued, and chunked prefill (the
// step's prefill_chunk budget shared fairly beside a decoding stream).
#include "server/gen.h"

#include <check.h>
#include <math.h>         // INFINITY
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>   // socketpair
#include <unistd.h>       // close
#include "engine/core/util.h"      // eng_now
#include "engine/text/tokenizer.h" // eng_tokenizer_chars_from_text
#include "server/metrics.h"        // srv_metrics_init

// ---------------------------------------------------------------- a fake language model
// Each sequence counts its tokens; every step predicts token 1 ("b") with
// certainty. KV bytes grow with the sequence's length, as a real cache does.
enum { FAKE_VOCAB = 4, FAKE_CONTEXT = 64, FAKE_KV_PER_TOKEN = 1024 };
typedef struct { int pos, max; } fake_seq;
static int widest_step;   // most sequences one step advanced together
// Chunked-prefill log: per step, the prompt tokens fed with each token id
// (the tests give each request's prompt its own id; generated tokens are 1)
// and the rows that decode (one token 1).
enum { LOG_STEPS = 256 };
static int log_on, n_logged, log_fed[LOG_STEPS][FAKE_VOCAB], log_decode[LOG_STEPS];

static size_t fake_seq_bytes(const eng_lm *m, int max_len) { return (size_t)max_len * FAKE_KV_PER_TOKEN; }
static eng_lm_seq *fake_seq_new(const eng_lm *m, int max_len) {
    fake_seq *s = calloc(1, sizeof *s);
    s->max = max_len;
    return (eng_lm_seq *)s;
}
static void fake_seq_free(eng_lm_seq *s) { free(s); }
static int fake_seq_pos(const eng_lm_seq *s) { return ((const fake_seq *)s)->pos; }
static void fake_step(const eng_lm *m, eng_tape *t, eng_lm_seq **seqs, const int *const *tokens, const int *n_tokens,
                      int n, float *logits) {
    if (n > widest_step) widest_step = n;
    if (log_on && n_logged < LOG_STEPS) {
        for (int i = 0; i < n; i++) {
            if (n_tokens[i] == 1 && tokens[i][0] == 1) log_decode[n_logged]++;
            else log_fed[n_logged][tokens[i][0]] += n_tokens[i];
        }
        n_logged++;
    }
    for (int i = 0; i < n; i++) {
        fake_seq *s = (fake_seq *)seqs[i];
        s->pos += n_tokens[i];
        ck_assert_int_le(s->pos, s->max);
        for (int v = 0; v < FAKE_VOCAB; v++) logits[i * FAKE_VOCAB + v] = v == 1 ? 10.0f : -INFINITY;
    }
}
static void fake_free(eng_lm *m) { (void)m; }
static eng_lm_info fake_info(const eng_lm *m) {
    return (eng_lm_info){.arch = "fake", .vocab_size = FAKE_VOCAB, .context_len = FAKE_CONTEXT, .n_params = 0};
}
static const eng_lm_ops fake_ops = {fake_seq_bytes, fake_seq_new, fake_seq_free, fake_seq_pos, fake_step, fake_free, fake_info};
static const eng_model_arch fake_arch = {.name = "fake", .task = ENG_TASK_TEXT_GENERATION, .lm = &fake_ops};
static int lm_token;   // what eng_model.lm points at (the fake keeps no weights)

// ---------------------------------------------------------------- the model, requests, a worker
static int n_done;
static void on_complete(srv_request *r) { n_done++; }

static srv_model *fake_model(size_t kv_bytes) {
    srv_model *m = calloc(1, sizeof *m);
    snprintf(m->id, sizeof m->id, "fake-lm");
    m->m = calloc(1, sizeof *m->m);
    m->m->arch = &fake_arch;
    m->m->task = ENG_TASK_TEXT_GENERATION;
    m->m->lm = (eng_lm *)&lm_token;
    char *err = NULL;
    ck_assert_int_eq(eng_tokenizer_chars_from_text(&m->m->tok, "abcd", 4, &err), 0);
    m->max_batch_size = 4;
    m->max_queue_size = 16;
    m->timeout_ms = 60000;
    m->kv_cache_bytes = kv_bytes;
    atomic_init(&m->refs, 1);
    return m;
}

// A non-streamed greedy request for max_tokens after n_prompt copies of token `tok`.
static srv_request *gen_request_prompt(srv_model *m, int max_tokens, int fd, int n_prompt, int tok) {
    srv_request *r = calloc(1, sizeof *r);
    atomic_init(&r->refs, 1);
    r->client_fd = fd;
    r->complete = on_complete;
    r->n_items = 1;
    r->deadline = eng_now() + 60;
    srv_model_ref(m);
    r->model = m;
    srv_gen_req *q = calloc(1, sizeof *q);
    q->prompt = malloc((size_t)n_prompt * sizeof(int));
    for (int i = 0; i < n_prompt; i++) q->prompt[i] = tok;
    q->n_prompt = n_prompt;
    q->prompt_text = strdup("a");   // (only echo reads it)
    q->prompt_text_len = 1;
    q->max_tokens = max_tokens;
    q->sampler.temperature = 0;
    q->sampler.top_p = 1;
    q->n = 1;
    q->logprobs = -1;
    r->task = q;
    r->task_free = srv_gen_req_free;
    ck_assert_int_eq(srv_sched_submit(r), SRV_OK);
    return r;
}

// ... after the one-token prompt "a".
static srv_request *gen_request(srv_model *m, int max_tokens, int fd) { return gen_request_prompt(m, max_tokens, fd, 1, 0); }

static void worker_init(srv_worker *w) {
    memset(w, 0, sizeof *w);
    eng_tape_init(&w->tape, 0, 0);
}

static void worker_free(srv_worker *w) {
    eng_tape_free(&w->tape);
    free(w->buf);
    free(w->out);
}

// ---------------------------------------------------------------- tests
START_TEST(test_join_and_finish) {
    srv_metrics_init();
    srv_model *m = fake_model(1 << 20);   // room for everything
    srv_worker w;
    worker_init(&w);
    srv_request *a = gen_request(m, 3, -1), *b = gen_request(m, 2, -1);
    ck_assert_int_eq(srv_gen_step(&w, m), 2);   // both admitted, both prefilled in one step
    ck_assert_int_eq(widest_step, 2);
    ck_assert_int_eq(srv_gen_step(&w, m), 1);   // b has its 2 tokens: done, a runs on
    ck_assert_int_eq(n_done, 1);
    ck_assert_int_eq(b->status, 200);
    ck_assert_ptr_nonnull(strstr(b->resp_body, "\"text\":\"bb\""));
    ck_assert_int_eq(srv_gen_step(&w, m), 0);
    ck_assert_int_eq(n_done, 2);
    ck_assert_ptr_nonnull(strstr(a->resp_body, "\"text\":\"bbb\""));
    ck_assert_ptr_nonnull(strstr(a->resp_body, "\"finish_reason\":\"length\""));
    srv_request_unref(a);
    srv_request_unref(b);
    worker_free(&w);
    srv_model_unref(m);
}
END_TEST

START_TEST(test_kv_budget_admission) {
    srv_metrics_init();
    // each request needs (1 prompt + 3 new) tokens * 1 KiB = 4 KiB; the budget holds one
    srv_model *m = fake_model(6 * 1024);
    srv_worker w;
    worker_init(&w);
    srv_request *a = gen_request(m, 3, -1), *b = gen_request(m, 3, -1);
    ck_assert_int_eq(srv_gen_step(&w, m), 2);   // a runs; b waits (counted as pending)
    ck_assert_int_eq(widest_step, 1);
    ck_assert_int_eq(srv_gen_step(&w, m), 2);
    ck_assert_int_eq(srv_gen_step(&w, m), 1);   // a finished: its budget is free
    ck_assert_int_eq(n_done, 1);
    ck_assert_int_eq(a->status, 200);
    ck_assert_int_eq(b->status, 0);             // not answered yet
    ck_assert_int_eq(srv_gen_step(&w, m), 1);   // b admitted at this step boundary
    ck_assert_int_eq(srv_gen_step(&w, m), 1);
    ck_assert_int_eq(srv_gen_step(&w, m), 0);
    ck_assert_int_eq(n_done, 2);
    ck_assert_int_eq(b->status, 200);
    ck_assert_int_eq(widest_step, 1);           // never both at once
    srv_request_unref(a);
    srv_request_unref(b);
    worker_free(&w);
    srv_model_unref(m);
}
END_TEST

START_TEST(test_cancel_gone_client) {
    srv_metrics_init();
    srv_model *m = fake_model(1 << 20);
    srv_worker w;
    worker_init(&w);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    srv_request *a = gen_request(m, 10, sv[0]), *b = gen_request(m, 10, -1);
    ck_assert_int_eq(srv_gen_step(&w, m), 2);
    close(sv[1]);                               // a's client hangs up mid-generation
    ck_assert_int_eq(srv_gen_step(&w, m), 1);   // a is cancelled at the next step, b goes on
    ck_assert_int_eq(n_done, 1);
    ck_assert_int_eq(a->status, 499);
    while (srv_gen_step(&w, m) > 0) {}
    ck_assert_int_eq(n_done, 2);
    ck_assert_int_eq(b->status, 200);
    close(sv[0]);
    srv_request_unref(a);
    srv_request_unref(b);
    worker_free(&w);
    srv_model_unref(m);
}
END_TEST

START_TEST(test_gone_before_admission) {
    srv_metrics_init();
    srv_model *m = fake_model(1 << 20);
    srv_worker w;
    worker_init(&w);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    srv_request *a = gen_request(m, 3, sv[0]);
    close(sv[1]);                               // gone while queued, before any step
    ck_assert_int_eq(srv_gen_step(&w, m), 0);   // taken, answered, nothing left running or waiting
    ck_assert_int_eq(n_done, 1);
    ck_assert_int_eq(a->status, 499);
    ck_assert_int_eq(srv_gen_step(&w, m), 0);   // and nothing stale is admitted later
    ck_assert_int_eq(n_done, 1);
    ck_assert_int_eq(atomic_load(&a->refs), 1); // only the test's (the HTTP layer's) reference is left
    srv_request *b = gen_request(m, 2, -1);
    while (srv_gen_step(&w, m) > 0) {}
    ck_assert_int_eq(b->status, 200);
    close(sv[0]);
    srv_request_unref(a);
    srv_request_unref(b);
    worker_free(&w);
    srv_model_unref(m);
}
END_TEST

// prefill_chunk 10: a stream decodes (one token every step, never skipped)
// while three prompts arrive (30 tokens of id 2, 30 of id 3, 5 of id 0):
// each step feeds them 10 prompt tokens in all, split evenly (the two long
// ones never more than 1 apart), the short one is done in two steps, the two
// long ones finish their prefill together, and each one's first token comes
// only after its whole prompt.
START_TEST(test_chunked_prefill) {
    srv_metrics_init();
    srv_model *m = fake_model(1 << 20);
    m->prefill_chunk = 10;
    srv_worker w;
    worker_init(&w);
    srv_request *a = gen_request(m, 30, -1);
    ck_assert_int_eq(srv_gen_step(&w, m), 1);   // a: prompt and first token
    srv_request *b = gen_request_prompt(m, 2, -1, 30, 2), *c = gen_request_prompt(m, 2, -1, 30, 3);
    srv_request *d = gen_request_prompt(m, 2, -1, 5, 0);
    log_on = 1;
    n_logged = 0;
    memset(log_fed, 0, sizeof log_fed);
    memset(log_decode, 0, sizeof log_decode);
    int steps = 0, b_done = -1, c_done = -1, d_done = -1;
    while (srv_gen_step(&w, m) > 0) {
        steps++;
        if (b_done < 0 && b->status) b_done = steps;
        if (c_done < 0 && c->status) c_done = steps;
        if (d_done < 0 && d->status) d_done = steps;
    }
    log_on = 0;
    int fed_b = 0, fed_c = 0, fed_d = 0, last_prefill = 0;
    for (int st = 0; st < n_logged; st++) {
        int fb = log_fed[st][2], fc = log_fed[st][3], fd = log_fed[st][0];
        fed_b += fb; fed_c += fc; fed_d += fd;
        ck_assert_int_le(fb + fc + fd, 10);                        // the step's prefill budget
        if (fed_b < 30 || fed_c < 30 || fed_d < 5) ck_assert_int_eq(fb + fc + fd, 10);   // all of it used
        if (fb + fc + fd) last_prefill = st;
        if (fed_b < 30 && fed_c < 30) ck_assert_int_le(abs(fb - fc), 1);   // shared evenly
        if (st < 29) ck_assert_int_ge(log_decode[st], 1);          // a advances every step
    }
    ck_assert_int_eq(fed_b, 30);
    ck_assert_int_eq(fed_c, 30);
    ck_assert_int_eq(fed_d, 5);
    ck_assert_int_eq(last_prefill, 6);   // 65 tokens at 10 per step: steps 0..6
    // d (5 tokens) prefilled in two steps, then 2 tokens: answered at step 3 or 4;
    // b and c prefilled by step 7 (1-based), then a second token
    ck_assert_int_le(d_done, 4);
    ck_assert_int_le(abs(b_done - c_done), 1);
    ck_assert_int_eq(b->status, 200);
    ck_assert_ptr_nonnull(strstr(b->resp_body, "\"text\":\"bb\""));
    ck_assert_ptr_nonnull(strstr(b->resp_body, "\"prompt_tokens\":30"));
    ck_assert_int_eq(a->status, 200);
    ck_assert_ptr_nonnull(strstr(a->resp_body, "\"completion_tokens\":30"));
    srv_request_unref(a);
    srv_request_unref(b);
    srv_request_unref(c);
    srv_request_unref(d);
    worker_free(&w);
    srv_model_unref(m);
}
END_TEST

// prefill_chunk 1 and two 7-token prompts: one prompt token per step in all,
// the prompts taking turns; 0 (no limit): both whole in the first step.
START_TEST(test_prefill_chunk_turns) {
    srv_metrics_init();
    for (int chunk = 1; chunk >= 0; chunk--) {
        srv_model *m = fake_model(1 << 20);
        m->prefill_chunk = chunk;
        srv_worker w;
        worker_init(&w);
        srv_request *b = gen_request_prompt(m, 1, -1, 7, 2), *c = gen_request_prompt(m, 1, -1, 7, 3);
        log_on = 1;
        n_logged = 0;
        memset(log_fed, 0, sizeof log_fed);
        memset(log_decode, 0, sizeof log_decode);
        while (srv_gen_step(&w, m) > 0) {}
        log_on = 0;
        ck_assert_int_eq(n_logged, chunk ? 14 : 1);
        for (int st = 0; st < n_logged; st++) {
            ck_assert_int_eq(log_fed[st][2] + log_fed[st][3], chunk ? 1 : 14);
            if (chunk && st > 0) ck_assert_int_ne(log_fed[st][2], log_fed[st - 1][2]);   // turns
        }
        ck_assert_int_eq(b->status, 200);
        ck_assert_int_eq(c->status, 200);
        srv_request_unref(b);
        srv_request_unref(c);
        worker_free(&w);
        srv_model_unref(m);
    }
}
END_TEST

static Suite *gen_suite(void) {
    Suite *s = suite_create("gen");
    TCase *tc = tcase_create("continuous batching");
    tcase_add_test(tc, test_join_and_finish);
    tcase_add_test(tc, test_kv_budget_admission);
    tcase_add_test(tc, test_cancel_gone_client);
    tcase_add_test(tc, test_gone_before_admission);
    tcase_add_test(tc, test_chunked_prefill);
    tcase_add_test(tc, test_prefill_chunk_turns);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(gen_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
