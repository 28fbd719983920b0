/* The Gemma 3 decoder over weights that stay packed in the GGUF mapping.
 *
 * Shape legend: T = tokens in the chunk, E = n_embd, H = query heads, Hk = kv heads,
 * D = head dim, Q = H*D, K = Hk*D, F = n_ff, V = n_vocab, C = n_ctx (max_inference_len).
 */
#ifndef ER_GEMMA3_H
#define ER_GEMMA3_H

#include <stddef.h>
#include <stdint.h>

#include "pool.h"
#include "q8_0.h"

typedef struct {
    const void *data;    /* into the mapping */
    int type;            /* ER_Q8_0, ER_F32, ER_F16, ER_BF16 */
    int rows, cols;      /* cols = values per row (GGUF shape[0]) */
} er_mat;

typedef struct {
    er_mat wq, wk, wv, wo, gate, up, down;
    const float *attn_norm, *q_norm, *k_norm, *post_attn_norm, *ffn_norm, *post_ffw_norm;
    const uint8_t *lo, *hi;    /* byte range of this layer's weights, for page release */
} er_layer;

typedef struct {
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, sliding_window;
    float eps, rope_base_global, rope_base_local, rope_scale_global, softcap;
    float attn_scale;          /* queries are multiplied by it: 1/sqrtf(query_pre_attn_scalar) */
    uint8_t *is_swa;           /* per layer */
    er_mat tok_embd, output;   /* output aliases tok_embd when the file ties them */
    const float *output_norm;
    er_layer *layers;
    float *owned_norms;        /* norms converted from F16/BF16 (NULL when all are F32) */
    const er_q8_0_kernel *kernel;
} er_model;

typedef struct er_session er_session;

/* Sizes of what a session allocates, by purpose (what the memory planner predicts). */
typedef struct {
    size_t kv, scratch, scores;
} er_session_bytes;

er_session *er_session_create(const er_model *m, int n_ctx, int chunk, int kv_f32, int n_threads,
                              int release_pages);
void er_session_destroy(er_session *s);
er_session_bytes er_session_sizes(const er_session *s);
int er_session_n_past(const er_session *s);
/* Forget everything from position n on (n <= n_past). n = 0 always works; otherwise sliding
 * layers can only be rewound while their ring has not wrapped: returns -1 when it has. */
int er_session_truncate(er_session *s, int n);

/* Run tokens [0, n) at positions n_past.. in chunks. If logits is non-NULL, writes the last
 * position's logits: all V rows, or only rows[0..n_rows) in that order when rows is non-NULL.
 * Returns 0, ER_EVAL_CONTEXT when the tokens do not fit in n_ctx, ER_EVAL_TOKEN_ID when a
 * token id is out of range, ER_EVAL_ROW_ID when a row id is (nothing is computed then). */
enum { ER_EVAL_CONTEXT = -1, ER_EVAL_TOKEN_ID = -2, ER_EVAL_ROW_ID = -3 };
int er_session_eval(er_session *s, const int32_t *tokens, int n, float *logits,
                    const int32_t *rows, int n_rows);

/* ---- building a model over the mapping (weights.c) ---------------------------------- */

typedef struct {
    uint64_t offset;     /* from the start of the mapping */
    int type;
    int64_t ne0, ne1;    /* GGUF shape: ne0 values per row, ne1 rows (1 for vectors) */
    int present;
} er_tensor_desc;

/* Order of the per-layer descriptors (module.c names each one: Python binds them by name). */
enum {
    ER_T_WQ, ER_T_WK, ER_T_WV, ER_T_WO, ER_T_GATE, ER_T_UP, ER_T_DOWN, ER_T_ATTN_NORM,
    ER_T_Q_NORM, ER_T_K_NORM, ER_T_POST_ATTN_NORM, ER_T_FFN_NORM, ER_T_POST_FFW_NORM,
    ER_T_PER_LAYER
};
/* Global descriptors: token_embd, output (present = 0 when tied), output_norm. */
enum { ER_T_TOK_EMBD, ER_T_OUTPUT, ER_T_OUTPUT_NORM, ER_T_GLOBAL };

/* Fill *m (dims already set in it) from descriptors; on failure returns a static message. */
const char *er_model_init(er_model *m, const uint8_t *base, uint64_t size,
                          const er_tensor_desc *global, const er_tensor_desc *layers);
void er_model_free(er_model *m);

/* ---- KV state snapshots (prefix reuse) ------------------------------------------------ *
 * The state is n_past plus each layer's occupied ring slots. A snapshot restores only into a
 * session with the same model shape, KV dtype and ring lengths. */
size_t er_session_state_bytes(const er_session *s);
void er_session_state_save(const er_session *s, uint8_t *out);
/* The same bytes written with pwrite at offset `base` of file fd, straight from the KV
 * buffers (no copy of the whole state). Returns 0, or -1 with errno set. */
int er_session_state_write(const er_session *s, int fd, uint64_t base);

/* Where a snapshot is read from: `size` bytes at `buf`, or at offset `base` of file `fd`
 * (buf NULL), read with pread straight into the KV buffers - no copy of the whole state. */
typedef struct {
    const uint8_t *buf;
    int fd;
    uint64_t base, size;
} er_state_src;

/* Restore a snapshot. `continued`: the session holds this very snapshot's state (restored or
 * taken from it) followed by later positions; then only the ring slots those positions took
 * over are read back - global layers and unwrapped rings still hold the prefix. Returns 0,
 * ER_STATE_FOREIGN when the source is not a snapshot of a session shaped like this one
 * (nothing changed), ER_STATE_READ_FAILED when reading failed midway (the state is emptied:
 * n_past = 0). */
enum { ER_STATE_FOREIGN = -1, ER_STATE_READ_FAILED = -2 };
int er_session_state_load(er_session *s, const er_state_src *src, int continued);

#endif
