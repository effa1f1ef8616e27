// test_style_ops.c — the style-training tape ops (engine/core/tape_style.h):
// each forward against a plain-loop double definition written here from the
// PyTorch module it mirrors, and each backward against central differences of
// that double definition (so the gradient is checked against the true
// function, not against our own forward). Shapes include odd sizes, 1-wide
// planes and reflection pads of 1 and 4.
#include "engine/core/tape_style.h"

#include <check.h>        // Check unit-test framework
#include <math.h>         // fabs, floor, sqrt
#include <stdio.h>        // fprintf
#include <stdlib.h>       // calloc, free
#include "tests/unit/testutil.h"   // tu_fill, tu_compare

enum { PAD, INORM, UP, GRAM, MSE };
static const char *op_names[] = {"reflect_pad2d", "instance_norm", "upsample_nearest", "gram", "mse"};

typedef struct { int op, B, C, H, W, k; } tcase;   // k: pad or scale

static const tcase cases[] = {
    {PAD, 1, 1, 3, 3, 1}, {PAD, 2, 3, 5, 4, 1}, {PAD, 1, 2, 7, 6, 4}, {PAD, 2, 1, 5, 9, 4},
    {PAD, 1, 1, 2, 2, 1}, {PAD, 1, 2, 3, 4, 0},
    {INORM, 1, 1, 3, 3, 0}, {INORM, 2, 3, 5, 4, 0}, {INORM, 1, 2, 1, 7, 0}, {INORM, 2, 2, 6, 6, 0},
    {UP, 1, 1, 3, 3, 2}, {UP, 2, 3, 5, 4, 2}, {UP, 1, 2, 3, 5, 3}, {UP, 1, 1, 2, 3, 1},
    {GRAM, 1, 1, 3, 3, 0}, {GRAM, 2, 3, 5, 4, 0}, {GRAM, 1, 4, 1, 7, 0}, {GRAM, 2, 5, 3, 3, 0},
    {MSE, 1, 1, 3, 3, 0}, {MSE, 2, 3, 5, 4, 0}, {MSE, 1, 1, 1, 1, 0},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };
static const double EPS = 1e-5;

// Input layout of one case: x [B,C,H,W], then w[C], b[C] (instance norm) or
// y [B,C,H,W] (mse).
static size_t nx(const tcase *c) { return (size_t)c->B * c->C * c->H * c->W; }
static size_t n_extra(const tcase *c) { return c->op == INORM ? 2 * (size_t)c->C : c->op == MSE ? nx(c) : 0; }
static size_t n_out(const tcase *c) {
    switch (c->op) {
    case PAD: return (size_t)c->B * c->C * (c->H + 2 * c->k) * (c->W + 2 * c->k);
    case UP: return nx(c) * c->k * c->k;
    case GRAM: return (size_t)c->B * c->C * c->C;
    default: return c->op == MSE ? 1 : nx(c);
    }
}

// Reflection as a periodic mirror: the sequence 0,1,..,n-1,n-2,..,1 repeated.
static int mirror(int i, int n) {
    if (n == 1) return 0;
    int period = 2 * (n - 1), m = ((i % period) + period) % period;
    return m < n ? m : period - m;
}

