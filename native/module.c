/* The one door between CPython and the C core (limited API, abi3).
 *
 * The decoder's buffers cross as (address, length) pairs taken from numpy arrays, checked
 * here against what the call will touch; dimensions and sizes are checked here too, so no
 * argument can make the core overflow an int or read outside a buffer. Tensors, dimensions
 * and return codes cross by name (the tables below are their one definition): Python reads
 * the names from this module, so nothing is bound by position. The test-only kernel entry
 * points are the submodule `testing` (testing.c). */
#include "door.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "gemma3.h"
#include "q8_0.h"
#include "spm.h"  /* tokenizer section */

/* ---- kernels ----------------------------------------------------------------------------- */

static PyObject *py_kernels(PyObject *self, PyObject *args) {
    (void)self; (void)args;
    int n = 0;
    const er_q8_0_kernel *k = er_q8_0_kernels(&n);
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (int i = 0; i < n; i++) PyList_SetItem(list, i, PyUnicode_FromString(k[i].name));
    return list;
}

static PyObject *py_selected_kernel(PyObject *self, PyObject *args) {
    (void)self; (void)args;
    const er_q8_0_kernel *k = er_q8_0_select();
    if (!k) {
        PyErr_SetString(PyExc_ValueError, "ER_KERNEL names a kernel this CPU cannot run");
        return NULL;
    }
    return PyUnicode_FromString(k->name);
}



/* ---- decoder: model and session handles (capsules) ------------------------------------ */

#define MODEL_CAPSULE "edge_runtime.model"
#define SESSION_CAPSULE "edge_runtime.session"
#define MAX_THREADS 1024

int er_buffer_arg(PyObject *pair, const char *what, size_t need, int exact, void **out,
                  size_t *given) {
    unsigned long long addr, len;
    if (!PyTuple_Check(pair) || PyTuple_Size(pair) != 2) {
        PyErr_Format(PyExc_TypeError, "%s must be an (address, length) pair", what);
        return -1;
    }
    if (!PyArg_ParseTuple(pair, "KK", &addr, &len)) return -1;
    if (!addr) {
        PyErr_Format(PyExc_ValueError, "%s: null address", what);
        return -1;
    }
    if (exact ? len != need : len < need) {
        PyErr_Format(PyExc_ValueError, "%s: %llu bytes given, %s%zu needed", what, len,
                     exact ? "" : "at least ", need);
        return -1;
    }
    *out = (void *)(uintptr_t)addr;
    if (given) *given = (size_t)len;
    return 0;
}

/* A capsule for p whose context holds a reference to owner (what p points into or runs on),
 * released with it; NULL (p left to the caller) if it cannot be made. */
static PyObject *owning_capsule(void *p, const char *name, PyCapsule_Destructor destroy,
                                PyObject *owner) {
    PyObject *cap = PyCapsule_New(p, name, destroy);
    if (!cap) return NULL;
    Py_INCREF(owner);
    PyCapsule_SetContext(cap, owner);
    return cap;
}

/* The model capsule's context is the object that owns the mapping: the weights stay mapped
 * as long as the model (and so every session on it) exists. */
static void model_capsule_free(PyObject *cap) {
    er_model *m = PyCapsule_GetPointer(cap, MODEL_CAPSULE);
    PyObject *owner = PyCapsule_GetContext(cap);
    if (m) { er_model_free(m); free(m); }
    Py_XDECREF(owner);
}

/* The names tensors cross the door by: GGUF's short names (blk.N.<name>.weight). */
static const char *const LAYER_TENSORS[ER_T_PER_LAYER] = {
    [ER_T_WQ] = "attn_q", [ER_T_WK] = "attn_k", [ER_T_WV] = "attn_v", [ER_T_WO] = "attn_output",
    [ER_T_GATE] = "ffn_gate", [ER_T_UP] = "ffn_up", [ER_T_DOWN] = "ffn_down",
    [ER_T_ATTN_NORM] = "attn_norm", [ER_T_Q_NORM] = "attn_q_norm", [ER_T_K_NORM] = "attn_k_norm",
    [ER_T_POST_ATTN_NORM] = "post_attention_norm", [ER_T_FFN_NORM] = "ffn_norm",
    [ER_T_POST_FFW_NORM] = "post_ffw_norm",
};
static const char *const GLOBAL_TENSORS[ER_T_GLOBAL] = {
    [ER_T_TOK_EMBD] = "token_embd", [ER_T_OUTPUT] = "output", [ER_T_OUTPUT_NORM] = "output_norm",
};

