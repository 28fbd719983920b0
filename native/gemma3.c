/* One Gemma 3 decoder step over a chunk of T tokens, as llama.cpp's gemma3 graph computes it.
 *
 * Per layer, a straight sequence of named operations:
 *   attn_norm → Q,K,V → per-head q_norm/k_norm → RoPE (NEOX) → Q·attn_scale → GQA attention
 *   (sliding window on local layers) → attn_output → post_attention_norm → residual
 *   ffn_norm → gelu_tanh(gate)·up → down → post_ffw_norm → residual
 * then output_norm and the lm_head for the last position only.
 *
 * KV cache: local layers keep a ring of min(C, window) positions, global layers C positions.
 * A chunk's own keys live in a staging buffer until the layer's attention is done, so a
 * ring never needs room for more than the window.
 */
#include "gemma3.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ops.h"

struct er_session {
    const er_model *m;
    int n_ctx, chunk, kv_f32, release_pages, n_past;
    er_pool *pool;
    size_t kv_row;                 /* bytes of one position's K (or V) row: K values */
    int *ring;                     /* per layer: positions held */
    uint8_t **k_cache, **v_cache;  /* per layer: ring × kv_row */
    /* chunk scratch */
    float *x, *xn, *q, *k, *v, *att, *gate, *up, *cs, *sn;
    uint8_t *k_stage, *v_stage;
    block_q8_act *xq;
    float *scores;                 /* per thread: C floats per query head of a group */
    er_session_bytes bytes;
};

static size_t type_row_bytes(int type, int cols) {
    switch (type) {
    case ER_Q8_0: return (size_t)cols / QK8_0 * sizeof(block_q8_0);
    case ER_F32: return (size_t)cols * 4;
    default: return (size_t)cols * 2;
    }
}

/* ---- matmul: Y[t][r] = W[r] . X[t] over the pool ------------------------------------- */

#define MAX_MATS 3

typedef struct {
    const er_session *s;
    int n;                         /* matrices sharing the same input */
    const er_mat *w[MAX_MATS];
    float *y[MAX_MATS];
    const float *x;                /* T × cols, f32 */
    const block_q8_act *xq;        /* the same, quantized (Q8_0 weights) */
    int t;
    const int32_t *rows;           /* sparse: compute only these rows of w[0], y[i] <- row rows[i] */
    int n_rows;
} matmul_task;

static void row_range(int rows, int ith, int nth, int *r0, int *r1) {
    /* split in multiples of 16 rows so threads do not share cache lines of Y */
    const int per = ((rows + nth - 1) / nth + 15) & ~15;
    *r0 = ith * per < rows ? ith * per : rows;
    *r1 = *r0 + per < rows ? *r0 + per : rows;
}

/* Constrained decoding's row list, n rows of W against one token. Where the list ascends
 * densely (a string's allowed set is most of the vocabulary) a span of up to SPAN rows goes
 * through the dense kernel into a buffer and the listed rows are picked from it: the row-list
 * kernel, which has no sequential stream to prefetch, costs ~2.4x more per row (Zen 3, over
 * the output layer). Each row gets the same value either way, bit for bit; rows outside any
 * span (the vocabulary's unused tail) are never read, so their pages stay out of memory. */
#define SPAN 1024
static void gemv_row_list(const er_q8_0_kernel *kern, const er_mat *w, const int32_t *rows,
                          int n, const block_q8_act *x, float *y) {
    const block_q8_0 *W = w->data;
    const size_t nb = (size_t)(w->cols / QK8_0);
    float buf[SPAN];
    int scattered = 0;                 /* rows [scattered, i) wait for the row-list kernel */
    for (int i = 0; i < n;) {
        int j = i + 1;                 /* rows [i, j): ascending, within SPAN of rows[i] */
        while (j < n && rows[j] > rows[j - 1] && rows[j] - rows[i] < SPAN) j++;
        const int span = rows[j - 1] - rows[i] + 1;
        if (5 * (j - i) >= 2 * span) {   /* dense pays from 40% of the span listed */
            if (i > scattered)
                kern->gemv_rows(W, rows + scattered, i - scattered, x, y + scattered, w->cols);
            kern->gemm(W + (size_t)rows[i] * nb, x, buf, w->cols, 0, span, 1, span);
            for (int q = i; q < j; q++) y[q] = buf[rows[q] - rows[i]];
            scattered = j;
        }
        i = j;
    }
    if (n > scattered)
        kern->gemv_rows(W, rows + scattered, n - scattered, x, y + scattered, w->cols);
}