// The reference definitions, in double. th = inputs in the layout above.
static void ref_forward(const tcase *c, const double *th, double *out) {
    int B = c->B, C = c->C, H = c->H, W = c->W, k = c->k;
    const double *x = th;
    size_t HW = (size_t)H * W;
    if (c->op == PAD) {
        int OH = H + 2 * k, OW = W + 2 * k;
        for (int q = 0; q < B * C; q++)
            for (int i = 0; i < OH; i++)
                for (int j = 0; j < OW; j++)
                    out[((size_t)q * OH + i) * OW + j] = x[q * HW + (size_t)mirror(i - k, H) * W + mirror(j - k, W)];
    } else if (c->op == INORM) {
        const double *w = th + nx(c), *b = w + C;
        for (int q = 0; q < B * C; q++) {
            double m = 0, v = 0;
            for (size_t i = 0; i < HW; i++) m += x[q * HW + i];
            m /= HW;
            for (size_t i = 0; i < HW; i++) v += (x[q * HW + i] - m) * (x[q * HW + i] - m);
            v /= HW;   // biased, as InstanceNorm2d
            for (size_t i = 0; i < HW; i++) out[q * HW + i] = (x[q * HW + i] - m) / sqrt(v + EPS) * w[q % C] + b[q % C];
        }
    } else if (c->op == UP) {
        int OH = H * k, OW = W * k;
        for (int q = 0; q < B * C; q++)
            for (int i = 0; i < OH; i++)
                for (int j = 0; j < OW; j++) {
                    int si = (int)floor(i * ((double)H / OH)), sj = (int)floor(j * ((double)W / OW));
                    out[((size_t)q * OH + i) * OW + j] = x[q * HW + (size_t)si * W + sj];
                }
    } else if (c->op == GRAM) {
        for (int b = 0; b < B; b++)
            for (int i = 0; i < C; i++)
                for (int j = 0; j < C; j++) {
                    double s = 0;
                    for (size_t p = 0; p < HW; p++) s += x[((size_t)b * C + i) * HW + p] * x[((size_t)b * C + j) * HW + p];
                    out[((size_t)b * C + i) * C + j] = s / ((double)C * HW);
                }
    } else {
        const double *y = th + nx(c);
        double s = 0;
        for (size_t i = 0; i < nx(c); i++) s += (x[i] - y[i]) * (x[i] - y[i]);
        out[0] = s / nx(c);
    }
}

// The scalar checked by finite differences: the op's output for mse, else
// mean((out - target)^2) (what the tape computes with eng_t_mse).
static double ref_loss(const tcase *c, const double *th, const float *target, double *scratch) {
    ref_forward(c, th, scratch);
    if (c->op == MSE) return scratch[0];
    double s = 0;
    size_t n = n_out(c);
    for (size_t i = 0; i < n; i++) s += (scratch[i] - target[i]) * (scratch[i] - target[i]);
    return s / n;
}

// Runs the op on the tape; vars point into vals/grads (layout above).
static eng_var *run_op(eng_tape *t, const tcase *c, float *vals, float *grads, eng_var *v) {
    int shape[4] = {c->B, c->C, c->H, c->W};
    eng_var_param(&v[0], vals, grads, 4, shape);
    switch (c->op) {
    case PAD: return eng_t_reflect_pad2d(t, &v[0], c->k);
    case UP: return eng_t_upsample_nearest(t, &v[0], c->k);
    case GRAM: return eng_t_gram(t, &v[0]);
    case INORM:
        eng_var_param(&v[1], vals + nx(c), grads ? grads + nx(c) : NULL, 1, (int[]){c->C});
        eng_var_param(&v[2], vals + nx(c) + c->C, grads ? grads + nx(c) + c->C : NULL, 1, (int[]){c->C});
        return eng_t_instance_norm(t, &v[0], &v[1], &v[2], (float)EPS);
    default:
        eng_var_param(&v[1], vals + nx(c), grads ? grads + nx(c) : NULL, 4, shape);
        return eng_t_mse(t, &v[0], &v[1]);
    }
}

