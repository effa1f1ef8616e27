// seq2seq.h — the encoder-decoder interface translation runs on,
// implemented by each translation architecture (Marian transformer in
// marian.c, LSTM encoder-decoder with attention in lstm_attention.c). The
// search (greedy, beam: engine/arch/translate.c) and the server drive any
// model through these ops only.
//
// A batch of B source sentences is encoded at once (padded to the longest,
// padding masked) into an eng_s2s_mem. Each hypothesis of the search is an
// eng_s2s_dec: the decoder's state (KV cache of the decoder self-attention,
// or the LSTM's (h, c) and input feed) bound to one source b of a mem, which
// it reads but does not own. One call to step advances MANY hypotheses, one
// token each, stacked into one activation matrix so every weight matrix is
// read once per step. Beam search reorders hypotheses with dec_copy.
//
// Weights are read-only and shared by every worker; the scratch tape (arena)
// belongs to the calling worker and may be reset by encode and step (a mem
// or dec never points into it). Out of memory inside encode/step jumps to
// the worker's recovery point (core/arena.h); the allocating constructors
// return NULL instead.
#ifndef ENG_SEQ2SEQ_H
#define ENG_SEQ2SEQ_H
#include <stddef.h>            // size_t
#include "engine/core/tape.h"  // eng_tape (scratch arena)

typedef struct eng_s2s eng_s2s;           // opaque: weights + hyperparameters
typedef struct eng_s2s_mem eng_s2s_mem;   // encoder outputs of a batch of sources
typedef struct eng_s2s_dec eng_s2s_dec;   // one hypothesis' decoder state

typedef struct {
    const char *arch;      // "marian", "lstm-attention"
    int src_vocab;         // source token ids are < src_vocab
    int tgt_vocab;         // logits per step
    int max_src_len;       // longest source (tokens, EOS included) encode accepts
    int max_tgt_len;       // most tokens one dec can consume (the start token included)
    int start_id;          // the decoder's first input (Marian: pad)
    int eos_id;            // ends a hypothesis
    int pad_id;            // never produced (its logit is masked by the search)
    size_t n_params;
} eng_s2s_info;

typedef struct {
    eng_s2s_info (*info)(const eng_s2s *m);
    // Encodes B sources (n_src[b] <= max_src_len, ids already carry the EOS
    // the model expects). NULL when memory runs out.
    eng_s2s_mem *(*encode)(const eng_s2s *m, eng_tape *scratch, const int *const *src, const int *n_src, int B);
    void (*mem_free)(eng_s2s_mem *mem);
    // A fresh hypothesis for source b of mem able to consume max_len tokens
    // (the start token included; max_len <= max_tgt_len); it has consumed
    // nothing yet. NULL on OOM.
    eng_s2s_dec *(*dec_new)(const eng_s2s *m, const eng_s2s_mem *mem, int b, int max_len);
    // dst := src (same model and max_len; dst may be bound to another source).
    void (*dec_copy)(eng_s2s_dec *dst, const eng_s2s_dec *src);
    void (*dec_free)(eng_s2s_dec *d);
    // Hypothesis i consumes tokens[i] (the first call: start_id) and gets the
    // next-token logits in logits[i * tgt_vocab ...] (final bias included).
    // Callers guarantee each dec has consumed fewer than its max_len tokens.
    void (*step)(const eng_s2s *m, eng_tape *scratch, eng_s2s_dec **decs, const int *tokens, int n, float *logits);
    void (*free)(eng_s2s *m);
} eng_s2s_ops;

#endif