static void matmul_worker(void *ctx, int ith, int nth) {
    const matmul_task *mt = ctx;
    const er_q8_0_kernel *kern = mt->s->m->kernel;
    const er_q8_0_gemm_fn gemm = kern->gemm;
    if (mt->rows) {
        const er_mat *w = mt->w[0];
        const size_t rb = type_row_bytes(w->type, w->cols);
        int i0, i1;
        row_range(mt->n_rows, ith, nth, &i0, &i1);
        if (i0 < i1 && w->type == ER_Q8_0)
            gemv_row_list(kern, w, mt->rows + i0, i1 - i0, mt->xq, mt->y[0] + i0);
        for (int i = i0; i < i1 && w->type != ER_Q8_0; i++) {
            const void *row = (const uint8_t *)w->data + (size_t)mt->rows[i] * rb;
            er_gemm_float(row, w->type, mt->x, mt->y[0] + i, w->cols, 0, 1, 1, 1);
        }
        return;
    }
    for (int j = 0; j < mt->n; j++) {
        const er_mat *w = mt->w[j];
        int r0, r1;
        row_range(w->rows, ith, nth, &r0, &r1);
        if (r0 >= r1) continue;
        if (w->type == ER_Q8_0) gemm(w->data, mt->xq, mt->y[j], w->cols, r0, r1, mt->t, w->rows);
        else er_gemm_float(w->data, w->type, mt->x, mt->y[j], w->cols, r0, r1, mt->t, w->rows);
    }
}

/* ---- per-token work ------------------------------------------------------------------ */

/* Work that is independent for each of a chunk's t tokens (norms, RoPE, GELU, activation
 * quantization): on the pool when there are several, so a prefill does not leave the other
 * threads waiting through it; inline for one. */
typedef struct tok_task tok_task;
struct tok_task {
    er_session *s;
    int il, t, cols;
    const float *x;                    /* tok_quantize: t rows of cols floats */
    void (*fn)(const tok_task *, int i);
};

static void tok_worker(void *ctx, int ith, int nth) {
    const tok_task *tt = ctx;
    for (int i = ith; i < tt->t; i += nth) tt->fn(tt, i);
}

static void per_token(tok_task tt) {
    if (tt.t > 1) er_pool_run(tt.s->pool, tok_worker, &tt);
    else tok_worker(&tt, 0, 1);
}

static void tok_quantize(const tok_task *tt, int i) {
    const int cols = tt->cols;
    tt->s->m->kernel->quantize(tt->x + (size_t)i * cols, tt->s->xq + (size_t)i * (cols / QK8_0), cols);
}

static void quantize_rows(er_session *s, const float *x, int t, int cols) {
    per_token((tok_task){.s = s, .t = t, .cols = cols, .x = x, .fn = tok_quantize});
}

/* Y_j = W_j X for matrices that share input x (T × cols). */
static void matmul(er_session *s, const float *x, int t, int n, const er_mat **w, float **y) {
    matmul_task mt = {.s = s, .n = n, .x = x, .xq = s->xq, .t = t};
    int any_q8 = 0;
    for (int j = 0; j < n; j++) {
        mt.w[j] = w[j];
        mt.y[j] = y[j];
        any_q8 |= w[j]->type == ER_Q8_0;
    }
    if (any_q8) quantize_rows(s, x, t, w[0]->cols);
    er_pool_run(s->pool, matmul_worker, &mt);
}

static void matmul1(er_session *s, const float *x, int t, const er_mat *w, float *y) {
    matmul(s, x, t, 1, &w, &y);
}

/* ---- attention ----------------------------------------------------------------------- */

typedef struct {
    er_session *s;
    int il, t, pos0;
    int heads;                     /* query heads per job: a divisor of the group */
} attn_task;

