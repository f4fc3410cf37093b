/* Optional accelerator for the gob codec: decode a run of gob floats into float32, and decode a
 * whole struct value whose fields are strings, string maps and float32 slices (a chromem document).
 *
 * Exactly the rules of guardian/format/gob.py (and Go's encoding/gob): an unsigned integer is one
 * byte < 0x80, or a byte holding the negated count (1..8) of big-endian bytes that follow; a
 * float is that integer with its 8 bytes reversed, read as a float64, then converted to float32.
 * On anything malformed or out of float32's range this returns None and the pure-Python path
 * runs instead, so that it raises Go's exact error. Same results with or without this module.
 *
 * decode_value follows gob.py's decode_with_plan field by field: a field delta (0 ends the struct),
 * the field number kept inside the local struct, then the field's value: a string (length + bytes,
 * decoded as UTF-8 with surrogateescape), a map[string]string (count + key/value strings), or a
 * []float32 (count + floats, at most TOO_BIG/4 elements and no more than the bytes left). A field
 * the plan skips, or anything malformed, returns None: the Python path then decodes (or fails) the
 * same bytes its own way.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* One gob unsigned integer at *p (before end): 0 on success, -1 if malformed. */
static int read_uint(const unsigned char *data, Py_ssize_t *p, Py_ssize_t end, uint64_t *out) {
    if (*p >= end)
        return -1;
    unsigned int first = data[*p];
    if (first < 0x80) {
        *out = first;
        *p += 1;
        return 0;
    }
    Py_ssize_t n = 256 - (Py_ssize_t)first;
    if (n > 8 || *p + 1 + n > end)
        return -1;
    uint64_t u = 0;
    for (Py_ssize_t k = 1; k <= n; k++)
        u = (u << 8) | data[*p + k];
    *out = u;
    *p += 1 + n;
    return 0;
}

/* count gob floats from *p into values: 0 on success, -1 if malformed or out of float32's range. */
static int read_floats(const unsigned char *data, Py_ssize_t *p, Py_ssize_t end, Py_ssize_t count, float *values) {
    for (Py_ssize_t i = 0; i < count; i++) {
        uint64_t u;
        if (read_uint(data, p, end, &u) < 0)
            return -1;
        uint64_t bits = 0;
        for (int k = 0; k < 8; k++) {
            bits = (bits << 8) | (u & 0xFF);
            u >>= 8;
        }
        double d;
        memcpy(&d, &bits, sizeof d);
        double magnitude = fabs(d);
        if (magnitude > FLT_MAX && magnitude <= DBL_MAX)
            return -1;
        values[i] = (float)d;
    }
    return 0;
}

/* A gob string at *p as a str (UTF-8, surrogateescape), or NULL with no exception if malformed. */
static PyObject *read_string(const unsigned char *data, Py_ssize_t *p, Py_ssize_t end) {
    uint64_t n;
    if (read_uint(data, p, end, &n) < 0 || n > (uint64_t)(end - *p))
        return NULL;
    PyObject *text = PyUnicode_DecodeUTF8((const char *)data + *p, (Py_ssize_t)n, "surrogateescape");
    *p += (Py_ssize_t)n;
    return text;
}

#define KIND_STRING 1
#define KIND_STRING_MAP 2
#define KIND_FLOAT32_SLICE 3
#define TOO_BIG ((uint64_t)1 << 33)

static PyObject *read_string_map(const unsigned char *data, Py_ssize_t *p, Py_ssize_t end) {
    uint64_t count;
    if (read_uint(data, p, end, &count) < 0)
        return NULL;
    PyObject *map = PyDict_New();
    if (map == NULL)
        return NULL;
    for (uint64_t i = 0; i < count; i++) {
        PyObject *key = read_string(data, p, end);
        if (key == NULL)
            goto failed;
        PyObject *value = read_string(data, p, end);
        if (value == NULL) {
            Py_DECREF(key);
            goto failed;
        }
        int set = PyDict_SetItem(map, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (set < 0)
            goto failed;
    }
    return map;
failed:
    Py_DECREF(map);
    return NULL;
}

/* decode_value(data, pos, end, names, kinds) -> {name: value} (float32 slices as bytes) or None */
static PyObject *decode_value(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos, end;
    PyObject *names, *kinds;
    if (!PyArg_ParseTuple(args, "y*nnO!O!", &view, &pos, &end, &PyTuple_Type, &names, &PyTuple_Type, &kinds))
        return NULL;
    Py_ssize_t nfields = PyTuple_GET_SIZE(kinds);
    if (pos < 0 || end > view.len || pos > end || PyTuple_GET_SIZE(names) != nfields) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    const unsigned char *data = (const unsigned char *)view.buf;
    PyObject *out = PyDict_New();
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    Py_ssize_t p = pos;
    int64_t fieldnum = -1;
    while (p < end) {
        uint64_t delta;
        if (read_uint(data, &p, end, &delta) < 0)
            goto fallback;
        if (delta == 0)
            break;
        if (delta > (uint64_t)nfields || fieldnum + (int64_t)delta >= nfields)
            goto fallback;
        fieldnum += (int64_t)delta;
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(kinds, fieldnum));
        PyObject *value = NULL;
        if (kind == KIND_STRING) {
            value = read_string(data, &p, end);
        } else if (kind == KIND_STRING_MAP) {
            value = read_string_map(data, &p, end);
        } else if (kind == KIND_FLOAT32_SLICE) {
            uint64_t count;
            if (read_uint(data, &p, end, &count) < 0 || count * 4 > TOO_BIG || count > (uint64_t)(end - p))
                goto fallback;
            value = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)count * (Py_ssize_t)sizeof(float));
            if (value != NULL && read_floats(data, &p, end, (Py_ssize_t)count, (float *)PyBytes_AS_STRING(value)) < 0) {
                Py_DECREF(value);
                goto fallback;
            }
        } else {
            goto fallback;  /* a field the plan skips: the Python path knows how */
        }
        if (value == NULL)
            goto fallback;
        int set = PyDict_SetItem(out, PyTuple_GET_ITEM(names, fieldnum), value);
        Py_DECREF(value);
        if (set < 0)
            goto failed;
    }
    PyBuffer_Release(&view);
    return out;
fallback:
    if (PyErr_Occurred())  /* out of memory, not malformed data */
        goto failed;
    Py_DECREF(out);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
failed:
    Py_DECREF(out);
    PyBuffer_Release(&view);
    return NULL;
}

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
    if (read_floats(data, &p, end, count, values) < 0)
        goto malformed;
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
    {"decode_value", decode_value, METH_VARARGS,
     "decode_value(data, pos, end, names, kinds) -> {name: value} or None if the Python path must decode"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_gobfloat", NULL, -1, methods};

PyMODINIT_FUNC PyInit__gobfloat(void) { return PyModule_Create(&module); }