/* The model's dimensions by name; query_pre_attn_scalar becomes attn_scale. */
typedef struct {
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, sliding_window;
    float eps, rope_base_global, rope_base_local, rope_scale_global, softcap, query_pre_attn_scalar;
} model_dims;
#define INT_DIM(f) {#f, offsetof(model_dims, f), 0}
#define FLOAT_DIM(f) {#f, offsetof(model_dims, f), 1}
static const struct { const char *name; size_t offset; int is_float; } DIMS[] = {
    INT_DIM(n_vocab), INT_DIM(n_embd), INT_DIM(n_layer), INT_DIM(n_head), INT_DIM(n_head_kv),
    INT_DIM(head_dim), INT_DIM(n_ff), INT_DIM(sliding_window), FLOAT_DIM(eps),
    FLOAT_DIM(rope_base_global), FLOAT_DIM(rope_base_local), FLOAT_DIM(rope_scale_global),
    FLOAT_DIM(softcap), FLOAT_DIM(query_pre_attn_scalar),
};
#undef INT_DIM
#undef FLOAT_DIM
#define N_DIMS ((Py_ssize_t)(sizeof DIMS / sizeof DIMS[0]))

/* The key of d that is not among names[0..n), or NULL (d holds exactly n str keys then, if
 * its size is n). */
static PyObject *unknown_key(PyObject *d, const char *const *names, Py_ssize_t n) {
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(d, &pos, &key, &value)) {
        int known = 0;
        for (Py_ssize_t i = 0; i < n && !known; i++) {
            PyObject *name = PyUnicode_FromString(names[i]);
            if (!name) return NULL;
            known = PyUnicode_Check(key) && PyUnicode_Compare(key, name) == 0;
            Py_DECREF(name);
        }
        if (!known) return key;
    }
    return NULL;
}

/* Check that d is a dict keyed by exactly names[0..n); what names it in errors. */
static int exact_keys(PyObject *d, const char *const *names, Py_ssize_t n, const char *what) {
    if (!PyDict_Check(d)) {
        PyErr_Format(PyExc_TypeError, "%s must be a dict keyed by name", what);
        return -1;
    }
    PyObject *extra = unknown_key(d, names, n);
    if (PyErr_Occurred()) return -1;
    if (extra) {
        PyErr_Format(PyExc_ValueError, "%s: unknown name %R", what, extra);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (!PyDict_GetItemString(d, names[i])) {
            PyErr_Format(PyExc_ValueError, "%s: %s is missing", what, names[i]);
            return -1;
        }
    return 0;
}

static int read_desc(PyObject *item, er_tensor_desc *d) {
    if (item == Py_None) { d->present = 0; return 0; }
    unsigned long long off;
    long long ne0, ne1;
    if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "KiLL", &off, &d->type, &ne0, &ne1)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "a tensor descriptor is (offset, type, ne0, ne1)");
        return -1;
    }
    d->offset = off; d->ne0 = ne0; d->ne1 = ne1; d->present = 1;
    return 0;
}

/* out[i] = the descriptor d holds under names[i]. */
static int read_descs(PyObject *d, const char *const *names, Py_ssize_t n, er_tensor_desc *out,
                      const char *what) {
    if (exact_keys(d, names, n, what) < 0) return -1;
    for (Py_ssize_t i = 0; i < n; i++)
        if (read_desc(PyDict_GetItemString(d, names[i]), &out[i]) < 0) return -1;
    return 0;
}

static int read_dims(PyObject *d, model_dims *out) {
    const char *names[N_DIMS];
    for (Py_ssize_t i = 0; i < N_DIMS; i++) names[i] = DIMS[i].name;
    if (exact_keys(d, names, N_DIMS, "dims") < 0) return -1;
    for (Py_ssize_t i = 0; i < N_DIMS; i++) {
        PyObject *v = PyDict_GetItemString(d, DIMS[i].name);
        char *field = (char *)out + DIMS[i].offset;
        if (DIMS[i].is_float) {
            const double x = PyFloat_AsDouble(v);
            if (x == -1.0 && PyErr_Occurred()) return -1;
            *(float *)field = (float)x;
        } else {
            const long x = PyLong_AsLong(v);
            if (x == -1 && PyErr_Occurred()) return -1;
            if (x < INT_MIN || x > INT_MAX) {
                PyErr_Format(PyExc_ValueError, "dims: %s is out of range", DIMS[i].name);
                return -1;
            }
            *(int *)field = (int)x;
        }
    }
    return 0;
}