/* The stored K or V row of position p while a chunk starting at pos0 is in flight. */
static const uint8_t *kv_row(const er_session *s, int il, const uint8_t *cache,
                             const uint8_t *stage, int p, int pos0) {
    if (p >= pos0) return stage + (size_t)(p - pos0) * s->kv_row;
    return cache + (size_t)(p % s->ring[il]) * s->kv_row;
}

/* K/V rows gathered per call of er_kv_dots / er_kv_axpys */
#define ATTN_ROWS 64

/* A job is one token and `heads` query heads that share a K/V head: the K and V rows are read
 * (and converted) once for all of them. */
static void attn_worker(void *ctx, int ith, int nth) {
    const attn_task *at = ctx;
    er_session *s = at->s;
    const er_model *m = s->m;
    const int D = m->head_dim, H = m->n_head, group = m->n_head / m->n_head_kv, g = at->heads;
    const int Q = H * D, il = at->il, C = s->n_ctx;
    const int window = m->is_swa[il] ? m->sliding_window : 0;
    float *sc = s->scores + (size_t)ith * group * C;
    const size_t esz = s->kv_f32 ? 4 : 2;
    const void *rows[ATTN_ROWS];
    for (int job = ith; job < at->t * (H / g); job += nth) {
        const int ti = job / (H / g), h0 = job % (H / g) * g;
        const size_t head = (size_t)(h0 / group) * D * esz;
        const int p = at->pos0 + ti;
        const int lo = window && p - window + 1 > 0 ? p - window + 1 : 0, n = p - lo + 1;
        const float *q = s->q + (size_t)ti * Q + (size_t)h0 * D;
        for (int j0 = 0; j0 < n; j0 += ATTN_ROWS) {
            const int c = n - j0 < ATTN_ROWS ? n - j0 : ATTN_ROWS;
            for (int j = 0; j < c; j++)
                rows[j] = kv_row(s, il, s->k_cache[il], s->k_stage, lo + j0 + j, at->pos0) + head;
            er_kv_dots(rows, c, q, g, D, s->kv_f32, sc + j0, C);
        }
        for (int h = 0; h < g; h++) er_softmax(sc + (size_t)h * C, n);
        float *out = s->att + (size_t)ti * Q + (size_t)h0 * D;
        memset(out, 0, (size_t)g * D * sizeof(float));
        for (int j0 = 0; j0 < n; j0 += ATTN_ROWS) {
            const int c = n - j0 < ATTN_ROWS ? n - j0 : ATTN_ROWS;
            for (int j = 0; j < c; j++)
                rows[j] = kv_row(s, il, s->v_cache[il], s->v_stage, lo + j0 + j, at->pos0) + head;
            er_kv_axpys(out, rows, sc + j0, C, g, c, D, s->kv_f32);
        }
    }
}

/* ---- the step ------------------------------------------------------------------------ */

