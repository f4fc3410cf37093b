/* Optional accelerator for listing a store folder: read its entries (getdents) and lstat every one
 * of them relative to the folder's fd, with the GIL released, and hand back the names and the asked
 * stat fields of every entry as one flat int64 buffer.
 *
 * Exactly what guardian/local/storefs.py's pure-Python path does (os.listdir(fd), then
 * os.stat(name, dir_fd=fd, follow_symlinks=False) per name, in directory order, each field put into
 * an array('q')), so both give the same result or raise the same exception:
 * - names are decoded as os.listdir decodes them (the file system encoding, surrogateescape);
 *   "." and ".." are left out; the fd's offset is rewound afterwards, as os.listdir does;
 * - the first entry (in directory order) whose lstat fails raises OSError for that errno and name
 *   (FileNotFoundError for a file removed between getdents and lstat), as the Python path's lstat
 *   of that name would; entries after it do not matter;
 * - the first field of an entry (in that order) that does not fit an int64 raises OverflowError, as
 *   array('q') does (an inode or device number above 2**63, an mtime past the year 2262).
 * Python code runs only before (parsing arguments) and after (building the names); the system calls
 * run without the GIL, so other threads (the server, the watcher) go on meanwhile. A big folder is
 * stat'ed by two threads (each lstat is a separate system call on the same folder fd).
 *
 * Fields are letters: s st_size, m st_mtime_ns, c st_ctime_ns, i st_ino, M st_mode, d st_dev,
 * n st_nlink (storefs.STAT_FIELDS names them for the Python path).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FIELDS 16
#define THREADED_MIN_ENTRIES 4096  /* below this one thread is faster than starting a second */

typedef struct {
    char *bytes;        /* every name, each followed by NUL */
    size_t used, size;
    size_t *starts;     /* offset of each name in bytes */
    size_t *lengths;
    Py_ssize_t count, capacity;
} Names;

typedef struct {
    int dir_fd;
    const Names *names;
    const char *fields;
    int nfields;
    Py_ssize_t begin, end;
    int64_t *numbers;   /* nfields per entry */
    int *errors;        /* errno per entry (0: stat'ed) */
    unsigned char *overflow;  /* per entry: 1 + index of the first field that does not fit, else 0 */
} StatWork;

static void names_free(Names *n) {
    free(n->bytes);
    free(n->starts);
    free(n->lengths);
    memset(n, 0, sizeof *n);
}

/* Append one name (without the GIL): 0, or -1 when out of memory. */
static int names_add(Names *n, const char *name, size_t length) {
    if (n->count == n->capacity) {
        Py_ssize_t capacity = n->capacity ? n->capacity * 2 : 256;
        size_t *starts = realloc(n->starts, (size_t)capacity * sizeof(size_t));
        if (starts == NULL)
            return -1;
        n->starts = starts;
        size_t *lengths = realloc(n->lengths, (size_t)capacity * sizeof(size_t));
        if (lengths == NULL)
            return -1;
        n->lengths = lengths;
        n->capacity = capacity;
    }
    if (n->used + length + 1 > n->size) {
        size_t size = n->size ? n->size * 2 : 16384;
        while (size < n->used + length + 1)
            size *= 2;
        char *bytes = realloc(n->bytes, size);
        if (bytes == NULL)
            return -1;
        n->bytes = bytes;
        n->size = size;
    }
    memcpy(n->bytes + n->used, name, length);
    n->bytes[n->used + length] = '\0';
    n->starts[n->count] = n->used;
    n->lengths[n->count] = length;
    n->used += length + 1;
    n->count++;
    return 0;
}

/* Read every entry of dir_fd (without the GIL): 0, or an errno; ENOMEM when out of memory. */
static int read_names(int dir_fd, Names *names) {
    int fd = dup(dir_fd);   /* closedir closes the fd it reads: keep the caller's */
    if (fd < 0)
        return errno;
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        int error = errno;
        close(fd);
        return error;
    }
    rewinddir(dir);
    int error = 0;
    for (;;) {
        errno = 0;
        struct dirent *entry = readdir(dir);
        if (entry == NULL) {
            error = errno;
            break;
        }
        const char *name = entry->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
            continue;
        if (names_add(names, name, strlen(name)) < 0) {
            error = ENOMEM;
            break;
        }
    }
    rewinddir(dir);   /* the dup shares the caller's offset: leave it at the start, as os.listdir does */
    closedir(dir);
    return error;
}