/* Dimensions the decoder can run: every width it multiplies as an int stays below INT_MAX. */
static const char *dims_error(const er_model *m, const char *swa) {
    if (m->n_vocab < 1 || m->n_embd < 1 || m->n_layer < 1 || m->n_head < 1 || m->n_head_kv < 1 ||
        m->head_dim < 1 || m->n_ff < 1 || m->sliding_window < 0)
        return "model dimensions must be positive";
    if (m->n_layer > 1 << 16) return "too many layers";
    if (m->n_head % m->n_head_kv || m->n_embd % QK8_0 || m->head_dim % 2)
        return "inconsistent model dimensions";
    if ((int64_t)m->n_head * m->head_dim > INT_MAX)
        return "model dimensions overflow the decoder's sizes";
    for (int il = 0; il < m->n_layer; il++) {
        if (swa[il] != 0 && swa[il] != 1) return "sliding-window flags must be 0 or 1";
        if (swa[il] && m->sliding_window < 1) return "a sliding-window layer needs a window of at least 1";
    }
    if (!(m->attn_scale > 0.0f && m->attn_scale < INFINITY))
        return "query_pre_attn_scalar must be positive and finite";
    return NULL;
}

/* model_new(owner, (base, size), dims: {name: value}, swa: bytes, global: {name: desc},
 * layers: [{name: desc}] * n_layer): owner keeps the mapping at base alive; the capsule holds
 * a reference to it. A descriptor is (offset, type, ne0, ne1), or None for a tied output. */
static PyObject *py_model_new(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *owner, *mapping, *dims, *gl, *ll;
    const char *swa;
    Py_ssize_t swa_len;
    if (!PyArg_ParseTuple(args, "OOOy#OO", &owner, &mapping, &dims, &swa, &swa_len, &gl, &ll))
        return NULL;
    unsigned long long base_addr, size;
    if (!PyTuple_Check(mapping) || !PyArg_ParseTuple(mapping, "KK", &base_addr, &size)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "the mapping must be an (address, length) pair");
        return NULL;
    }
    if (!base_addr || owner == Py_None) {
        PyErr_SetString(PyExc_ValueError, "model_new needs a mapping and the object that owns it");
        return NULL;
    }
    const uint8_t *base = (const uint8_t *)(uintptr_t)base_addr;
    model_dims d;
    if (read_dims(dims, &d) < 0) return NULL;
    er_model *m = calloc(1, sizeof *m);
    if (!m) return PyErr_NoMemory();
    m->n_vocab = d.n_vocab; m->n_embd = d.n_embd; m->n_layer = d.n_layer; m->n_head = d.n_head;
    m->n_head_kv = d.n_head_kv; m->head_dim = d.head_dim; m->n_ff = d.n_ff;
    m->sliding_window = d.sliding_window; m->eps = d.eps;
    m->rope_base_global = d.rope_base_global; m->rope_base_local = d.rope_base_local;
    m->rope_scale_global = d.rope_scale_global; m->softcap = d.softcap;
    m->attn_scale = 1.0f / sqrtf(d.query_pre_attn_scalar);   /* as llama.cpp rounds it */
    const char *bad = swa_len != m->n_layer ? "one sliding-window flag per layer is needed"
                    : !PyList_Check(ll) || PyList_Size(ll) != m->n_layer
                        ? "layers must be a list of one dict per layer"
                    : dims_error(m, swa);
    if (bad) {
        free(m);
        PyErr_SetString(PyExc_ValueError, bad);
        return NULL;
    }
    m->is_swa = malloc((size_t)m->n_layer);
    er_tensor_desc g[ER_T_GLOBAL];
    er_tensor_desc *l = calloc((size_t)m->n_layer * ER_T_PER_LAYER, sizeof *l);
    if (!m->is_swa || !l) { free(l); er_model_free(m); free(m); return PyErr_NoMemory(); }
    memcpy(m->is_swa, swa, (size_t)m->n_layer);
    const char *err = NULL;
    int failed = read_descs(gl, GLOBAL_TENSORS, ER_T_GLOBAL, g, "global tensors") < 0;
    for (int il = 0; il < m->n_layer && !failed; il++)
        failed = read_descs(PyList_GetItem(ll, il), LAYER_TENSORS, ER_T_PER_LAYER,
                            l + (size_t)il * ER_T_PER_LAYER, "layer tensors") < 0;
    err = failed ? "" : er_model_init(m, base, size, g, l);
    free(l);
    if (err) {
        if (*err) PyErr_SetString(PyExc_ValueError, err);
        er_model_free(m);
        free(m);
        return NULL;
    }
    PyObject *cap = owning_capsule(m, MODEL_CAPSULE, model_capsule_free, owner);
    if (!cap) { er_model_free(m); free(m); }
    return cap;
}

