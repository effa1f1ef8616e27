// schedule.c — warmup + cosine learning rate (see schedule.h).
#include "engine/train/schedule.h"
#include <math.h>          // cosf

float eng_lr_at(const eng_lr_schedule *s, int step) {
    if (step <= s->warmup) return s->peak * step / s->warmup;
    // the operations in the order both loops had them, so their rates stay bit for bit
    float angle = 3.14159265f * (float)(step - s->warmup) / (float)(s->total - s->warmup + 1);
    return s->peak * (s->floor + (1.0f - s->floor) * 0.5f * (1.0f + cosf(angle)));
}