/* value = sec * 10**9 + nsec, as os.stat_result's *_ns fields: 0, or -1 if it does not fit an int64. */
static int nanoseconds(int64_t sec, int64_t nsec, int64_t *value) {
    int64_t scaled;
    if (__builtin_mul_overflow(sec, (int64_t)1000000000, &scaled) || __builtin_add_overflow(scaled, nsec, value))
        return -1;
    return 0;
}

static int unsigned_field(uint64_t u, int64_t *value) {
    if (u > (uint64_t)INT64_MAX)
        return -1;
    *value = (int64_t)u;
    return 0;
}

/* One stat field as an int64: 0, or -1 if it does not fit. */
static int field_of(const struct stat *st, char field, int64_t *value) {
    switch (field) {
    case 's': *value = (int64_t)st->st_size; return 0;
    case 'm': return nanoseconds((int64_t)st->st_mtim.tv_sec, (int64_t)st->st_mtim.tv_nsec, value);
    case 'c': return nanoseconds((int64_t)st->st_ctim.tv_sec, (int64_t)st->st_ctim.tv_nsec, value);
    case 'i': return unsigned_field((uint64_t)st->st_ino, value);
    case 'M': *value = (int64_t)st->st_mode; return 0;
    case 'd': return unsigned_field((uint64_t)st->st_dev, value);
    case 'n': return unsigned_field((uint64_t)st->st_nlink, value);
    default: return -1;   /* never: the fields were checked before */
    }
}

/* lstat entries [begin, end) (without the GIL; run by one or two threads). */
static void *stat_range(void *arg) {
    StatWork *work = arg;
    const Names *names = work->names;
    for (Py_ssize_t i = work->begin; i < work->end; i++) {
        struct stat st;
        int64_t *out = work->numbers + (size_t)i * (size_t)work->nfields;
        work->overflow[i] = 0;
        if (fstatat(work->dir_fd, names->bytes + names->starts[i], &st, AT_SYMLINK_NOFOLLOW) != 0) {
            work->errors[i] = errno;
            memset(out, 0, (size_t)work->nfields * sizeof(int64_t));
            continue;
        }
        work->errors[i] = 0;
        for (int k = 0; k < work->nfields; k++) {
            if (field_of(&st, work->fields[k], &out[k]) < 0) {
                out[k] = 0;
                if (!work->overflow[i])
                    work->overflow[i] = (unsigned char)(k + 1);
            }
        }
    }
    return NULL;
}

/* lstat every name (without the GIL), in two threads when there are many. */
static void stat_all(StatWork *work, int threads) {
    Py_ssize_t count = work->end;
    if (threads < 2 || count < THREADED_MIN_ENTRIES) {
        stat_range(work);
        return;
    }
    StatWork second = *work;
    second.begin = count / 2;
    work->end = count / 2;
    pthread_t thread;
    int started = pthread_create(&thread, NULL, stat_range, &second) == 0;
    if (!started)
        work->end = count;   /* no second thread: this one does all of it */
    stat_range(work);
    if (started)
        pthread_join(thread, NULL);
    work->end = count;
}

static int check_fields(const char *fields, Py_ssize_t nfields) {
    if (nfields < 1 || nfields > MAX_FIELDS) {
        PyErr_SetString(PyExc_ValueError, "between 1 and 16 stat fields");
        return -1;
    }
    for (Py_ssize_t k = 0; k < nfields; k++) {
        if (strchr("smciMdn", fields[k]) == NULL || fields[k] == '\0') {
            PyErr_Format(PyExc_ValueError, "unknown stat field %c", fields[k]);
            return -1;
        }
    }
    return 0;
}

static PyObject *name_object(const Names *names, Py_ssize_t i) {
    return PyUnicode_DecodeFSDefaultAndSize(names->bytes + names->starts[i], (Py_ssize_t)names->lengths[i]);
}

/* The Python path's exception for the first entry that failed (OSError or OverflowError), else 0. */
static int raise_first_failure(const Names *names, const int *errors, const unsigned char *overflow) {
    for (Py_ssize_t i = 0; i < names->count; i++) {
        if (errors[i]) {
            PyObject *name = name_object(names, i);
            if (name != NULL) {
                errno = errors[i];
                PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, name);
                Py_DECREF(name);
            }
            return -1;
        }
        if (overflow[i]) {
            PyErr_SetString(PyExc_OverflowError, "a stat field does not fit in a signed 64-bit integer");
            return -1;
        }
    }
    return 0;
}