static void release_range(const uint8_t *lo, const uint8_t *hi) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = ((uintptr_t)lo + page - 1) & ~(page - 1), b = (uintptr_t)hi & ~(page - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* The per-token steps of a layer (see the header comment), token i of tt->t. */
static void tok_attn_norm(const tok_task *tt, int i) {
    er_session *s = tt->s;
    const er_model *m = s->m;
    const int E = m->n_embd;
    er_rmsnorm(s->x + (size_t)i * E, m->layers[tt->il].attn_norm, s->xn + (size_t)i * E, E, m->eps);
}

/* q_norm/k_norm, RoPE, the query scale, and the token's K and V rows into the staging buffer */
static void tok_qk(const tok_task *tt, int i) {
    er_session *s = tt->s;
    const er_model *m = s->m;
    const er_layer *L = &m->layers[tt->il];
    const int D = m->head_dim, H = m->n_head, Hk = m->n_head_kv, Q = H * D, K = Hk * D;
    /* angles of token i: rows [0,t) local, [t,2t) global */
    const size_t row = (size_t)((m->is_swa[tt->il] ? 0 : tt->t) + i) * (D / 2);
    const float *c = s->cs + row, *sn = s->sn + row;
    for (int h = 0; h < H; h++) {
        float *qh = s->q + (size_t)i * Q + (size_t)h * D;
        er_rmsnorm(qh, L->q_norm, qh, D, m->eps);
        er_rope_neox(qh, c, sn, D);
        for (int d = 0; d < D; d++) qh[d] *= m->attn_scale;
    }
    for (int h = 0; h < Hk; h++) {
        float *kh = s->k + (size_t)i * K + (size_t)h * D;
        er_rmsnorm(kh, L->k_norm, kh, D, m->eps);
        er_rope_neox(kh, c, sn, D);
    }
    er_kv_store(s->k_stage + (size_t)i * s->kv_row, s->k + (size_t)i * K, K, s->kv_f32);
    er_kv_store(s->v_stage + (size_t)i * s->kv_row, s->v + (size_t)i * K, K, s->kv_f32);
}

/* post_attention_norm, residual, ffn_norm */
static void tok_post_attn(const tok_task *tt, int i) {
    er_session *s = tt->s;
    const er_model *m = s->m;
    const er_layer *L = &m->layers[tt->il];
    const int E = m->n_embd;
    float *xi = s->x + (size_t)i * E, *yi = s->xn + (size_t)i * E;
    er_rmsnorm(yi, L->post_attn_norm, yi, E, m->eps);
    for (int e = 0; e < E; e++) xi[e] += yi[e];
    er_rmsnorm(xi, L->ffn_norm, yi, E, m->eps);
}

static void tok_geglu(const tok_task *tt, int i) {
    const int F = tt->s->m->n_ff;
    er_geglu(tt->s->gate + (size_t)i * F, tt->s->up + (size_t)i * F, F);
}

/* post_ffw_norm, residual */
static void tok_post_ffw(const tok_task *tt, int i) {
    er_session *s = tt->s;
    const er_model *m = s->m;
    const int E = m->n_embd;
    float *xi = s->x + (size_t)i * E, *yi = s->xn + (size_t)i * E;
    er_rmsnorm(yi, m->layers[tt->il].post_ffw_norm, yi, E, m->eps);
    for (int e = 0; e < E; e++) xi[e] += yi[e];
}

static void layer_forward(er_session *s, int il, int t, int pos0) {
    const er_layer *L = &s->m->layers[il];
    tok_task tt = {.s = s, .il = il, .t = t};

    tt.fn = tok_attn_norm;
    per_token(tt);
    const er_mat *qkv[3] = {&L->wq, &L->wk, &L->wv};
    float *qkv_out[3] = {s->q, s->k, s->v};
    matmul(s, s->xn, t, 3, qkv, qkv_out);
    tt.fn = tok_qk;
    per_token(tt);

    /* all of a K/V head's query heads in one job, unless that leaves threads idle */
    attn_task at = {.s = s, .il = il, .t = t, .pos0 = pos0,
                    .heads = s->m->n_head / s->m->n_head_kv};
    while (at.heads % 2 == 0 && t * (s->m->n_head / at.heads) < er_pool_size(s->pool))
        at.heads /= 2;
    er_pool_run(s->pool, attn_worker, &at);

    /* the chunk's keys join the cache (a ring keeps only its last `ring` positions) */
    const int ring = s->ring[il];
    for (int i = t > ring ? t - ring : 0; i < t; i++) {
        const size_t slot = (size_t)((pos0 + i) % ring) * s->kv_row;
        memcpy(s->k_cache[il] + slot, s->k_stage + (size_t)i * s->kv_row, s->kv_row);
        memcpy(s->v_cache[il] + slot, s->v_stage + (size_t)i * s->kv_row, s->kv_row);
    }

    matmul1(s, s->att, t, &L->wo, s->xn);
    tt.fn = tok_post_attn;
    per_token(tt);

    const er_mat *gu[2] = {&L->gate, &L->up};
    float *gu_out[2] = {s->gate, s->up};
    matmul(s, s->xn, t, 2, gu, gu_out);
    tt.fn = tok_geglu;
    per_token(tt);
    matmul1(s, s->gate, t, &L->down, s->xn);
    tt.fn = tok_post_ffw;
    per_token(tt);
    if (s->release_pages) release_range(L->lo, L->hi);
}

static void chunk_forward(er_session *s, const int32_t *tokens, int t, float *logits,
                          const int32_t *rows, int n_rows) {
    const er_model *m = s->m;
    const int E = m->n_embd, D = m->head_dim, pos0 = s->n_past;
    const float escale = sqrtf((float)E);
    for (int i = 0; i < t; i++) {
        float *xi = s->x + (size_t)i * E;
        er_dequant_row(m->tok_embd.data, m->tok_embd.type, tokens[i], E, xi);
        for (int e = 0; e < E; e++) xi[e] *= escale;
        er_rope_angles(s->cs + (size_t)i * (D / 2), s->sn + (size_t)i * (D / 2), pos0 + i, D,
                       m->rope_base_local, 1.0f);
        er_rope_angles(s->cs + (size_t)(t + i) * (D / 2), s->sn + (size_t)(t + i) * (D / 2),
                       pos0 + i, D, m->rope_base_global, m->rope_scale_global);
    }
    for (int il = 0; il < m->n_layer; il++) layer_forward(s, il, t, pos0);
    s->n_past += t;
    if (!logits) return;

    float *last = s->xn;
    er_rmsnorm(s->x + (size_t)(t - 1) * E, m->output_norm, last, E, m->eps);
    if (rows) {
        matmul_task mt = {.s = s, .n = 1, .w = {&m->output}, .y = {logits}, .x = last,
                          .xq = s->xq, .t = 1, .rows = rows, .n_rows = n_rows};
        if (m->output.type == ER_Q8_0) quantize_rows(s, last, 1, E);
        er_pool_run(s->pool, matmul_worker, &mt);
    } else {
        matmul1(s, last, 1, &m->output, logits);
        n_rows = m->n_vocab;
    }
    if (m->softcap > 0.0f)
        for (int i = 0; i < n_rows; i++) logits[i] = m->softcap * tanhf(logits[i] / m->softcap);
}

int er_session_eval(er_session *s, const int32_t *tokens, int n, float *logits,
                    const int32_t *rows, int n_rows) {
    const er_model *m = s->m;
    if (n <= 0 || n > s->n_ctx - s->n_past) return ER_EVAL_CONTEXT;   /* no int overflow */
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->n_vocab) return ER_EVAL_TOKEN_ID;
    for (int i = 0; rows && i < n_rows; i++)
        if (rows[i] < 0 || rows[i] >= m->n_vocab) return ER_EVAL_ROW_ID;
    for (int done = 0; done < n; done += s->chunk) {
        const int t = n - done < s->chunk ? n - done : s->chunk;
        chunk_forward(s, tokens + done, t, done + t == n ? logits : NULL, rows, n_rows);
    }
    return 0;
}

