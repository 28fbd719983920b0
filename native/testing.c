/* edge_runtime._native.testing: one Q8_0 kernel at a time, for the tests that bind every
 * kernel to the scalar reference and for tools/bench.py. Every buffer is an (address, length)
 * pair checked against the shapes given, as on the runtime's side of the door. */
#include "door.h"

#include "q8_0.h"

static const er_q8_0_kernel *kernel_by_name(const char *name) {
    int n = 0;
    const er_q8_0_kernel *k = er_q8_0_kernels(&n);
    for (int i = 0; i < n; i++)
        if (strcmp(k[i].name, name) == 0) return &k[i];
    PyErr_Format(PyExc_ValueError, "kernel %s is not available on this CPU", name);
    return NULL;
}

/* q8_0_gemm(kernel, W, X, Y, k, rows, nt[, r0, r1, ldy]): Y[t*ldy + r] = W[r] . X[t] for
 * r in [r0, r1) (default: all rows, ldy = rows) */
static PyObject *py_q8_0_gemm(PyObject *self, PyObject *args) {
    (void)self;
    const char *name;
    PyObject *w, *x, *y;
    int k, rows, nt, r0 = 0, r1 = -1, ldy = -1;
    if (!PyArg_ParseTuple(args, "sOOOiii|iii", &name, &w, &x, &y, &k, &rows, &nt, &r0, &r1, &ldy))
        return NULL;
    const er_q8_0_kernel *kern = kernel_by_name(name);
    if (!kern) return NULL;
    if (r1 < 0) r1 = rows;
    if (ldy < 0) ldy = rows;
    if (k <= 0 || k % QK8_0 || rows <= 0 || nt <= 0 || r0 < 0 || r0 > r1 || r1 > rows || ldy < r1) {
        PyErr_SetString(PyExc_ValueError, "bad gemm shape");
        return NULL;
    }
    const size_t nb = (size_t)(k / QK8_0);
    void *W, *X, *Y;
    if (er_buffer_arg(w, "W", (size_t)rows * nb * sizeof(block_q8_0), 0, &W, NULL) < 0 ||
        er_buffer_arg(x, "X", (size_t)nt * nb * sizeof(block_q8_act), 0, &X, NULL) < 0 ||
        er_buffer_arg(y, "Y", ((size_t)(nt - 1) * ldy + r1) * sizeof(float), 0, &Y, NULL) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    kern->gemm(W, X, Y, k, r0, r1, nt, ldy);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* q8_0_gemv_rows(kernel, W, rows, n, X, Y, k): Y[i] = W[rows[i]] . X for i < n; every
 * rows[i] must index W. */
static PyObject *py_q8_0_gemv_rows(PyObject *self, PyObject *args) {
    (void)self;
    const char *name;
    PyObject *w, *r, *x, *y;
    int n, k;
    if (!PyArg_ParseTuple(args, "sOOiOOi", &name, &w, &r, &n, &x, &y, &k)) return NULL;
    const er_q8_0_kernel *kern = kernel_by_name(name);
    if (!kern) return NULL;
    if (k <= 0 || k % QK8_0 || n < 0) {
        PyErr_SetString(PyExc_ValueError, "bad gemv shape");
        return NULL;
    }
    const size_t row = (size_t)(k / QK8_0) * sizeof(block_q8_0);
    void *W, *R, *X, *Y;
    size_t w_bytes;
    if (er_buffer_arg(w, "W", row, 0, &W, &w_bytes) < 0 ||
        er_buffer_arg(r, "rows", (size_t)n * sizeof(int32_t), 1, &R, NULL) < 0 ||
        er_buffer_arg(x, "X", (size_t)(k / QK8_0) * sizeof(block_q8_act), 0, &X, NULL) < 0 ||
        er_buffer_arg(y, "Y", (size_t)n * sizeof(float), 0, &Y, NULL) < 0)
        return NULL;
    const size_t w_rows = w_bytes / row;
    for (int i = 0; i < n; i++)
        if (((const int32_t *)R)[i] < 0 || (size_t)((const int32_t *)R)[i] >= w_rows)
            return PyErr_Format(PyExc_ValueError, "rows[%d] is outside W's %zu rows", i, w_rows);
    Py_BEGIN_ALLOW_THREADS
    kern->gemv_rows(W, R, n, X, Y, k);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* quantize_act(X, Y, n, kernel="scalar"): each kernel's own activation quantizer, into
 * activation blocks (q8_0.h) */
static PyObject *py_quantize_act(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *x, *y;
    int n;
    const char *name = "scalar";
    if (!PyArg_ParseTuple(args, "OOi|s", &x, &y, &n, &name)) return NULL;
    const er_q8_0_kernel *kern = kernel_by_name(name);
    if (!kern) return NULL;
    if (n <= 0 || n % QK8_0) {
        PyErr_SetString(PyExc_ValueError, "n must be a positive multiple of 32");
        return NULL;
    }
    void *X, *Y;
    if (er_buffer_arg(x, "X", (size_t)n * sizeof(float), 0, &X, NULL) < 0 ||
        er_buffer_arg(y, "Y", (size_t)(n / QK8_0) * sizeof(block_q8_act), 0, &Y, NULL) < 0)
        return NULL;
    kern->quantize(X, Y, n);
    Py_RETURN_NONE;
}

/* ---- half floats: (src, dst, n) converts n values ----------------------------------- */
enum { FP16_TO_FP32, BF16_TO_FP32, FP32_TO_FP16 };

static PyObject *convert_half(PyObject *args, int kind) {
    PyObject *src, *dst;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "OOn", &src, &dst, &n)) return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n must not be negative");
        return NULL;
    }
    const size_t half = (size_t)n * sizeof(uint16_t), full = (size_t)n * sizeof(float);
    void *s, *d;
    if (er_buffer_arg(src, "src", kind == FP32_TO_FP16 ? full : half, 0, &s, NULL) < 0 ||
        er_buffer_arg(dst, "dst", kind == FP32_TO_FP16 ? half : full, 0, &d, NULL) < 0)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (kind == FP32_TO_FP16) ((uint16_t *)d)[i] = er_fp32_to_fp16(((const float *)s)[i]);
        else if (kind == FP16_TO_FP32) ((float *)d)[i] = er_fp16_to_fp32(((const uint16_t *)s)[i]);
        else ((float *)d)[i] = er_bf16_to_fp32(((const uint16_t *)s)[i]);
    }
    Py_RETURN_NONE;
}
static PyObject *py_fp16_to_fp32(PyObject *self, PyObject *a) { (void)self; return convert_half(a, FP16_TO_FP32); }
static PyObject *py_bf16_to_fp32(PyObject *self, PyObject *a) { (void)self; return convert_half(a, BF16_TO_FP32); }
static PyObject *py_fp32_to_fp16(PyObject *self, PyObject *a) { (void)self; return convert_half(a, FP32_TO_FP16); }

static PyMethodDef methods[] = {
    {"q8_0_gemm", py_q8_0_gemm, METH_VARARGS, "Run one kernel: (name, W, X, Y, k, rows, nt[, r0, r1, ldy])."},
    {"q8_0_gemv_rows", py_q8_0_gemv_rows, METH_VARARGS,
     "One token against listed rows: (name, W, rows, n, X, Y, k)."},
    {"quantize_act", py_quantize_act, METH_VARARGS,
     "Quantize n floats at X into activation blocks at Y."},
    {"fp16_to_fp32", py_fp16_to_fp32, METH_VARARGS, "(src, dst, n): n fp16 -> float32."},
    {"bf16_to_fp32", py_bf16_to_fp32, METH_VARARGS, "(src, dst, n): n bf16 -> float32."},
    {"fp32_to_fp16", py_fp32_to_fp16, METH_VARARGS, "(src, dst, n): n float32 -> fp16 (RNE)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "edge_runtime._native.testing",
    "Single Q8_0 kernels for tests and benchmarks; buffers are (address, length) pairs.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyObject *er_testing_module(void) { return PyModule_Create(&moduledef); }