static PyObject *py_model_kernel(PyObject *self, PyObject *cap) {
    (void)self;
    er_model *m = PyCapsule_GetPointer(cap, MODEL_CAPSULE);
    return m ? PyUnicode_FromString(m->kernel->name) : NULL;
}

static void session_capsule_free(PyObject *cap) {
    er_session *s = PyCapsule_GetPointer(cap, SESSION_CAPSULE);
    er_session_destroy(s);
    Py_XDECREF((PyObject *)PyCapsule_GetContext(cap));   /* the model it ran on */
}

/* A session's buffers: chunk × widths are indexed with int, byte sizes must fit size_t. */
static const char *session_error(const er_model *m, int n_ctx, int chunk, int threads) {
    if (n_ctx < 1 || chunk < 1) return "max_inference_len and prefill_chunk must be positive";
    if (threads < 1 || threads > MAX_THREADS) return "threads must be in 1..1024";
    const int64_t Q = (int64_t)m->n_head * m->head_dim, K = (int64_t)m->n_head_kv * m->head_dim;
    int64_t widest = m->n_embd > m->n_ff ? m->n_embd : m->n_ff;
    widest = widest > Q ? widest : Q;
    if ((int64_t)chunk * widest > INT_MAX || (int64_t)chunk * m->n_head > INT_MAX)
        return "prefill_chunk is too large for this model's widths";
    const uint64_t f = sizeof(float);
    if ((uint64_t)chunk * widest * f > SIZE_MAX / 2 || (uint64_t)n_ctx * K * f > SIZE_MAX / 2 ||
        (uint64_t)threads * n_ctx * f > SIZE_MAX / 2)
        return "the session's buffers would not fit in the address space";
    return NULL;
}

/* session_new(model, n_ctx, chunk, kv_f32, threads, release_pages) */
static PyObject *py_session_new(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *mcap;
    int n_ctx, chunk, kv_f32, threads, release;
    if (!PyArg_ParseTuple(args, "Oiiiii", &mcap, &n_ctx, &chunk, &kv_f32, &threads, &release))
        return NULL;
    er_model *m = PyCapsule_GetPointer(mcap, MODEL_CAPSULE);
    if (!m) return NULL;
    const char *bad = session_error(m, n_ctx, chunk, threads);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, bad);
        return NULL;
    }
    er_session *s = er_session_create(m, n_ctx, chunk, kv_f32, threads, release);
    if (!s) return PyErr_NoMemory();
    PyObject *cap = owning_capsule(s, SESSION_CAPSULE, session_capsule_free, mcap);
    if (!cap) er_session_destroy(s);
    return cap;
}

/* session_eval(session, tokens: (addr, len), n, logits: (addr, len) | None,
 *              rows: (addr, len) | None, n_rows) */
