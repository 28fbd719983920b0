/* SentencePiece ("llama" vocab) tokenization as llama.cpp's llm_tokenizer_spm runs it.
 *
 * The vocabulary stays in the GGUF mapping: token i is the u64-length-prefixed string whose
 * payload starts at base + offsets[i]; scores are the file's f32 array (possibly unaligned).
 * The only thing built is an open-addressing hash table of token ids keyed by token bytes. */
#ifndef ER_SPM_H
#define ER_SPM_H

#include <stddef.h>
#include <stdint.h>

typedef struct er_vocab er_vocab;

/* Build the table. Returns NULL on allocation failure or if two tokens share the same bytes
 * (then *dup_a < *dup_b are their ids; otherwise both are -1). Empty tokens are not indexed. */
er_vocab *er_vocab_new(const uint8_t *base, const int64_t *offsets, const void *scores_f32,
                       int32_t n_vocab, int32_t *dup_a, int32_t *dup_b);
void er_vocab_free(er_vocab *v);

/* The id of the token whose bytes are s[0..n), or -1. */
int32_t er_vocab_find(const er_vocab *v, const uint8_t *s, size_t n);

/* Tokenize one fragment (spaces already escaped to U+2581) into out, which must hold n ids
 * (a fragment never yields more ids than bytes). Returns the count, -1 when out of memory,
 * -2 when a byte needs a fallback token the vocabulary lacks. */
int64_t er_spm_encode(const er_vocab *v, const uint8_t *text, size_t n, int32_t *out);

#endif
