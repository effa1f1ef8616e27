// bench_engine.c — throughput of a model's classify_images entry point (the
// call a server worker makes per batch), for several batch sizes and
// OpenBLAS thread counts. Prints one line per configuration; asserts nothing.
// Built and run by tests/bench/run.sh.
//
// Inputs: with --data DIR (an MNIST-style dataset whose images match the
// model's input) the first 256 test images, normalised as the model's config
// says; otherwise fixed-seed uniform noise in the same value range. Each
// call takes the next batch from that pool of 256 images (see POOL_IMAGES).
//
//   bench_engine [--data DIR] [--seconds S] [--batches 1,16,256] [--threads 1,2] [--workers2] MODEL_DIR
//       For each thread count T and batch size B: openblas_set_num_threads(T),
//       warm up, then call classify_images for ~S seconds (default 2) split
//       into 5 rounds, and print
//         engine threads=T batch=B img_s=<median round> ms_batch=<median round> best_img_s=<best round> calls=N
//       --workers2 adds "threads=2x1": two threads each with its own tape and
//       OpenBLAS single-threaded, each running batches of B (how the daemon
//       uses 2 cores with workers = 2); img_s counts both.
//       --plain times the serving path as it was before batch-norm folding and
//       batched convolutions (softmax of eng_cnn_forward: batch norm as its own
//       layer, one GEMM per image per conv; still the training forward) and
//       prints "engine-plain ..." lines, to set beside the default ones.
//       --compare alternates the two round by round in each configuration
//       (so both see the same machine load) and prints both lines, each with
//       cpu_us_img: the process CPU time per image (median round), which other
//       programs on a shared machine disturb less than the wall clock.
//   bench_engine --layers [--data DIR] [--seconds S] [--batches ..] MODEL_DIR   (CNN models)
//       Single-threaded per-layer breakdown: runs the CNN's layers one by one
//       through the same tape calls as eng_cnn_forward (engine/arch/cnn.c) and
//       prints, per batch size, each layer's share of the forward time:
//         layer batch=B idx=I type=T us_per_img=.. share=..%
//   bench_engine --dump PREFIX [--data DIR] [--batches B] MODEL_DIR
//       Writes the first B (default 16) inputs to PREFIX.in.f32 ([B,C,H,W]
//       float32 little-endian) and inferd's probabilities for them to
//       PREFIX.probs.f32 ([B,n_labels]), single-threaded, so another
//       implementation (tests/bench/bench_torch.py) can check that it
//       computes the same thing. Prints "dump B=.. C=.. H=.. W=.. labels=..".
//
// Build (run.sh does this): cc $(CFLAGS as in the Makefile) -o bench_engine
//   tests/bench/bench_engine.c build/engine/*/*.o $(LDLIBS)
#include <pthread.h>   // pthread_create, pthread_barrier_t
#include <stdio.h>     // printf, fprintf, fopen
#include <stdlib.h>    // malloc, free, strtod, qsort
#include <string.h>    // strcmp, strchr
#include <time.h>      // clock_gettime (CPU time)

#include "engine/arch/cnn.h"     // eng_cnn (per-layer breakdown)
#include "engine/io/idx.h"     // eng_idx_load (--data)
#include "engine/arch/model.h"   // eng_model_load, classify_images
#include "engine/core/tape.h"    // eng_tape
#include "engine/core/util.h"    // eng_now

// Declared here in case this cblas.h does not (OpenBLAS-specific).
void openblas_set_num_threads(int num_threads);

enum { MAX_LIST = 16, ROUNDS = 5 };

// Deterministic inputs in the range of normalised Fashion-MNIST pixels
// ((0 - 0.286) / 0.353 = -0.81 .. (1 - 0.286) / 0.353 = 2.02).
static void fill_random(float *x, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        float u = (float)((seed >> 8) & 0xffffff) / 16777216.0f;   // [0, 1)
        x[i] = -0.81f + 2.83f * u;
    }
}

// Inputs come from a pool of POOL_IMAGES distinct images (or one batch, if
// larger) and each call takes the next B of them: timing one input over and
// over lets the branch predictor learn its data (max pooling ran 3x faster
// per image at batch 1 than at batch 16 that way), which no server sees.
enum { POOL_IMAGES = 256 };

static float *g_images;      // [g_n_images, C*H*W] real, normalised images, or NULL
static int g_n_images;

