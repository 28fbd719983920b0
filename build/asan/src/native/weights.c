/* Points an er_model at tensors inside the GGUF mapping, checking every shape and bound
 * again on the C side so no descriptor can make the decoder read outside the file. */
#include <stdlib.h>
#include <string.h>

#include "gemma3.h"
#include "ops.h"

static size_t tensor_bytes(int type, int64_t ne0, int64_t ne1) {
    const size_t n = (size_t)ne0 * (size_t)ne1;
    switch (type) {
    case ER_Q8_0: return n / QK8_0 * sizeof(block_q8_0);
    case ER_F32: return n * 4;
    case ER_F16: case ER_BF16: return n * 2;
    default: return 0;
    }
}

static const char *check(const er_tensor_desc *d, uint64_t size, int64_t ne0, int64_t ne1) {
    if (!d->present) return "missing tensor";
    if (tensor_bytes(d->type, d->ne0, d->ne1) == 0) return "unsupported tensor type";
    if (d->type == ER_Q8_0 && d->ne0 % QK8_0) return "Q8_0 row not a multiple of 32";
    if (d->ne0 != ne0 || d->ne1 != ne1) return "tensor shape does not match the config";
    if (d->offset > size || tensor_bytes(d->type, d->ne0, d->ne1) > size - d->offset)
        return "tensor outside the file";
    return NULL;
}

static const char *bind_mat(er_mat *w, const uint8_t *base, uint64_t size,
                            const er_tensor_desc *d, int64_t cols, int64_t rows) {
    const char *err = check(d, size, cols, rows);
    if (err) return err;
    w->data = base + d->offset;
    w->type = d->type;
    w->cols = (int)cols;
    w->rows = (int)rows;
    return NULL;
}

/* Norms are read as f32; other float types are widened once into `*owned`. */
static const char *bind_norm(const float **out, float **owned, const uint8_t *base, uint64_t size,
                             const er_tensor_desc *d, int64_t n) {
    const char *err = check(d, size, n, 1);
    if (err) return err;
    if (d->type == ER_Q8_0) return "norm weights must be F32, F16 or BF16";
    if (d->type == ER_F32) { *out = (const float *)(base + d->offset); return NULL; }
    er_dequant_row(base + d->offset, d->type, 0, (int)n, *owned);
    *out = *owned;
    *owned += n;
    return NULL;
}

const char *er_model_init(er_model *m, const uint8_t *base, uint64_t size,
                          const er_tensor_desc *g, const er_tensor_desc *layers) {
    const int64_t E = m->n_embd, D = m->head_dim, Q = (int64_t)m->n_head * D;
    const int64_t K = (int64_t)m->n_head_kv * D, F = m->n_ff, V = m->n_vocab;
    const char *err;
    m->kernel = er_q8_0_select();
    if (!m->kernel) return "ER_KERNEL names a kernel this CPU cannot run";
    m->layers = calloc((size_t)m->n_layer, sizeof(er_layer));
    m->owned_norms = calloc((size_t)m->n_layer * (4 * E + 2 * D) + E, sizeof(float));
    if (!m->layers || !m->owned_norms) return "out of memory";
    float *owned = m->owned_norms;
    if ((err = bind_mat(&m->tok_embd, base, size, &g[ER_T_TOK_EMBD], E, V))) return err;
    if (g[ER_T_OUTPUT].present) {
        if ((err = bind_mat(&m->output, base, size, &g[ER_T_OUTPUT], E, V))) return err;
    } else {
        m->output = m->tok_embd;
    }
    if ((err = bind_norm(&m->output_norm, &owned, base, size, &g[ER_T_OUTPUT_NORM], E))) return err;
    for (int il = 0; il < m->n_layer; il++) {
        const er_tensor_desc *d = layers + (size_t)il * ER_T_PER_LAYER;
        er_layer *L = &m->layers[il];
        if ((err = bind_mat(&L->wq, base, size, &d[ER_T_WQ], E, Q)) ||
            (err = bind_mat(&L->wk, base, size, &d[ER_T_WK], E, K)) ||
            (err = bind_mat(&L->wv, base, size, &d[ER_T_WV], E, K)) ||
            (err = bind_mat(&L->wo, base, size, &d[ER_T_WO], Q, E)) ||
            (err = bind_mat(&L->gate, base, size, &d[ER_T_GATE], E, F)) ||
            (err = bind_mat(&L->up, base, size, &d[ER_T_UP], E, F)) ||
            (err = bind_mat(&L->down, base, size, &d[ER_T_DOWN], F, E)) ||
            (err = bind_norm(&L->attn_norm, &owned, base, size, &d[ER_T_ATTN_NORM], E)) ||
            (err = bind_norm(&L->q_norm, &owned, base, size, &d[ER_T_Q_NORM], D)) ||
            (err = bind_norm(&L->k_norm, &owned, base, size, &d[ER_T_K_NORM], D)) ||
            (err = bind_norm(&L->post_attn_norm, &owned, base, size, &d[ER_T_POST_ATTN_NORM], E)) ||
            (err = bind_norm(&L->ffn_norm, &owned, base, size, &d[ER_T_FFN_NORM], E)) ||
            (err = bind_norm(&L->post_ffw_norm, &owned, base, size, &d[ER_T_POST_FFW_NORM], E)))
            return err;
        /* the layer's byte range, for page release */
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int j = 0; j < ER_T_PER_LAYER; j++) {
            const uint64_t end = d[j].offset + tensor_bytes(d[j].type, d[j].ne0, d[j].ne1);
            if (d[j].offset < lo) lo = d[j].offset;
            if (end > hi) hi = end;
        }
        L->lo = base + lo;
        L->hi = base + hi;
    }
    return NULL;
}

void er_model_free(er_model *m) {
    free(m->layers);
    free(m->owned_norms);
    free(m->is_swa);
    memset(m, 0, sizeof *m);
}
