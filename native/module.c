/* The one door between CPython and the C core (limited API, abi3).
 *
 * Buffers cross as integer addresses that the Python side takes from numpy arrays or the
 * GGUF mapping it owns and keeps alive; the Python wrappers check sizes before calling. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "q8_0.h"

static void *addr_arg(PyObject *o) { return PyLong_AsVoidPtr(o); }

/* ---- kernels (tests and tools) --------------------------------------------------------- */

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

static const er_q8_0_kernel *kernel_by_name(const char *name) {
    int n = 0;
    const er_q8_0_kernel *k = er_q8_0_kernels(&n);
    for (int i = 0; i < n; i++)
        if (strcmp(k[i].name, name) == 0) return &k[i];
    PyErr_Format(PyExc_ValueError, "kernel %s is not available on this CPU", name);
    return NULL;
}

/* q8_0_gemm(kernel, W, X, Y, k, rows, nt): Y[t*rows + r] = W[r] . X[t] */
static PyObject *py_q8_0_gemm(PyObject *self, PyObject *args) {
    (void)self;
    const char *name;
    PyObject *w, *x, *y;
    int k, rows, nt;
    if (!PyArg_ParseTuple(args, "sOOOiii", &name, &w, &x, &y, &k, &rows, &nt)) return NULL;
    const er_q8_0_kernel *kern = kernel_by_name(name);
    if (!kern) return NULL;
    if (k <= 0 || k % QK8_0 || rows <= 0 || nt <= 0) {
        PyErr_SetString(PyExc_ValueError, "bad gemm shape");
        return NULL;
    }
    const block_q8_0 *W = addr_arg(w), *X = addr_arg(x);
    float *Y = addr_arg(y);
    if (PyErr_Occurred()) return NULL;
    Py_BEGIN_ALLOW_THREADS
    kern->gemm(W, X, Y, k, 0, rows, nt, rows);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_quantize_q8_0(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *x, *y;
    int n;
    if (!PyArg_ParseTuple(args, "OOi", &x, &y, &n)) return NULL;
    if (n <= 0 || n % QK8_0) {
        PyErr_SetString(PyExc_ValueError, "n must be a positive multiple of 32");
        return NULL;
    }
    const float *X = addr_arg(x);
    block_q8_0 *Y = addr_arg(y);
    if (PyErr_Occurred()) return NULL;
    er_quantize_row_q8_0(X, Y, n);
    Py_RETURN_NONE;
}

/* ---- module ---------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"kernels", py_kernels, METH_NOARGS, "Q8_0 kernels this CPU can run, best last."},
    {"selected_kernel", py_selected_kernel, METH_NOARGS, "The kernel in use (ER_KERNEL aware)."},
    {"q8_0_gemm", py_q8_0_gemm, METH_VARARGS, "Run one kernel: (name, W, X, Y, k, rows, nt)."},
    {"quantize_q8_0", py_quantize_q8_0, METH_VARARGS, "Quantize n floats at X into Q8_0 at Y."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_native", "edge_runtime C core", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&moduledef); }
