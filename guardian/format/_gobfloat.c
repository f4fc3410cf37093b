/* Optional accelerator for the gob codec: decode a run of gob floats into float32.
 *
 * Exactly the rules of guardian/format/gob.py (and Go's encoding/gob): an unsigned integer is one
 * byte < 0x80, or a byte holding the negated count (1..8) of big-endian bytes that follow; a
 * float is that integer with its 8 bytes reversed, read as a float64, then converted to float32.
 * On anything malformed or out of float32's range this returns None and the pure-Python path
 * runs instead, so that it raises Go's exact error. Same results with or without this module.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static PyObject *decode_floats(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos, end, count;
    if (!PyArg_ParseTuple(args, "y*nnn", &view, &pos, &end, &count))
        return NULL;
    if (pos < 0 || end > view.len || pos > end || count < 0 || count > end - pos) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    const unsigned char *data = (const unsigned char *)view.buf;
    PyObject *out = PyBytes_FromStringAndSize(NULL, count * (Py_ssize_t)sizeof(float));
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    float *values = (float *)PyBytes_AS_STRING(out);
    Py_ssize_t p = pos;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (p >= end)
            goto malformed;
        unsigned int first = data[p];
        uint64_t u = 0;
        if (first < 0x80) {
            u = first;
            p += 1;
        } else {
            Py_ssize_t n = 256 - (Py_ssize_t)first;
            if (n > 8 || p + 1 + n > end)
                goto malformed;
            for (Py_ssize_t k = 1; k <= n; k++)
                u = (u << 8) | data[p + k];
            p += 1 + n;
        }
        uint64_t bits = 0;
        for (int k = 0; k < 8; k++) {
            bits = (bits << 8) | (u & 0xFF);
            u >>= 8;
        }
        double d;
        memcpy(&d, &bits, sizeof d);
        double magnitude = fabs(d);
        if (magnitude > FLT_MAX && magnitude <= DBL_MAX)
            goto malformed;
        values[i] = (float)d;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(Nn)", out, p);
malformed:
    Py_DECREF(out);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decode_floats", decode_floats, METH_VARARGS,
     "decode_floats(data, pos, end, count) -> (float32 bytes, new pos) or None if malformed"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_gobfloat", NULL, -1, methods};

PyMODINIT_FUNC PyInit__gobfloat(void) { return PyModule_Create(&module); }