static PyObject *py_session_eval(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap, *tok, *lg, *rw;
    int n, n_rows;
    if (!PyArg_ParseTuple(args, "OOiOOi", &cap, &tok, &n, &lg, &rw, &n_rows)) return NULL;
    er_session *s = PyCapsule_GetPointer(cap, SESSION_CAPSULE);
    if (!s) return NULL;
    const er_model *m = PyCapsule_GetPointer(PyCapsule_GetContext(cap), MODEL_CAPSULE);
    if (!m) return NULL;
    const char *bad = n < 1 ? "eval needs at least one token"
                    : n_rows < 0 ? "n_rows must not be negative"
                    : rw == Py_None && n_rows ? "n_rows is set but no rows buffer was given"
                    : rw != Py_None && !n_rows ? "a rows buffer needs n_rows >= 1"
                    : rw != Py_None && lg == Py_None ? "rows were given without a logits buffer"
                    : NULL;
    if (bad) {
        PyErr_SetString(PyExc_ValueError, bad);
        return NULL;
    }
    void *tokens, *logits = NULL, *rows = NULL;
    const size_t n_out = rw != Py_None ? (size_t)n_rows : (size_t)m->n_vocab;
    if (er_buffer_arg(tok, "tokens", (size_t)n * sizeof(int32_t), 1, &tokens, NULL) < 0 ||
        (lg != Py_None && er_buffer_arg(lg, "logits", n_out * sizeof(float), 0, &logits, NULL) < 0) ||
        (rw != Py_None && er_buffer_arg(rw, "rows", (size_t)n_rows * sizeof(int32_t), 1, &rows, NULL) < 0))
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = er_session_eval(s, tokens, n, logits, rows, n_rows);
    Py_END_ALLOW_THREADS
    if (rc == ER_EVAL_CONTEXT)
        return PyErr_Format(PyExc_ValueError, "%d new tokens do not fit after the %d in context",
                            n, er_session_n_past(s));
    if (rc == ER_EVAL_TOKEN_ID)
        return PyErr_Format(PyExc_ValueError, "token id out of range 0..%d", m->n_vocab - 1);
    if (rc == ER_EVAL_ROW_ID)
        return PyErr_Format(PyExc_ValueError, "row id out of range 0..%d", m->n_vocab - 1);
    Py_RETURN_NONE;
}

static PyObject *py_session_n_past(PyObject *self, PyObject *cap) {
    (void)self;
    er_session *s = PyCapsule_GetPointer(cap, SESSION_CAPSULE);
    return s ? PyLong_FromLong(er_session_n_past(s)) : NULL;
}

static PyObject *py_session_truncate(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap;
    int n;
    if (!PyArg_ParseTuple(args, "Oi", &cap, &n)) return NULL;
    er_session *s = PyCapsule_GetPointer(cap, SESSION_CAPSULE);
    if (!s) return NULL;
    return PyBool_FromLong(er_session_truncate(s, n) == 0);
}

static PyObject *py_session_sizes(PyObject *self, PyObject *cap) {
    (void)self;
    er_session *s = PyCapsule_GetPointer(cap, SESSION_CAPSULE);
    if (!s) return NULL;
    er_session_bytes b = er_session_sizes(s);
    return Py_BuildValue("{s:n,s:n,s:n}", "kv", (Py_ssize_t)b.kv, "scratch", (Py_ssize_t)b.scratch,
                         "scores", (Py_ssize_t)b.scores);
}

/* ---- tokenizer (spm.c) -- BEGIN tokenizer section ------------------------------------- */

#define VOCAB_CAPSULE "edge_runtime.er_vocab"

/* The vocabulary capsule's context is what owns the three buffers the index points into. */
static void vocab_capsule_free(PyObject *cap) {
    er_vocab_free(PyCapsule_GetPointer(cap, VOCAB_CAPSULE));
    Py_XDECREF((PyObject *)PyCapsule_GetContext(cap));
}

/* vocab_new(owner, base, offsets, scores, n_vocab) -> capsule. base: the mapping the token
 * strings are in; offsets: n_vocab int64, where each string's bytes start (its u64 length
 * precedes them); scores: n_vocab float32. owner keeps all three alive: the capsule holds a
 * reference to it. */
static PyObject *py_vocab_new(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *owner, *base, *offsets, *scores;
    int n;
    if (!PyArg_ParseTuple(args, "OOOOi", &owner, &base, &offsets, &scores, &n)) return NULL;
    if (n <= 0) {
        PyErr_SetString(PyExc_ValueError, "tokenizer: empty vocabulary");
        return NULL;
    }
    void *B, *O, *S;
    size_t size;
    if (er_buffer_arg(base, "base", 0, 0, &B, &size) < 0 ||
        er_buffer_arg(offsets, "offsets", (size_t)n * sizeof(int64_t), 1, &O, NULL) < 0 ||
        er_buffer_arg(scores, "scores", (size_t)n * sizeof(float), 1, &S, NULL) < 0)
        return NULL;
    for (int id = 0; id < n; id++) {   /* every string inside the mapping */
        const int64_t at = ((const int64_t *)O)[id];
        uint64_t len;
        if (at < 8 || (uint64_t)at > size) goto outside;
        memcpy(&len, (const uint8_t *)B + at - 8, 8);
        if (len > size - (uint64_t)at) goto outside;
        continue;
    outside:
        return PyErr_Format(PyExc_ValueError, "tokenizer: token %d lies outside the mapping", id);
    }
    int32_t a, b;
    er_vocab *v = er_vocab_new(B, O, S, n, &a, &b);
    if (!v) {
        if (a >= 0)
            return PyErr_Format(PyExc_ValueError,
                                "tokenizer: duplicate token in vocabulary (ids %d and %d)", a, b);
        return PyErr_NoMemory();
    }
    PyObject *cap = owning_capsule(v, VOCAB_CAPSULE, vocab_capsule_free, owner);
    if (!cap) er_vocab_free(v);
    return cap;
}

