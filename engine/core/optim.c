// optim.c — optimisers over flat parameter arrays (see optim.h). The
// arithmetic follows torch.optim.AdamW's single-tensor path step by step, so
// a run here tracks a PyTorch run to float rounding.
#include "engine/core/optim.h"

#include <math.h>   // sqrt, pow

void eng_adamw_step(float *params, const float *grads, float *m, float *v, size_t n,
                    float lr, float beta1, float beta2, float eps, float weight_decay, int t)
{
    // Scalars in double, as PyTorch computes them in Python floats.
    double bc1 = 1.0 - pow(beta1, t);                       // bias corrections
    float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, t));
    float step = (float)(lr / bc1);                         // lr / (1 - b1^t)
    float decay = (float)(1.0 - (double)lr * weight_decay); // decoupled: p *= 1 - lr*wd first
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;   // sqrt(vhat) + eps
        params[i] = params[i] * decay - step * m[i] / denom;
    }
}

float eng_clip_grad_norm(float *grads, size_t n, float max_norm)
{
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) ss += (double)grads[i] * grads[i];
    double norm = sqrt(ss);
    // PyTorch's coefficient, including its 1e-6 guard against division by 0.
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        float c = (float)coef;
        for (size_t i = 0; i < n; i++) grads[i] *= c;
    }
    return (float)norm;
}