/* ---- lifecycle ----------------------------------------------------------------------- */

void er_session_destroy(er_session *s) {
    if (!s) return;
    if (s->pool) er_pool_destroy(s->pool);
    for (int il = 0; s->k_cache && il < s->m->n_layer; il++) {
        free(s->k_cache[il]);
        free(s->v_cache[il]);
    }
    free(s->k_cache); free(s->v_cache); free(s->ring);
    free(s->x); free(s->xn); free(s->q); free(s->k); free(s->v); free(s->att);
    free(s->gate); free(s->up); free(s->cs); free(s->sn);
    free(s->k_stage); free(s->v_stage); free(s->xq); free(s->scores);
    free(s);
}

static void *track(size_t *acc, size_t n) {
    *acc += n;
    return calloc(1, n ? n : 1);
}

er_session *er_session_create(const er_model *m, int n_ctx, int chunk, int kv_f32, int n_threads,
                              int release_pages) {
    if (n_ctx <= 0 || chunk <= 0 || n_threads <= 0) return NULL;
    er_session *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->m = m;
    s->n_ctx = n_ctx;
    s->chunk = chunk;
    s->kv_f32 = kv_f32;
    s->release_pages = release_pages;
    const int E = m->n_embd, D = m->head_dim, Q = m->n_head * D, K = m->n_head_kv * D, F = m->n_ff;
    const size_t T = (size_t)chunk, f = sizeof(float);
    const int widest_in = E > Q ? (E > F ? E : F) : (Q > F ? Q : F);
    s->kv_row = (size_t)K * (kv_f32 ? 4 : 2);
    size_t *sb = &s->bytes.scratch;

    s->pool = er_pool_create(n_threads);
    s->ring = calloc((size_t)m->n_layer, sizeof(int));
    s->k_cache = calloc((size_t)m->n_layer, sizeof(uint8_t *));
    s->v_cache = calloc((size_t)m->n_layer, sizeof(uint8_t *));
    if (!s->pool || !s->ring || !s->k_cache || !s->v_cache) goto fail;
    for (int il = 0; il < m->n_layer; il++) {
        const int w = m->sliding_window;
        s->ring[il] = m->is_swa[il] && w < n_ctx ? w : n_ctx;
        s->k_cache[il] = track(&s->bytes.kv, (size_t)s->ring[il] * s->kv_row);
        s->v_cache[il] = track(&s->bytes.kv, (size_t)s->ring[il] * s->kv_row);
        if (!s->k_cache[il] || !s->v_cache[il]) goto fail;
    }
    s->x = track(sb, T * E * f);
    s->xn = track(sb, T * (E > Q ? E : Q) * f);
    s->q = track(sb, T * Q * f);
    s->k = track(sb, T * K * f);
    s->v = track(sb, T * K * f);
    s->att = track(sb, T * Q * f);
    s->gate = track(sb, T * F * f);
    s->up = track(sb, T * F * f);
    s->cs = track(sb, 2 * T * (D / 2) * f);
    s->sn = track(sb, 2 * T * (D / 2) * f);
    s->k_stage = track(sb, T * s->kv_row);
    s->v_stage = track(sb, T * s->kv_row);
    s->xq = track(sb, T * (widest_in / QK8_0) * sizeof(block_q8_act));
    s->scores = track(&s->bytes.scores,
                      (size_t)n_threads * (m->n_head / m->n_head_kv) * n_ctx * f);
    if (!s->x || !s->xn || !s->q || !s->k || !s->v || !s->att || !s->gate || !s->up || !s->cs ||
        !s->sn || !s->k_stage || !s->v_stage || !s->xq || !s->scores)
        goto fail;
    return s;
fail:
    er_session_destroy(s);
    return NULL;
}

