// translate.h — greedy and beam search over any encoder-decoder
// (engine/arch/seq2seq.h): a batch of B sources, each searched with
// beam_size hypotheses, all hypotheses of all sources advanced by ONE step
// call per output position.
#ifndef ENG_TRANSLATE_H
#define ENG_TRANSLATE_H
#include "engine/arch/seq2seq.h"   // eng_s2s, eng_s2s_ops

typedef struct {
    int beam_size;          // 1 = greedy; 1..ENG_TRANSLATE_MAX_BEAM
    int max_tokens;         // longest output (tokens, EOS excluded), < info.max_tgt_len
    float length_penalty;   // beam: finished scores are logp / len^length_penalty (1.0 = mean)
    const int *max_tokens_each;   // NULL, or [B] a bound per source (then max_tokens is unused):
                                  // sources with different bounds still share every step
} eng_translate_opts;

#define ENG_TRANSLATE_MAX_BEAM 8

typedef struct {
    int *ids;       // malloc'd output ids, EOS excluded
    int n;          // their count
    float score;    // sum of log-probabilities of ids (+ EOS when it ended)
    int finished;   // 1: ended with EOS; 0: stopped at max_tokens
} eng_translation;

// Translates B sources (ids with the EOS the model expects). out[b] is
// filled for every b; free each out[b].ids. Returns 0, or -1 when memory ran
// out (nothing is leaked, out[] is then all NULL).
int eng_translate(const eng_s2s_ops *ops, const eng_s2s *m, eng_tape *scratch, const int *const *src,
                  const int *n_src, int B, const eng_translate_opts *o, eng_translation *out);

#endif