static PyObject *py_vocab_find(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap;
    const char *s;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "Oy#", &cap, &s, &n)) return NULL;
    er_vocab *v = PyCapsule_GetPointer(cap, VOCAB_CAPSULE);
    if (!v) return NULL;
    return PyLong_FromLong(er_vocab_find(v, (const uint8_t *)s, (size_t)n));
}

/* spm_encode(vocab, fragment) -> list of ids; the fragment's spaces are already escaped. */
static PyObject *py_spm_encode(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap;
    const char *s;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "Oy#", &cap, &s, &n)) return NULL;
    er_vocab *v = PyCapsule_GetPointer(cap, VOCAB_CAPSULE);
    if (!v) return NULL;
    if (n >= INT32_MAX / 4) {
        PyErr_SetString(PyExc_ValueError, "tokenizer: text fragment longer than 512 MiB");
        return NULL;
    }
    int32_t *ids = PyMem_Malloc(sizeof(int32_t) * (n ? (size_t)n : 1));
    if (!ids) return PyErr_NoMemory();
    int64_t count;
    Py_BEGIN_ALLOW_THREADS
    count = er_spm_encode(v, (const uint8_t *)s, (size_t)n, ids);
    Py_END_ALLOW_THREADS
    PyObject *list = NULL;
    if (count == -1) {
        PyErr_NoMemory();
    } else if (count == -2) {
        PyErr_SetString(PyExc_ValueError,
                        "tokenizer: text needs a byte-fallback token the vocabulary lacks");
    } else if ((list = PyList_New((Py_ssize_t)count))) {
        for (int64_t i = 0; i < count; i++) {
            PyObject *id = PyLong_FromLong(ids[i]);
            if (!id) {
                Py_CLEAR(list);
                break;
            }
            PyList_SetItem(list, (Py_ssize_t)i, id);
        }
    }
    PyMem_Free(ids);
    return list;
}

/* ---- END tokenizer section ------------------------------------------------------------- */

/* session_state(session) -> bytes: a snapshot of the KV state */
static PyObject *py_session_state(PyObject *self, PyObject *cap) {
    (void)self;
    er_session *s = PyCapsule_GetPointer(cap, SESSION_CAPSULE);
    if (!s) return NULL;
    const size_t n = er_session_state_bytes(s);
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (!out) return NULL;
    er_session_state_save(s, (uint8_t *)PyBytes_AsString(out));
    return out;
}