er_session_bytes er_session_sizes(const er_session *s) { return s->bytes; }

int er_session_n_past(const er_session *s) { return s->n_past; }

int er_session_truncate(er_session *s, int n) {
    if (n < 0 || n > s->n_past) return -1;
    for (int il = 0; il < s->m->n_layer; il++)   /* a wrapped ring cannot be rewound (but emptied) */
        if (s->n_past > s->ring[il] && n != s->n_past && n != 0) return -1;
    s->n_past = n;
    return 0;
}

/* ---- snapshots ----------------------------------------------------------------------- */

#define SNAP_MAGIC 0x4b565331u   /* "KVS1" */

typedef struct {
    uint32_t magic, n_layer, kv_row, n_past;
} snap_header;

static size_t used_slots(const er_session *s, int il, int n_past) {
    return (size_t)(n_past < s->ring[il] ? n_past : s->ring[il]);
}

size_t er_session_state_bytes(const er_session *s) {
    size_t n = sizeof(snap_header) + (size_t)s->m->n_layer * sizeof(uint32_t);
    for (int il = 0; il < s->m->n_layer; il++) n += 2 * used_slots(s, il, s->n_past) * s->kv_row;
    return n;
}

void er_session_state_save(const er_session *s, uint8_t *out) {
    const snap_header h = {SNAP_MAGIC, (uint32_t)s->m->n_layer, (uint32_t)s->kv_row,
                           (uint32_t)s->n_past};
    memcpy(out, &h, sizeof h);
    out += sizeof h;
    for (int il = 0; il < s->m->n_layer; il++, out += sizeof(uint32_t)) {
        const uint32_t ring = (uint32_t)s->ring[il];
        memcpy(out, &ring, sizeof ring);
    }
    for (int il = 0; il < s->m->n_layer; il++) {
        const size_t bytes = used_slots(s, il, s->n_past) * s->kv_row;
        memcpy(out, s->k_cache[il], bytes);
        memcpy(out + bytes, s->v_cache[il], bytes);
        out += 2 * bytes;
    }
}

static int write_at(int fd, uint64_t off, const void *src, size_t n) {
    const uint8_t *p = src;
    while (n > 0) {
        const ssize_t put = pwrite(fd, p, n, (off_t)off);
        if (put < 0 && errno == EINTR) continue;
        if (put < 0) return -1;
        p += put;
        off += (uint64_t)put;
        n -= (size_t)put;
    }
    return 0;
}

