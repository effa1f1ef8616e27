// schedule.h — the learning-rate schedule every training loop uses: linear
// warmup to the peak, then a half cosine down to floor * peak. Each task
// picks its own warmup length and floor (image classification: floor 0;
// text generation: floor 0.1), so one function serves both unchanged.
#ifndef ENG_SCHEDULE_H
#define ENG_SCHEDULE_H

typedef struct {
    float peak;      // learning rate at the end of warmup
    int warmup;      // steps of linear warmup (0: none)
    int total;       // optimizer steps of the run
    float floor;     // fraction of peak the cosine ends at
} eng_lr_schedule;

// The learning rate of optimizer step `step` (1-based).
float eng_lr_at(const eng_lr_schedule *s, int step);

#endif
