// lm.h — the language-model interface the server's continuous batcher
// drives, implemented by each text-generation architecture (decoder
// transformer in transformer.c, LSTM in lstm.c).
//
// A sequence (eng_lm_seq) owns its state: the KV cache of every layer for a
// transformer, (h, c) per layer for an LSTM, and its position. One call to
// eng_lm_step advances MANY sequences at once: sequence i consumes
// n_tokens[i] new tokens (a prompt prefill when > 1, one token when
// decoding); all consumed tokens of all sequences are stacked into one
// [T_total, dim] activation matrix so every weight matrix is read once per
// step (GEMM, not one GEMV per sequence); attention runs per sequence over
// its own cache. The logits of each sequence's LAST consumed token are
// written to logits[i * vocab_size ...].
//
// Weights are read-only and shared by every worker; the scratch tape (arena)
// belongs to the calling worker.
#ifndef ENG_LM_H
#define ENG_LM_H
#include <stddef.h>          // size_t
#include "engine/core/tape.h"     // eng_tape (scratch arena)

typedef struct eng_lm_seq eng_lm_seq;

typedef struct {
    const char *arch;        // "gpt2", "llama", "lstm"
    int vocab_size;          // logits per position
    int context_len;         // longest sequence the model supports (max_position_embeddings / seq_len)
    size_t n_params;         // parameter count
} eng_lm_info;

typedef struct eng_lm eng_lm;   // opaque: weights + hyperparameters

typedef struct {
    // Bytes of state one sequence of up to max_len tokens needs (KV cache), for budgeting.
    size_t (*seq_bytes)(const eng_lm *m, int max_len);
    // A new, empty sequence able to hold max_len tokens (max_len <= context_len);
    // NULL when max_len is out of range or memory runs out.
    eng_lm_seq *(*seq_new)(const eng_lm *m, int max_len);
    void (*seq_free)(eng_lm_seq *s);
    // Number of tokens the sequence has consumed so far.
    int (*seq_pos)(const eng_lm_seq *s);
    // The batched step described above. Callers guarantee seq_pos + n_tokens[i] <= max_len.
    void (*step)(const eng_lm *m, eng_tape *scratch, eng_lm_seq **seqs, const int *const *tokens,
                 const int *n_tokens, int n, float *logits);
    void (*free)(eng_lm *m);
    eng_lm_info (*info)(const eng_lm *m);
} eng_lm_ops;

#endif