int er_session_state_write(const er_session *s, int fd, uint64_t base) {
    const snap_header h = {SNAP_MAGIC, (uint32_t)s->m->n_layer, (uint32_t)s->kv_row,
                           (uint32_t)s->n_past};
    if (write_at(fd, base, &h, sizeof h)) return -1;
    uint64_t at = base + sizeof h;
    for (int il = 0; il < s->m->n_layer; il++, at += sizeof(uint32_t)) {
        const uint32_t ring = (uint32_t)s->ring[il];
        if (write_at(fd, at, &ring, sizeof ring)) return -1;
    }
    for (int il = 0; il < s->m->n_layer; il++) {
        const size_t bytes = used_slots(s, il, s->n_past) * s->kv_row;
        if (write_at(fd, at, s->k_cache[il], bytes) || write_at(fd, at + bytes, s->v_cache[il], bytes))
            return -1;
        at += 2 * bytes;
    }
    return 0;
}

static int src_read(const er_state_src *src, uint64_t off, void *dst, size_t n) {
    if (off > src->size || n > src->size - off) return -1;
    if (src->buf) {
        memcpy(dst, src->buf + off, n);
        return 0;
    }
    uint8_t *p = dst;
    for (off += src->base; n > 0;) {
        const ssize_t got = pread(src->fd, p, n, (off_t)off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;   /* error, or the file is shorter than it said */
        p += got;
        off += (uint64_t)got;
        n -= (size_t)got;
    }
    return 0;
}

/* Slots [lo, hi) of layer il, K and V, from the layer's data at `at` in the source. */
static int load_slots(er_session *s, const er_state_src *src, uint64_t at, size_t used, int il,
                      size_t lo, size_t hi) {
    if (hi > used) hi = used;
    if (lo >= hi) return 0;
    const size_t row = s->kv_row, n = (hi - lo) * row;
    return src_read(src, at + lo * row, s->k_cache[il] + lo * row, n) ||
           src_read(src, at + used * row + lo * row, s->v_cache[il] + lo * row, n);
}

int er_session_state_load(er_session *s, const er_state_src *src, int continued) {
    const int n_layer = s->m->n_layer;
    snap_header h;
    const uint64_t head = sizeof h + (uint64_t)n_layer * sizeof(uint32_t);
    if (src->size < head || src_read(src, 0, &h, sizeof h)) return ER_STATE_FOREIGN;
    if (h.magic != SNAP_MAGIC || h.n_layer != (uint32_t)n_layer ||
        h.kv_row != s->kv_row || h.n_past > (uint32_t)s->n_ctx)
        return ER_STATE_FOREIGN;
    const int p = (int)h.n_past;
    uint64_t need = head;
    for (int il = 0; il < n_layer; il++) {
        uint32_t ring;
        if (src_read(src, sizeof h + (uint64_t)il * sizeof ring, &ring, sizeof ring) ||
            ring != (uint32_t)s->ring[il])
            return ER_STATE_FOREIGN;
        need += 2 * used_slots(s, il, p) * s->kv_row;
    }
    if (src->size != need) return ER_STATE_FOREIGN;
    /* Positions p..n_past-1 were written to slots pos % ring: at most `ring` of them, from
     * p % ring on, wrapping. Only those below the prefix's used slots held prefix data. */
    const int partial = continued && s->n_past >= p;
    uint64_t at = head;
    for (int il = 0; il < n_layer; il++) {
        const size_t used = used_slots(s, il, p), ring = (size_t)s->ring[il];
        int bad;
        if (!partial) {
            bad = load_slots(s, src, at, used, il, 0, used);
        } else {
            const size_t later = (size_t)(s->n_past - p) < ring ? (size_t)(s->n_past - p) : ring;
            const size_t lo = (size_t)p % ring, hi = lo + later;
            bad = load_slots(s, src, at, used, il, lo, hi < ring ? hi : ring) ||
                  (hi > ring && load_slots(s, src, at, used, il, 0, hi - ring));
        }
        if (bad) {
            s->n_past = 0;
            return ER_STATE_READ_FAILED;
        }
        at += 2 * used * s->kv_row;
    }
    s->n_past = p;
    return 0;
}
