// fasttext.h — a fastText-style text classifier (Joulin et al. 2016, "Bag of
// Tricks for Efficient Text Classification"): a text becomes a bag of hashed
// features, their embeddings are averaged, and one linear layer + softmax
// gives the label probabilities.
//
// Features (the ids eng_model_text_ids returns for this architecture): the
// text is decoded as UTF-8 (an invalid byte counts as a separator), lowercased
// (Latin, Greek, Cyrillic, Armenian), and split into words at every character
// that is not a letter (\p{L}) or a combining mark: digits, punctuation and
// spaces carry no language and are dropped. Each word gives
//   - the word itself: FNV-1a of its bytes with a word seed, mod buckets;
//   - every character n-gram, minn <= n <= maxn, of "<word>" ("<" and ">" mark
//     the word's ends; the bare markers are not features): FNV-1a mod buckets.
// Words and n-grams share one table of `buckets` rows, as fastText's hashed
// n-grams do. A text without any letter has no features and is refused.
//
// config.json: {"task":"text-classification","arch":"fasttext","labels":[...],
//   "dim":16,"buckets":131072,"minn":1,"maxn":4,"max_text_ids":16384}
// model.safetensors: "embeddings" [buckets, dim], "output.weight" [n_labels, dim],
//   "output.bias" [n_labels].
// A loaded model is read-only (the mapped file); the forward pass needs no
// scratch beyond a dim-sized stack buffer, so any number of threads may share it.
#ifndef ENG_FASTTEXT_H
#define ENG_FASTTEXT_H
#include <jansson.h>                 // json_t
#include <stddef.h>                  // size_t
#include <stdint.h>                  // uint64_t
#include "engine/io/safetensors.h"   // eng_st_file

#define ENG_FT_MAX_DIM 1024

typedef struct {
    int dim;           // embedding width
    int buckets;       // rows of the shared word + n-gram table
    int minn, maxn;    // character n-gram lengths (in codepoints, markers included)
    int n_labels;
    int max_ids;       // most features one text may have (0: no limit)
    float *emb;        // [buckets, dim]
    float *out_w;      // [n_labels, dim]
    float *out_b;      // [n_labels]
    float *owned;      // the training arena behind emb/out_w/out_b, or NULL when mapped
    eng_st_file st;    // the mapped weights when loaded from disk
} eng_fasttext;

// Reads the hyperparameters from config (missing keys: the defaults above)
// for n_labels labels; no weights yet. 0 or -1 with *err.
int eng_ft_init(eng_fasttext *ft, const json_t *config, int n_labels, char **err);
// Writes the hyperparameters into config (dim, buckets, minn, maxn, max_text_ids).
void eng_ft_config(const eng_fasttext *ft, json_t *config);
// Maps model.safetensors (names and shapes checked). 0 or -1 with *err.
int eng_ft_load(eng_fasttext *ft, const char *path, char **err);
// Owned, writable weights for training: embeddings uniform in
// [-1/dim, 1/dim] (as fastText), output zero. 0 or -1 (out of memory).
int eng_ft_alloc(eng_fasttext *ft, uint64_t seed);
int eng_ft_save(const eng_fasttext *ft, const char *path, char **err);
void eng_ft_free(eng_fasttext *ft);   // NULL-safe
size_t eng_ft_n_params(const eng_fasttext *ft);

// The features of text[0..len). Returns 0 with a malloc'd *ids[*n] (n >= 1),
// ENG_TOK_E_TOO_LONG when the text has more than max_ids features,
// ENG_TOK_E_NOMEM, or -1 with *err (no letters in the text).
int eng_ft_features(const eng_fasttext *ft, const char *text, size_t len, int **ids, int *n, char **err);

// h[dim] = mean of the feature rows; probs[n_labels] = softmax(W h + b).
void eng_ft_forward(const eng_fasttext *ft, const int *ids, int n, float *h, float *probs);
// One SGD step on one example (fastText's update): forward, then with
// g = probs - onehot(label): W -= lr g h^T, b -= lr g, and each feature row
// -= lr (W^T g) / n (W before its update). Returns the loss -log p[label].
float eng_ft_sgd_step(eng_fasttext *ft, const int *ids, int n, int label, float lr);

#endif
