// optim.h — optimisers over flat parameter arrays.
#ifndef ENG_OPTIM_H
#define ENG_OPTIM_H
#include <stddef.h>   // size_t

// AdamW (Loshchilov & Hutter; PyTorch's torch.optim.AdamW semantics):
//   m = b1*m + (1-b1)*g ; v = b2*v + (1-b2)*g^2
//   p -= lr * ( mhat / (sqrt(vhat) + eps) + weight_decay * p )
// with mhat = m/(1-b1^t), vhat = v/(1-b2^t); t counts from 1.
void eng_adamw_step(float *params, const float *grads, float *m, float *v, size_t n,
                    float lr, float beta1, float beta2, float eps, float weight_decay, int t);

// Scales grads in place so their global L2 norm is at most max_norm; returns the norm before clipping.
float eng_clip_grad_norm(float *grads, size_t n, float max_norm);

#endif