// Loads the first POOL_IMAGES test images of an MNIST-style dataset directory.
static int load_images(const eng_model *m, const char *dir)
{
    const char *names[] = {"t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte", "train-images-idx3-ubyte.gz"};
    eng_idx idx;
    char path[4096], *err = NULL;
    int ok = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !ok; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        fclose(f);
        if (eng_idx_load(&idx, path, &err) != 0) { fprintf(stderr, "bench_engine: %s\n", err); free(err); return -1; }
        ok = 1;
    }
    if (!ok) { fprintf(stderr, "bench_engine: no IDX images in %s\n", dir); return -1; }
    if (idx.ndim != 3 || m->prep.channels != 1 || idx.dims[1] != m->prep.height || idx.dims[2] != m->prep.width) {
        fprintf(stderr, "bench_engine: %s does not match the model's input\n", path);
        eng_idx_free(&idx);
        return -1;
    }
    size_t hw = (size_t)idx.dims[1] * (size_t)idx.dims[2];
    g_n_images = idx.dims[0] < POOL_IMAGES ? idx.dims[0] : POOL_IMAGES;
    g_images = malloc((size_t)g_n_images * hw * sizeof(float));
    for (size_t i = 0; i < (size_t)g_n_images * hw; i++)
        g_images[i] = ((float)idx.data[i] / 255.0f - m->prep.mean[0]) / m->prep.std[0];
    eng_idx_free(&idx);
    return 0;
}

// n images starting at pool image `first` (wrapping), real or random.
static void fill_inputs(float *x, size_t n, size_t per_image, unsigned first)
{
    if (!g_images) { fill_random(x, n * per_image, 12345u + first); return; }
    for (size_t i = 0; i < n; i++)
        memcpy(x + i * per_image, g_images + ((first + i) % (size_t)g_n_images) * per_image,
               per_image * sizeof(float));
}

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 65536) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    eng_model *m;
    int B;
    int n_batches, next;   // batches in the pool, the one to run next
    size_t in;             // floats per image
    float *x, *probs;      // x: [n_batches * B] images
    eng_tape tape;
} runner;

// `first`: the pool image the runner starts at (workers start at different ones).
static void runner_init(runner *r, eng_model *m, int B, unsigned first)
{
    r->in = eng_model_input_size(m);
    r->m = m;
    r->B = B;
    r->n_batches = B >= POOL_IMAGES ? 1 : POOL_IMAGES / B;
    r->next = 0;
    r->x = malloc((size_t)r->n_batches * (size_t)B * r->in * sizeof(float));
    r->probs = malloc((size_t)B * (size_t)m->n_labels * sizeof(float));
    fill_inputs(r->x, (size_t)r->n_batches * (size_t)B, r->in, first);
    eng_tape_init(&r->tape, 0, 0);
}

static void runner_free(runner *r)
{
    eng_tape_free(&r->tape);
    free(r->x);
    free(r->probs);
}

// The next batch of inputs in the pool.
static inline float *runner_batch(runner *r)
{
    float *x = r->x + (size_t)r->next * (size_t)r->B * r->in;
    if (++r->next == r->n_batches) r->next = 0;
    return x;
}

static int g_plain;   // --plain: the unfolded, per-image path (--compare: toggled per round)

