// bert.h — BERT and DistilBERT sequence classifiers, loaded from Hugging Face
// directories as they are: config.json (model_type "bert" or "distilbert",
// id2label), model.safetensors (the HF tensor names, with or without the
// "bert." / "distilbert." prefix; F32, F16 or BF16), vocab.txt (+
// tokenizer_config.json) for the WordPiece tokenizer.
//
//   BERT        word + position + token-type(0) embeddings, LayerNorm; per
//               layer: self-attention, dense, residual + LayerNorm (post-LN),
//               intermediate (hidden_act) + output dense, residual + LayerNorm;
//               pooler tanh(dense([CLS])); classifier
//   DistilBERT  word + position embeddings, LayerNorm; per layer: q/k/v_lin,
//               out_lin, residual + sa_layer_norm, ffn lin1 (activation) +
//               lin2, residual + output_layer_norm; relu(pre_classifier([CLS]));
//               classifier
//
// A batch of B texts of different lengths runs in ONE forward: the matmuls
// of every layer see all tokens of all texts packed into one matrix (no
// padding rows to compute), and attention runs per text over its own
// tokens, which is what a padded batch with HF's attention mask computes
// (masked keys get probability 0). A text's result does not depend on its
// neighbours beyond sgemm's rounding (tests/unit/test_bert.c bounds it).
// Weights are read-only views of the mapped safetensors file.
#ifndef ENG_BERT_H
#define ENG_BERT_H
#include <jansson.h>                // json_t
#include "engine/core/arena.h"      // eng_arena

typedef struct eng_bert eng_bert;

// Reads config.json's architecture keys and maps <dir>/model.safetensors.
// Returns 0, or -1 with *err naming the key or tensor at fault.
int eng_bert_load(eng_bert **out, const char *dir, const json_t *config, char **err);
void eng_bert_free(eng_bert *b);   // NULL-safe
int eng_bert_n_labels(const eng_bert *b);
int eng_bert_vocab_size(const eng_bert *b);
int eng_bert_max_positions(const eng_bert *b);
size_t eng_bert_n_params(const eng_bert *b);
// logits[B, n_labels] of B texts (ids incl. [CLS] ... [SEP], each 1..max
// positions long, ids < vocab size), scratch from the arena.
void eng_bert_logits(const eng_bert *b, eng_arena *a, const int *const *tokens, const int *n_tokens, int B,
                     float *logits);
// Scores from logits, in place: softmax, or per-label sigmoid for
// problem_type "multi_label_classification" and for one label (regression).
void eng_bert_scores(const eng_bert *b, float *logits, int B);

#endif