/* session_state_write(session, fd, offset) -> bytes written (OSError on failure) */
static PyObject *py_session_state_write(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap;
    int fd;
    unsigned long long base;
    if (!PyArg_ParseTuple(args, "OiK", &cap, &fd, &base)) return NULL;
    er_session *s = PyCapsule_GetPointer(cap, SESSION_CAPSULE);
    if (!s) return NULL;
    if (fd < 0 || base > (unsigned long long)INT64_MAX / 2) {
        PyErr_SetString(PyExc_ValueError, "session_state_write: bad descriptor or offset");
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = er_session_state_write(s, fd, base);
    Py_END_ALLOW_THREADS
    if (rc) return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromSize_t(er_session_state_bytes(s));
}

static PyObject *state_load(PyObject *cap, const er_state_src *src, int continued) {
    er_session *s = PyCapsule_GetPointer(cap, SESSION_CAPSULE);
    if (!s) return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS   /* a file read may wait on the disk */
    rc = er_session_state_load(s, src, continued);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(rc);
}

/* session_restore(session, snapshot: bytes, continued=0) -> 0 | STATE_FOREIGN | STATE_READ_FAILED */
static PyObject *py_session_restore(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap;
    const char *data;
    Py_ssize_t n;
    int continued = 0;
    if (!PyArg_ParseTuple(args, "Oy#|p", &cap, &data, &n, &continued)) return NULL;
    const er_state_src src = {.buf = (const uint8_t *)data, .fd = -1, .size = (uint64_t)n};
    return state_load(cap, &src, continued);   /* args hold the bytes while the GIL is away */
}

/* session_restore_fd(session, fd, offset, size, continued) -> as session_restore */
static PyObject *py_session_restore_fd(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap;
    int fd, continued;
    unsigned long long base, size;
    if (!PyArg_ParseTuple(args, "OiKKp", &cap, &fd, &base, &size, &continued)) return NULL;
    if (fd < 0 || base > (unsigned long long)INT64_MAX - size) {
        PyErr_SetString(PyExc_ValueError, "session_restore_fd: bad descriptor or range");
        return NULL;
    }
    const er_state_src src = {.buf = NULL, .fd = fd, .base = base, .size = size};
    return state_load(cap, &src, continued);
}

/* ---- module ---------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"kernels", py_kernels, METH_NOARGS, "Q8_0 kernels this CPU can run, best last."},
    {"selected_kernel", py_selected_kernel, METH_NOARGS, "The kernel in use (ER_KERNEL aware)."},
    {"model_new", py_model_new, METH_VARARGS, "Bind a Gemma 3 model to the mapping."},
    {"model_kernel", py_model_kernel, METH_O, "Name of the Q8_0 kernel a model uses."},
    {"session_new", py_session_new, METH_VARARGS, "A KV state and scratch for one model."},
    {"session_eval", py_session_eval, METH_VARARGS, "Run tokens; write last-position logits."},
    {"session_n_past", py_session_n_past, METH_O, "Positions held in the KV state."},
    {"session_truncate", py_session_truncate, METH_VARARGS, "Rewind the KV state to n positions."},
    {"session_sizes", py_session_sizes, METH_O, "Bytes the session allocated, by purpose."},
    {"session_state", py_session_state, METH_O, "Snapshot of the KV state (bytes)."},
    {"session_restore", py_session_restore, METH_VARARGS,
     "Restore a KV snapshot from bytes: 0, STATE_FOREIGN, or STATE_READ_FAILED (emptied)."},
    {"session_state_write", py_session_state_write, METH_VARARGS,
     "Write the KV state at an offset of a file (pread-able snapshot); returns its size."},
    {"session_restore_fd", py_session_restore_fd, METH_VARARGS,
     "Restore a KV snapshot from a file range (pread): as session_restore."},
    {"vocab_new", py_vocab_new, METH_VARARGS, "Index a mapped vocabulary (tokenizer)."},
    {"vocab_find", py_vocab_find, METH_VARARGS, "Id of a token's bytes, or -1 (tokenizer)."},
    {"spm_encode", py_spm_encode, METH_VARARGS, "SentencePiece-merge one fragment (tokenizer)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_native", "edge_runtime C core", -1, methods,
    NULL, NULL, NULL, NULL,
};

/* A tuple of the strings names[0..n). */
static PyObject *names_tuple(const char *const *names, Py_ssize_t n) {
    PyObject *t = PyTuple_New(n);
    for (Py_ssize_t i = 0; t && i < n; i++) {
        PyObject *s = PyUnicode_FromString(names[i]);
        if (!s) { Py_DECREF(t); return NULL; }
        PyTuple_SetItem(t, i, s);
    }
    return t;
}

/* Adds value to m as name; steals the reference (also on failure). */
static int add(PyObject *m, const char *name, PyObject *value) {
    if (!value) return -1;
    if (PyModule_AddObject(m, name, value) < 0) { Py_DECREF(value); return -1; }
    return 0;
}

PyMODINIT_FUNC PyInit__native(void) {
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    const char *dims[N_DIMS];
    for (Py_ssize_t i = 0; i < N_DIMS; i++) dims[i] = DIMS[i].name;
    if (add(m, "LAYER_TENSORS", names_tuple(LAYER_TENSORS, ER_T_PER_LAYER)) < 0 ||
        add(m, "GLOBAL_TENSORS", names_tuple(GLOBAL_TENSORS, ER_T_GLOBAL)) < 0 ||
        add(m, "DIMS", names_tuple(dims, N_DIMS)) < 0 ||
        PyModule_AddIntConstant(m, "STATE_FOREIGN", ER_STATE_FOREIGN) < 0 ||
        PyModule_AddIntConstant(m, "STATE_READ_FAILED", ER_STATE_READ_FAILED) < 0 ||
        add(m, "testing", er_testing_module()) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