START_TEST(test_forward_and_gradient) {
    const tcase *c = &cases[_i];
    tu_rng_state = 1000 + (uint64_t)_i;
    size_t n_in = nx(c) + n_extra(c), no = n_out(c);
    float *vals = calloc(n_in, sizeof(float)), *grads = calloc(n_in, sizeof(float));
    float *target = calloc(no, sizeof(float));
    double *th = calloc(n_in, sizeof(double)), *ref = calloc(no, sizeof(double));
    double *scratch = calloc(no, sizeof(double)), *fd = calloc(n_in, sizeof(double));
    tu_fill(vals, n_in, -1.0f, 1.0f);
    if (c->op == INORM)   // weights away from zero so every x gradient is exercised
        for (int i = 0; i < c->C; i++) vals[nx(c) + i] = tu_urand(0.5f, 1.5f);
    tu_fill(target, no, -1.0f, 1.0f);
    for (size_t i = 0; i < n_in; i++) th[i] = vals[i];

    // forward against the reference
    eng_tape t;
    eng_tape_init(&t, 1, 1);
    eng_var v[3];
    eng_var *out = run_op(&t, c, vals, grads, v);
    ck_assert_uint_eq(out->n, no);
    ref_forward(c, th, ref);
    float *reff = calloc(no, sizeof(float));
    for (size_t i = 0; i < no; i++) reff[i] = (float)ref[i];
    ck_assert_msg(tu_compare(op_names[c->op], out->val, reff, no, 1e-5, 1e-5) == 0,
                  "%s case %d: forward differs from the reference", op_names[c->op], _i);

    // backward against central differences of the reference
    eng_var *loss = out;
    if (c->op != MSE) {
        eng_var *tv = eng_tape_wrap(&t, target, out->ndim, out->shape);
        loss = eng_t_mse(&t, out, tv);
    }
    eng_tape_backward(&t, loss);
    const double h = 1e-4;
    for (size_t i = 0; i < n_in; i++) {
        double keep = th[i];
        th[i] = keep + h;
        double lp = ref_loss(c, th, target, scratch);
        th[i] = keep - h;
        double lm = ref_loss(c, th, target, scratch);
        th[i] = keep;
        fd[i] = (lp - lm) / (2 * h);
    }
    // per input tensor: error relative to that tensor's largest gradient
    size_t seg[4] = {0, nx(c), n_in, n_in};
    if (c->op == INORM) { seg[2] = nx(c) + c->C; seg[3] = n_in; }
    for (int s = 0; s < 3 && seg[s] < seg[s + 1]; s++) {
        double mx = 0;
        for (size_t i = seg[s]; i < seg[s + 1]; i++) mx = fmax(mx, fabs(fd[i]));
        for (size_t i = seg[s]; i < seg[s + 1]; i++) {
            double err = fabs(grads[i] - fd[i]);
            if (!(err <= 1e-3 * mx + 1e-7))
                ck_abort_msg("%s case %d: input %d grad[%zu] = %.8g, finite difference %.8g (max |grad| %.3g)",
                             op_names[c->op], _i, s, i - seg[s], grads[i], fd[i], mx);
        }
        if (s == 0) ck_assert_msg(mx > 1e-6, "%s case %d: gradient vanishes, check is vacuous", op_names[c->op], _i);
    }
    eng_tape_free(&t);
    free(vals); free(grads); free(target); free(th); free(ref); free(scratch); free(fd); free(reff);
}
END_TEST

// A grad-off tape (serving) records nothing and gives no gradient buffers.
START_TEST(test_grad_off_records_nothing) {
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    float x[2 * 3 * 4] = {0}, w[2] = {1, 1}, b[2] = {0, 0};
    eng_var vx, vw, vb;
    eng_var_param(&vx, x, NULL, 4, (int[]){1, 2, 3, 4});
    eng_var_param(&vw, w, NULL, 1, (int[]){2});
    eng_var_param(&vb, b, NULL, 1, (int[]){2});
    eng_var *y = eng_t_reflect_pad2d(&t, &vx, 2);
    y = eng_t_instance_norm(&t, y, &vw, &vb, 1e-5f);
    y = eng_t_upsample_nearest(&t, y, 2);
    eng_var *g = eng_t_gram(&t, y);
    eng_var *l = eng_t_mse(&t, g, g);
    ck_assert_int_eq(t.n_entries, 0);
    ck_assert_ptr_null(l->grad);
    ck_assert_int_eq(y->shape[2], 14);
    ck_assert_int_eq(y->shape[3], 16);
    ck_assert_int_eq(g->shape[1], 2);
    ck_assert(l->val[0] == 0.0f);
    eng_tape_free(&t);
}
END_TEST

static Suite *style_ops_suite(void) {
    Suite *s = suite_create("style_ops");
    TCase *tc = tcase_create("ops");
    tcase_add_loop_test(tc, test_forward_and_gradient, 0, N_CASES);
    tcase_add_test(tc, test_grad_off_records_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(style_ops_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
