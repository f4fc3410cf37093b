/* Optional accelerator for queries: a query vector's floats as float32, and the k best scores.
 *
 * float32_bytes / float32_rows: a query's vector arrives as a list of Python floats (json/orjson
 * make them). guardian/index/query.py takes one of floats only, every one within float32's range,
 * straight to a float32 array; this does its checks and its cast in one C loop instead of a type
 * set, a float64 array, an abs, a max and a cast. The same rules exactly: every item a float (not a
 * subclass, not an int, not a bool), |x| <= FLT_MAX (NaN and infinity fail it), then the C cast
 * (float)x, which is numpy's float64 -> float32 cast. Anything else returns None and the Python
 * path runs, so that it words the error (or takes the general path) as it always has.
 *
 * top_k: the k highest of a contiguous float32 array, best first, equal scores by position: one
 * pass keeping the k best in order (a score enters only above the k-th, so an equal later one never
 * displaces an earlier one). The same answer as query.top_scores's partition; None (the Python path)
 * for a NaN (numpy's order for it is the Python path's to keep), k beyond TOP_K_MAX, another dtype.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <string.h>

#define TOP_K_MAX 256

/* Fills out[0..n) from the list's n items; 0 when an item breaks the rules above. */
static int fill(PyObject *values, float *out, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(values, i);
        if (!PyFloat_CheckExact(item))
            return 0;
        double x = PyFloat_AS_DOUBLE(item);
        if (!(fabs(x) <= FLT_MAX))
            return 0;
        out[i] = (float)x;
    }
    return 1;
}

/* float32_bytes(values) -> bytes of len(values) float32s, or None (see above). */
static PyObject *float32_bytes(PyObject *self, PyObject *values) {
    if (!PyList_CheckExact(values) || PyList_GET_SIZE(values) == 0)
        Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(values);
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(float));
    if (out == NULL)
        return NULL;
    if (!fill(values, (float *)PyBytes_AS_STRING(out), n)) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    return out;
}

/* float32_rows(rows) -> bytes of len(rows) x d float32s (row after row), or None: every row a list
 * of d floats as float32_bytes wants them, d >= 1 the same for all. */
static PyObject *float32_rows(PyObject *self, PyObject *rows) {
    if (!PyList_CheckExact(rows) || PyList_GET_SIZE(rows) == 0)
        Py_RETURN_NONE;
    Py_ssize_t m = PyList_GET_SIZE(rows);
    PyObject *first = PyList_GET_ITEM(rows, 0);
    if (!PyList_CheckExact(first) || PyList_GET_SIZE(first) == 0)
        Py_RETURN_NONE;
    Py_ssize_t d = PyList_GET_SIZE(first);
    if (m > PY_SSIZE_T_MAX / d / (Py_ssize_t)sizeof(float))
        Py_RETURN_NONE;
    PyObject *out = PyBytes_FromStringAndSize(NULL, m * d * (Py_ssize_t)sizeof(float));
    if (out == NULL)
        return NULL;
    float *data = (float *)PyBytes_AS_STRING(out);
    for (Py_ssize_t r = 0; r < m; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (!PyList_CheckExact(row) || PyList_GET_SIZE(row) != d || !fill(row, data + r * d, d)) {
            Py_DECREF(out);
            Py_RETURN_NONE;
        }
    }
    return out;
}

/* top_k(scores, k) -> ([positions], [scores]) best first, or None (see above). */
static PyObject *top_k(PyObject *self, PyObject *args) {
    PyObject *array;
    Py_ssize_t k;
    if (!PyArg_ParseTuple(args, "On", &array, &k))
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(array, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    PyObject *result = NULL;
    if (view.ndim != 1 || view.itemsize != 4 || view.format == NULL || strcmp(view.format, "f") != 0 || k < 1
        || k > TOP_K_MAX) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    const float *scores = (const float *)view.buf;
    Py_ssize_t n = view.len / 4, count = 0;
    float best[TOP_K_MAX];
    Py_ssize_t at[TOP_K_MAX];
    if (k > n)
        k = n;
    for (Py_ssize_t i = 0; i < n; i++) {
        float x = scores[i];
        if (x != x) {  /* NaN */
            result = Py_None;
            Py_INCREF(result);
            goto done;
        }
        Py_ssize_t j;
        if (count == k) {
            if (!(x > best[k - 1]))
                continue;
            j = k - 1;  /* the k-th best leaves */
        } else {
            j = count++;
        }
        while (j > 0 && best[j - 1] < x) {
            best[j] = best[j - 1];
            at[j] = at[j - 1];
            j--;
        }
        best[j] = x;
        at[j] = i;
    }
    PyObject *positions = PyList_New(count), *values = PyList_New(count);
    if (positions == NULL || values == NULL)
        goto failed;
    for (Py_ssize_t j = 0; j < count; j++) {
        PyObject *position = PyLong_FromSsize_t(at[j]), *value = PyFloat_FromDouble((double)best[j]);
        if (position == NULL || value == NULL) {
            Py_XDECREF(position);
            Py_XDECREF(value);
            goto failed;
        }
        PyList_SET_ITEM(positions, j, position);
        PyList_SET_ITEM(values, j, value);
    }
    result = PyTuple_Pack(2, positions, values);
failed:
    Py_XDECREF(positions);
    Py_XDECREF(values);
done:
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"top_k", top_k, METH_VARARGS,
     "top_k(scores, k) -> ([positions], [scores]) of the k best float32 scores, ties by position, or None"},
    {"float32_bytes", float32_bytes, METH_O,
     "float32_bytes(values) -> float32 bytes of a non-empty list of floats within float32's range, else None"},
    {"float32_rows", float32_rows, METH_O,
     "float32_rows(rows) -> float32 bytes of non-empty equal-length lists of such floats, else None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_queryfast", NULL, -1, methods};

PyMODINIT_FUNC PyInit__queryfast(void) { return PyModule_Create(&module); }