static inline void runner_call(runner *r)
{
    if (g_plain) {
        eng_cnn *c = r->m->impl;
        eng_tape_reset(&r->tape);
        eng_var *in = eng_tape_wrap(&r->tape, runner_batch(r), 4, (int[]){r->B, c->in_c, c->in_h, c->in_w});
        eng_var *p = eng_t_softmax(&r->tape, eng_cnn_forward(c, &r->tape, in));
        memcpy(r->probs, p->val, (size_t)r->B * (size_t)c->n_classes * sizeof(float));
        return;
    }
    r->m->arch->classify_images(r->m, &r->tape, runner_batch(r), r->B, r->probs);
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// One round of ~seconds: batches/s; adds the calls to *total; *cpu (when
// not NULL) = CPU seconds per batch.
static double time_round(runner *r, double seconds, long *total, double *cpu)
{
    long calls = 0;
    double t0 = eng_now(), c0 = cpu_now(), t;
    do {
        runner_call(r);
        calls++;
        t = eng_now() - t0;
    } while (t < seconds);
    *total += calls;
    if (cpu) *cpu = (cpu_now() - c0) / (double)calls;
    return (double)calls / t;
}

// Runs r for ~seconds/ROUNDS per round; fills rate[ROUNDS] with batches/s.
static long time_rounds(runner *r, double seconds, double *rate)
{
    long total = 0;
    for (int k = 0; k < ROUNDS; k++) rate[k] = time_round(r, seconds / ROUNDS, &total, NULL);
    return total;
}

// --compare: the serving path and the plain one in alternate rounds (cpu:
// CPU seconds per batch of each round).
static void time_compare(runner *r, double seconds, double *rate, long *calls, double *cpu, double *rate_plain,
                         long *calls_plain, double *cpu_plain)
{
    *calls = *calls_plain = 0;
    for (int k = 0; k < ROUNDS; k++) {
        g_plain = 0;
        rate[k] = time_round(r, seconds / ROUNDS, calls, &cpu[k]);
        g_plain = 1;
        rate_plain[k] = time_round(r, seconds / ROUNDS, calls_plain, &cpu_plain[k]);
    }
}

static void warm_up(runner *r, double seconds)
{
    double t0 = eng_now();
    int n = 0;
    do { runner_call(r); n++; } while (n < 3 || eng_now() - t0 < seconds);
}

// cpu: CPU seconds per batch of each round, or NULL.
static void report(const char *threads, int B, double *rate, long calls, int streams, double *cpu)
{
    double best = 0;
    for (int k = 0; k < ROUNDS; k++) if (rate[k] > best) best = rate[k];
    qsort(rate, ROUNDS, sizeof *rate, cmp_double);
    double med = rate[ROUNDS / 2];   // batches/s (per stream)
    printf("%s threads=%s batch=%d img_s=%.1f ms_batch=%.4f best_img_s=%.1f calls=%ld",
           g_plain ? "engine-plain" : "engine", threads, B, med * B * streams, 1000.0 / med, best * B * streams, calls);
    if (cpu) {
        qsort(cpu, ROUNDS, sizeof *cpu, cmp_double);
        printf(" cpu_us_img=%.2f", 1e6 * cpu[ROUNDS / 2] / B);
    }
    printf("\n");
    fflush(stdout);
}

// ---- two workers, one BLAS thread each
typedef struct {
    runner r;
    double seconds;
    double rate[ROUNDS];
    long calls;
    pthread_barrier_t *bar;
} worker_arg;

static void *worker_main(void *p)
{
    worker_arg *w = p;
    warm_up(&w->r, 0.2);
    pthread_barrier_wait(w->bar);
    w->calls = time_rounds(&w->r, w->seconds, w->rate);
    return NULL;
}

static void bench_two_workers(eng_model *m, int B, double seconds)
{
    openblas_set_num_threads(1);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    worker_arg w[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        memset(&w[i], 0, sizeof w[i]);
        runner_init(&w[i].r, m, B, (unsigned)i * POOL_IMAGES / 2);
        w[i].seconds = seconds;
        w[i].bar = &bar;
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    // the rounds of the two workers overlap closely; sum them round by round
    double rate[ROUNDS];
    for (int k = 0; k < ROUNDS; k++) rate[k] = (w[0].rate[k] + w[1].rate[k]) / 2;
    report("2x1", B, rate, w[0].calls + w[1].calls, 2, NULL);
    for (int i = 0; i < 2; i++) runner_free(&w[i].r);
    pthread_barrier_destroy(&bar);
}

static int write_floats(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof(float), n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "bench_engine: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static int dump(eng_model *m, const char *prefix, int B)
{
    openblas_set_num_threads(1);
    runner r;
    runner_init(&r, m, B, 0);
    runner_call(&r);   // the first batch of the pool: r.x
    char path[4096];
    snprintf(path, sizeof path, "%s.in.f32", prefix);
    int rc = write_floats(path, r.x, (size_t)B * eng_model_input_size(m));
    snprintf(path, sizeof path, "%s.probs.f32", prefix);
    if (rc == 0) rc = write_floats(path, r.probs, (size_t)B * (size_t)m->n_labels);
    if (rc == 0)
        printf("dump B=%d C=%d H=%d W=%d labels=%d\n", B, m->prep.channels, m->prep.height, m->prep.width,
               m->n_labels);
    runner_free(&r);
    return rc;
}

// ---- per-layer breakdown (the layer loop of eng_cnn_forward, timed)
static const char *const layer_type_names[] = {
    [ENG_CNN_CONV2D] = "conv2d", [ENG_CNN_BATCHNORM] = "batchnorm", [ENG_CNN_RELU] = "relu",
    [ENG_CNN_GELU] = "gelu", [ENG_CNN_TANH] = "tanh", [ENG_CNN_SIGMOID] = "sigmoid",
    [ENG_CNN_MAXPOOL2D] = "maxpool2d", [ENG_CNN_AVGPOOL2D] = "avgpool2d",
    [ENG_CNN_GLOBAL_AVGPOOL] = "global_avgpool", [ENG_CNN_FLATTEN] = "flatten", [ENG_CNN_LINEAR] = "linear",
};

static eng_var *run_layer(eng_cnn_layer *L, eng_tape *t, eng_var *x)
{
    switch (L->type) {
    case ENG_CNN_CONV2D:    return eng_t_conv2d(t, x, &L->w, &L->b, L->stride, L->pad);
    case ENG_CNN_BATCHNORM: return eng_t_batchnorm(t, x, &L->w, &L->b, L->running_mean, L->running_var,
                                                   L->momentum, L->eps);
    case ENG_CNN_RELU:      return eng_t_relu(t, x);
    case ENG_CNN_GELU:      return eng_t_gelu(t, x);
    case ENG_CNN_TANH:      return eng_t_tanh(t, x);
    case ENG_CNN_SIGMOID:   return eng_t_sigmoid(t, x);
    case ENG_CNN_MAXPOOL2D: return eng_t_maxpool2d(t, x, L->kernel, L->stride);
    case ENG_CNN_AVGPOOL2D: return eng_t_avgpool2d(t, x, L->kernel, L->stride);
    case ENG_CNN_GLOBAL_AVGPOOL: return eng_t_global_avgpool(t, x);
    case ENG_CNN_FLATTEN:   return eng_t_flatten(t, x);
    case ENG_CNN_LINEAR:    return eng_t_linear(t, x, &L->w, &L->b);
    case ENG_CNN__COUNT:    break;
    }
    return x;
}

static int layer_breakdown(eng_model *m, const int *batches, int n_batches, double seconds)
{
    if (strcmp(m->arch->name, "cnn") != 0) { fprintf(stderr, "bench_engine: --layers needs a cnn model\n"); return 1; }
    eng_cnn *c = m->impl;
    openblas_set_num_threads(1);
    double *acc = calloc((size_t)c->n_layers + 1, sizeof(double));
    for (int bi = 0; bi < n_batches; bi++) {
        int B = batches[bi];
        runner r;
        runner_init(&r, m, B, 0);
        warm_up(&r, 0.2);
        memset(acc, 0, ((size_t)c->n_layers + 1) * sizeof(double));
        long calls = 0;
        double t0 = eng_now();
        do {
            eng_tape_reset(&r.tape);
            eng_var *x = eng_tape_wrap(&r.tape, runner_batch(&r), 4, (int[]){B, c->in_c, c->in_h, c->in_w});
            for (int i = 0; i < c->n_layers; i++) {
                double a = eng_now();
                x = run_layer(&c->layers[i], &r.tape, x);
                acc[i] += eng_now() - a;
            }
            double a = eng_now();
            eng_t_softmax(&r.tape, x);
            acc[c->n_layers] += eng_now() - a;
            calls++;
        } while (eng_now() - t0 < seconds);
        double total = 0;
        for (int i = 0; i <= c->n_layers; i++) total += acc[i];
        printf("layers batch=%d us_per_img=%.2f calls=%ld\n", B, 1e6 * total / ((double)calls * B), calls);
        for (int i = 0; i <= c->n_layers; i++) {
            const char *name = i < c->n_layers ? layer_type_names[c->layers[i].type] : "softmax";
            printf("layer batch=%d idx=%d type=%s us_per_img=%.2f share=%.1f%%\n", B, i, name,
                   1e6 * acc[i] / ((double)calls * B), 100.0 * acc[i] / total);
        }
        fflush(stdout);
        runner_free(&r);
    }
    free(acc);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_engine [--data DIR] [--seconds S] [--batches 1,16,256] [--threads 1,2] [--workers2] [--plain | --compare] MODEL_DIR\n"
                    "       bench_engine --layers [--seconds S] [--batches 1,16,256] MODEL_DIR\n"
                    "       bench_engine --dump PREFIX [--batches B] MODEL_DIR\n"
                    "       (every form takes --data DIR: real images from an MNIST-style dataset)\n");
}

int main(int argc, char **argv)
{
    double seconds = 2.0;
    int batches[MAX_LIST] = {1, 16, 256}, n_batches = 3;
    int threads[MAX_LIST] = {1, 2}, n_threads = 2;
    int workers2 = 0, layers = 0, batches_given = 0, compare = 0;
    const char *dir = NULL, *data = NULL, *dump_prefix = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--seconds") == 0 && v) { seconds = strtod(v, NULL); i++; }
        else if (strcmp(a, "--batches") == 0 && v) { n_batches = parse_list(v, batches, MAX_LIST); batches_given = 1; i++; }
        else if (strcmp(a, "--data") == 0 && v) { data = v; i++; }
        else if (strcmp(a, "--dump") == 0 && v) { dump_prefix = v; i++; }
        else if (strcmp(a, "--threads") == 0 && v) { n_threads = parse_list(v, threads, MAX_LIST); i++; }
        else if (strcmp(a, "--workers2") == 0) workers2 = 1;
        else if (strcmp(a, "--layers") == 0) layers = 1;
        else if (strcmp(a, "--plain") == 0) g_plain = 1;
        else if (strcmp(a, "--compare") == 0) compare = 1;
        else if (a[0] != '-' && !dir) dir = a;
        else { usage(); return 2; }
    }
    if (!dir || n_batches < 1 || n_threads < 1 || !(seconds > 0)) { usage(); return 2; }

    char *err = NULL;
    eng_model *m;
    if (eng_model_load(&m, dir, &err) != 0) { fprintf(stderr, "bench_engine: %s\n", err); free(err); return 1; }
    if (m->task != ENG_TASK_IMAGE_CLASSIFICATION) { fprintf(stderr, "bench_engine: not an image classifier\n"); return 1; }
    if ((g_plain || compare) && strcmp(m->arch->name, "cnn") != 0) { fprintf(stderr, "bench_engine: --plain needs a cnn model\n"); return 1; }
    if (data && load_images(m, data) != 0) { eng_model_free(m); return 1; }
    if (dump_prefix) {
        int rc = dump(m, dump_prefix, batches_given ? batches[0] : 16);
        eng_model_free(m);
        free(g_images);
        return rc ? 1 : 0;
    }
    if (layers) {
        int rc = layer_breakdown(m, batches, n_batches, seconds);
        eng_model_free(m);
        return rc;
    }
    printf("model %s params=%zu input=%dx%dx%d labels=%d inputs=%s\n", dir, m->n_params, m->prep.channels,
           m->prep.height, m->prep.width, m->n_labels, g_images ? "dataset" : "random");

    for (int ti = 0; ti < n_threads; ti++) {
        openblas_set_num_threads(threads[ti]);
        char tname[16];
        snprintf(tname, sizeof tname, "%d", threads[ti]);
        for (int bi = 0; bi < n_batches; bi++) {
            runner r;
            runner_init(&r, m, batches[bi], 0);
            warm_up(&r, 0.3);
            double rate[ROUNDS], rate_plain[ROUNDS], cpu[ROUNDS], cpu_plain[ROUNDS];
            if (compare) {
                g_plain = 1;
                warm_up(&r, 0.3);
                long calls, calls_plain;
                time_compare(&r, seconds, rate, &calls, cpu, rate_plain, &calls_plain, cpu_plain);
                g_plain = 0;
                report(tname, batches[bi], rate, calls, 1, cpu);
                g_plain = 1;
                report(tname, batches[bi], rate_plain, calls_plain, 1, cpu_plain);
                g_plain = 0;
            } else {
                long calls = time_rounds(&r, seconds, rate);
                report(tname, batches[bi], rate, calls, 1, NULL);
            }
            runner_free(&r);
        }
    }
    if (workers2)
        for (int bi = 0; bi < n_batches; bi++) bench_two_workers(m, batches[bi], seconds);
    eng_model_free(m);
    free(g_images);
    return 0;
}
