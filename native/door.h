/* Shared by the two halves of the C door: the runtime's (module.c) and the test-only
 * kernel entry points (testing.c). */
#ifndef ER_DOOR_H
#define ER_DOOR_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

/* A buffer crosses as an (address, length in bytes) pair taken from a numpy array; the length
 * is checked against what the call will touch (exactly `need` bytes when exact, else at least)
 * before any byte is; `given`, when not NULL, receives the length. Returns 0, or -1 with a
 * Python error set. */
int er_buffer_arg(PyObject *pair, const char *what, size_t need, int exact, void **out,
                  size_t *given);

/* The module edge_runtime._native.testing: each kernel's entry points for the tests and
 * tools/bench.py. The runtime never calls them. */
PyObject *er_testing_module(void);
#endif