/* stat every name in names (the GIL released while it runs): a bytes of nfields int64 per name. */
static PyObject *stat_names_to_bytes(int dir_fd, const Names *names, const char *fields, int nfields, int threads) {
    size_t count = (size_t)names->count;
    PyObject *numbers = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(count * (size_t)nfields * sizeof(int64_t)));
    int *errors = malloc((count ? count : 1) * sizeof(int));
    unsigned char *overflow = malloc(count ? count : 1);
    if (numbers == NULL || errors == NULL || overflow == NULL) {
        Py_XDECREF(numbers);
        free(errors);
        free(overflow);
        return PyErr_NoMemory();
    }
    StatWork work = {dir_fd, names, fields, nfields, 0, names->count, (int64_t *)PyBytes_AS_STRING(numbers),
                     errors, overflow};
    Py_BEGIN_ALLOW_THREADS
    stat_all(&work, threads);
    Py_END_ALLOW_THREADS
    int failed = raise_first_failure(names, errors, overflow);
    free(errors);
    free(overflow);
    if (failed) {
        Py_DECREF(numbers);
        return NULL;
    }
    return numbers;
}

static PyObject *names_list(const Names *names) {
    PyObject *list = PyList_New(names->count);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < names->count; i++) {
        PyObject *name = name_object(names, i);
        if (name == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, name);
    }
    return list;
}

static PyObject *list_folder(PyObject *self, PyObject *args) {
    int dir_fd, threads = 2;
    const char *fields;
    Py_ssize_t nfields;
    if (!PyArg_ParseTuple(args, "is#|i", &dir_fd, &fields, &nfields, &threads))
        return NULL;
    if (check_fields(fields, nfields) < 0)
        return NULL;
    Names names = {0};
    int error;
    Py_BEGIN_ALLOW_THREADS
    error = read_names(dir_fd, &names);
    Py_END_ALLOW_THREADS
    if (error) {
        names_free(&names);
        if (error == ENOMEM)
            return PyErr_NoMemory();
        errno = error;
        PyObject *fd = PyLong_FromLong(dir_fd);
        if (fd != NULL) {
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, fd);
            Py_DECREF(fd);
        }
        return NULL;
    }
    PyObject *numbers = stat_names_to_bytes(dir_fd, &names, fields, (int)nfields, threads);
    PyObject *list = numbers != NULL ? names_list(&names) : NULL;
    names_free(&names);
    if (list == NULL) {
        Py_XDECREF(numbers);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, list, numbers);
    Py_DECREF(list);
    Py_DECREF(numbers);
    return result;
}

/* The names' bytes as os.stat would pass them (os.fsencode, surrogateescape): 0, or -1 with an error. */
static int encode_names(PyObject *seq, Names *names) {
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *encoded = PyUnicode_EncodeFSDefault(PySequence_Fast_GET_ITEM(seq, i));
        if (encoded == NULL)
            return -1;
        const char *bytes = PyBytes_AS_STRING(encoded);
        size_t length = (size_t)PyBytes_GET_SIZE(encoded);
        if (strlen(bytes) != length) {
            Py_DECREF(encoded);
            PyErr_SetString(PyExc_ValueError, "embedded null byte");
            return -1;
        }
        int added = names_add(names, bytes, length);
        Py_DECREF(encoded);
        if (added < 0) {
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

static PyObject *stat_names(PyObject *self, PyObject *args) {
    int dir_fd, threads = 2;
    PyObject *given;
    const char *fields;
    Py_ssize_t nfields;
    if (!PyArg_ParseTuple(args, "iOs#|i", &dir_fd, &given, &fields, &nfields, &threads))
        return NULL;
    if (check_fields(fields, nfields) < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(given, "names must be a sequence of str");
    if (seq == NULL)
        return NULL;
    Names names = {0};
    PyObject *numbers = NULL;
    if (encode_names(seq, &names) == 0)
        numbers = stat_names_to_bytes(dir_fd, &names, fields, (int)nfields, threads);
    names_free(&names);
    Py_DECREF(seq);
    return numbers;
}

static PyMethodDef methods[] = {
    {"list_folder", list_folder, METH_VARARGS,
     "list_folder(dir_fd, fields, threads=2) -> (names, bytes of len(fields) int64 per entry)"},
    {"stat_names", stat_names, METH_VARARGS,
     "stat_names(dir_fd, names, fields, threads=2) -> bytes of len(fields) int64 per name"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_listing", NULL, -1, methods};

PyMODINIT_FUNC PyInit__listing(void) { return PyModule_Create(&module); }
