/* Avro binary decoding of a record of a known schema into the dict fastavro makes (and
 * the assembly of a pydantic model from checked fields: see assemble below).
 *
 * The schema comes as a "program" of nested tuples that streams/avrodecode.py compiles
 * (see there for the opcodes). decode_frame() walks it over a frame's body and returns
 * the datum,
 * or None whenever the bytes are not exactly one well-formed record of the schema:
 * truncated, bytes left over, a union index or enum index out of range, a string that
 * is not UTF-8, a number out of its type's range, ... It never raises on input: None
 * sends the caller to fastavro, which decides and says why. Every read is bounds-checked
 * against the end of the buffer; the input is untrusted (garbage is common).
 */
#include "reader.h"
#include <string.h>

enum {
    OP_NULL = 0, OP_BOOLEAN = 1, OP_INT = 2, OP_LONG = 3, OP_FLOAT = 4, OP_DOUBLE = 5,
    OP_BYTES = 6, OP_STRING = 7, OP_FIXED = 8, OP_ENUM = 9, OP_UNION = 10, OP_ARRAY = 11,
    OP_MAP = 12, OP_RECORD = 13,
};

/* Decoding returns a new reference, or NULL: with an exception set for a Python error
 * (out of memory, a bad program), without one for malformed input. */
static PyObject *decode_op(PyObject *op, Reader *r);

static long opcode_of(PyObject *op) {
    if (!PyTuple_Check(op) || PyTuple_GET_SIZE(op) < 1) {
        PyErr_SetString(PyExc_TypeError, "a program node is a tuple (opcode, ...)");
        return -1;
    }
    return PyLong_AsLong(PyTuple_GET_ITEM(op, 0));
}

static PyObject *argument(PyObject *op, Py_ssize_t index) {
    if (PyTuple_GET_SIZE(op) <= index) {
        PyErr_SetString(PyExc_TypeError, "a program node lacks an argument");
        return NULL;
    }
    return PyTuple_GET_ITEM(op, index);
}

static PyObject *decode_record(PyObject *op, Reader *r) {
    PyObject *names = argument(op, 1), *fields = names ? argument(op, 2) : NULL;
    if (fields == NULL) return NULL;
    if (!PyTuple_Check(names) || !PyTuple_Check(fields)
            || PyTuple_GET_SIZE(names) != PyTuple_GET_SIZE(fields)) {
        PyErr_SetString(PyExc_TypeError, "a record node is (opcode, names, fields)");
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(fields);
    /* sized for all its fields at once: grown one by one, a dict of 12 resizes twice */
    PyObject *record = _PyDict_NewPresized(count);
    if (record == NULL) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = decode_op(PyTuple_GET_ITEM(fields, i), r);
        if (value == NULL) goto fail;
        int failed = PyDict_SetItem(record, PyTuple_GET_ITEM(names, i), value);
        Py_DECREF(value);
        if (failed) goto fail;
    }
    return record;
fail:
    Py_DECREF(record);
    return NULL;
}

/* The item count of the next block of an array or map (0 ends it). */
static int read_block_count(Reader *r, int64_t *count) {
    if (read_long(r, count) < 0) return -1;
    if (*count < 0) {
        int64_t size;
        if (*count == INT64_MIN || read_long(r, &size) < 0 || size < 0) return -1;
        *count = -*count;
    }
    /* every item of our schemas takes at least one byte: more items than bytes left is
     * malformed (and a huge count must not be believed) */
    if (*count > (int64_t)(r->end - r->p)) return -1;
    return 0;
}

static PyObject *decode_array(PyObject *op, Reader *r) {
    PyObject *items = argument(op, 1);
    if (items == NULL) return NULL;
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    for (;;) {
        int64_t count;
        if (read_block_count(r, &count) < 0) goto fail;
        if (count == 0) return list;
        for (int64_t i = 0; i < count; i++) {
            PyObject *item = decode_op(items, r);
            if (item == NULL) goto fail;
            int failed = PyList_Append(list, item);
            Py_DECREF(item);
            if (failed) goto fail;
        }
    }
fail:
    Py_DECREF(list);
    return NULL;
}

static PyObject *decode_string(Reader *r) {
    Py_ssize_t length;
    if (read_length(r, &length) < 0) return NULL;
    PyObject *text = PyUnicode_DecodeUTF8((const char *)r->p, length, NULL);
    if (text == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return NULL;
        PyErr_Clear(); /* not UTF-8: malformed input, not an error of ours */
        return NULL;
    }
    r->p += length;
    return text;
}

static PyObject *decode_map(PyObject *op, Reader *r) {
    PyObject *values = argument(op, 1);
    if (values == NULL) return NULL;
    PyObject *map = PyDict_New();
    if (map == NULL) return NULL;
    for (;;) {
        int64_t count;
        if (read_block_count(r, &count) < 0) goto fail;
        if (count == 0) return map;
        for (int64_t i = 0; i < count; i++) {
            PyObject *key = decode_string(r);
            if (key == NULL) goto fail;
            PyObject *value = decode_op(values, r);
            if (value == NULL) {
                Py_DECREF(key);
                goto fail;
            }
            int failed = PyDict_SetItem(map, key, value);
            Py_DECREF(key);
            Py_DECREF(value);
            if (failed) goto fail;
        }
    }
fail:
    Py_DECREF(map);
    return NULL;
}

static PyObject *pick(PyObject *op, Reader *r) {
    /* union branch or enum symbol: the index-th item of the node's tuple */
    PyObject *choices = argument(op, 1);
    if (choices == NULL) return NULL;
    if (!PyTuple_Check(choices)) {
        PyErr_SetString(PyExc_TypeError, "a union or enum node is (opcode, tuple)");
        return NULL;
    }
    int64_t index;
    if (read_long(r, &index) < 0 || index < 0 || index >= PyTuple_GET_SIZE(choices)) return NULL;
    return PyTuple_GET_ITEM(choices, (Py_ssize_t)index);
}

static PyObject *decode_op(PyObject *op, Reader *r) {
    long opcode = opcode_of(op);
    if (opcode == -1 && PyErr_Occurred()) return NULL;
    switch (opcode) {
    case OP_NULL:
        Py_RETURN_NONE;
    case OP_BOOLEAN:
        if (r->p >= r->end || *r->p > 1) return NULL;
        return PyBool_FromLong(*r->p++);
    case OP_INT:
    case OP_LONG: {
        int64_t value;
        if (read_long(r, &value) < 0) return NULL;
        if (opcode == OP_INT && (value < INT32_MIN || value > INT32_MAX)) return NULL;
        return PyLong_FromLongLong(value);
    }
    case OP_FLOAT:
    case OP_DOUBLE: {
        int size = opcode == OP_FLOAT ? 4 : 8;
        if (r->end - r->p < size) return NULL;
        double value = size == 4 ? PyFloat_Unpack4((const char *)r->p, 1)
                                 : PyFloat_Unpack8((const char *)r->p, 1);
        if (value == -1.0 && PyErr_Occurred()) return NULL;
        r->p += size;
        return PyFloat_FromDouble(value);
    }
    case OP_BYTES: {
        Py_ssize_t length;
        if (read_length(r, &length) < 0) return NULL;
        PyObject *data = PyBytes_FromStringAndSize((const char *)r->p, length);
        if (data != NULL) r->p += length;
        return data;
    }
    case OP_STRING:
        return decode_string(r);
    case OP_FIXED: {
        PyObject *size_object = argument(op, 1);
        if (size_object == NULL) return NULL;
        Py_ssize_t size = PyLong_AsSsize_t(size_object);
        if (size == -1 && PyErr_Occurred()) return NULL;
        if (size < 0 || size > r->end - r->p) return NULL;
        PyObject *data = PyBytes_FromStringAndSize((const char *)r->p, size);
        if (data != NULL) r->p += size;
        return data;
    }
    case OP_ENUM: {
        PyObject *symbol = pick(op, r);
        Py_XINCREF(symbol);
        return symbol;
    }
    case OP_UNION: {
        PyObject *branch = pick(op, r);
        return branch == NULL ? NULL : decode_op(branch, r);
    }
    case OP_ARRAY:
        return decode_array(op, r);
    case OP_MAP:
        return decode_map(op, r);
    case OP_RECORD:
        return decode_record(op, r);
    default:
        PyErr_Format(PyExc_TypeError, "unknown opcode %ld", opcode);
        return NULL;
    }
}

/* The datum of data[start:] (the whole of it), or None. */
static PyObject *decode_from(PyObject *program, PyObject *data, Py_ssize_t start) {
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    if (start < 0 || start > size) Py_RETURN_NONE;
    const unsigned char *base = (const unsigned char *)PyBytes_AS_STRING(data);
    Reader reader = {base + start, base + size};
    PyObject *datum = decode_op(program, &reader);
    if (datum == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    if (reader.p != reader.end) { /* bytes left over: not one record */
        Py_DECREF(datum);
        Py_RETURN_NONE;
    }
    return datum;
}

/* decode_frame(program, header, data): the datum of the body of a frame that starts with
 * ``header`` (bytes), or None: for a malformed body, a frame without the header, or data
 * that is not bytes (a tombstone's None). One call for what the codec's fast path checks
 * on every input message. */
static PyObject *decode_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "decode_frame(program, header: bytes, data)");
        return NULL;
    }
    PyObject *header = args[1], *data = args[2];
    if (!PyBytes_Check(data)) Py_RETURN_NONE;
    Py_ssize_t length = PyBytes_GET_SIZE(header);
    if (PyBytes_GET_SIZE(data) < length
            || memcmp(PyBytes_AS_STRING(data), PyBytes_AS_STRING(header), (size_t)length) != 0)
        Py_RETURN_NONE;
    return decode_from(args[0], data, length);
}

/* assemble(cls, fields, names): an instance of the pydantic model ``cls`` whose field
 * values are the dict ``fields`` and whose set of given fields is ``names``, made as
 * streams.assembly._assemble makes it (object.__new__, then object.__setattr__ of pydantic's
 * four slots), without the four Python-level calls: the input records' hot path. */
static PyObject *empty_tuple, *name_dict, *name_fields_set, *name_extra, *name_private;

static PyObject *assemble(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyType_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "assemble(cls, fields: dict, names)");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)args[0];
    if (type->tp_new == NULL) {
        PyErr_SetString(PyExc_TypeError, "assemble: cls cannot be instantiated");
        return NULL;
    }
    PyObject *record = type->tp_new(type, empty_tuple, NULL);
    if (record == NULL) return NULL;
    if (PyObject_GenericSetAttr(record, name_dict, args[1]) < 0
            || PyObject_GenericSetAttr(record, name_fields_set, args[2]) < 0
            || PyObject_GenericSetAttr(record, name_extra, Py_None) < 0
            || PyObject_GenericSetAttr(record, name_private, Py_None) < 0) {
        Py_DECREF(record);
        return NULL;
    }
    return record;
}

/* plain_getattr(cls): attribute reads of cls's instances go straight to the generic
 * lookup (instance dict, then the type), as for a plain object. A pydantic model's
 * class defines __getattr__ (for private attributes and extras), so CPython gives it
 * slot_tp_getattr_hook, which looks __getattribute__ and __getattr__ up again on every
 * read, several times the generic lookup's cost, a dozen reads an event.
 * Only for models with neither (checked by the caller, streams.records): for them that
 * __getattr__ only ever raises the AttributeError the generic lookup raises. */
static PyObject *plain_getattr(PyObject *module, PyObject *cls) {
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "plain_getattr(cls): cls must be a class");
        return NULL;
    }
    ((PyTypeObject *)cls)->tp_getattro = PyObject_GenericGetAttr;
    PyType_Modified((PyTypeObject *)cls);
    Py_RETURN_NONE;
}

static PyObject *has_plain_getattr(PyObject *module, PyObject *cls) {
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "has_plain_getattr(cls): cls must be a class");
        return NULL;
    }
    return PyBool_FromLong(((PyTypeObject *)cls)->tp_getattro == PyObject_GenericGetAttr);
}

/* ---- Encoding -------------------------------------------------------------------
 * encode_frame() writes a datum with the same program into the bytes fastavro's
 * schemaless_writer writes for it (tests/unit/test_avrodecode.py compares both). It
 * returns None for anything it does not write exactly as fastavro does: a missing
 * field, a value of another type than its schema's (a bool for a number included), a
 * union with more than one branch besides null, a number out of its type's range, a
 * string that cannot be UTF-8... The caller then lets fastavro write it, or say why
 * not. Python errors (out of memory) are raised. */

typedef struct {
    char *data;
    Py_ssize_t size, capacity;
} Writer;

/* -1 on a Python error (set), 0 on success */
static int writer_reserve(Writer *w, Py_ssize_t more) {
    if (more <= w->capacity - w->size) return 0;
    /* sizes past PY_SSIZE_T_MAX (no bytes object holds them) and a doubling that would
     * overflow are refused, not wrapped */
    if (more > PY_SSIZE_T_MAX - w->size) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t needed = w->size + more, capacity = w->capacity ? w->capacity : 256;
    while (capacity < needed) capacity = capacity > PY_SSIZE_T_MAX / 2 ? needed : capacity * 2;
    char *data = PyMem_Realloc(w->data, (size_t)capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    w->capacity = capacity;
    w->data = data;
    return 0;
}

static int write_raw(Writer *w, const void *bytes, Py_ssize_t size) {
    if (writer_reserve(w, size) < 0) return -1;
    memcpy(w->data + w->size, bytes, (size_t)size);
    w->size += size;
    return 0;
}

static int write_zigzag(Writer *w, int64_t value) {
    uint64_t n = ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
    if (writer_reserve(w, 10) < 0) return -1;
    while (n & ~(uint64_t)0x7F) {
        w->data[w->size++] = (char)((n & 0x7F) | 0x80);
        n >>= 7;
    }
    w->data[w->size++] = (char)n;
    return 0;
}

enum { ENCODED = 0, ENCODE_ERROR = -1, NOT_MINE = 1 };

/* A number of an Avro numeric type: an int or a float, not a bool. */
static int is_number(PyObject *datum) {
    return (PyLong_Check(datum) && !PyBool_Check(datum)) || PyFloat_Check(datum);
}

static int encode_op(PyObject *op, PyObject *datum, Writer *w);

static int encode_string(PyObject *datum, Writer *w) {
    if (!PyUnicode_Check(datum)) return NOT_MINE;
    Py_ssize_t size;
    const char *text = PyUnicode_AsUTF8AndSize(datum, &size);
    if (text == NULL) {  /* not encodable (lone surrogates): fastavro says why */
        PyErr_Clear();
        return NOT_MINE;
    }
    if (write_zigzag(w, size) < 0 || write_raw(w, text, size) < 0) return ENCODE_ERROR;
    return ENCODED;
}

static int encode_record(PyObject *op, PyObject *datum, Writer *w) {
    PyObject *names = argument(op, 1), *fields = names ? argument(op, 2) : NULL;
    if (fields == NULL) return ENCODE_ERROR;
    if (!PyDict_Check(datum)) return NOT_MINE;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++) {
        PyObject *value = PyDict_GetItemWithError(datum, PyTuple_GET_ITEM(names, i));
        if (value == NULL) return PyErr_Occurred() ? ENCODE_ERROR : NOT_MINE;
        int done = encode_op(PyTuple_GET_ITEM(fields, i), value, w);
        if (done != ENCODED) return done;
    }
    return ENCODED;
}

static int encode_items(PyObject *items_op, PyObject *datum, Writer *w) {
    if (!PyList_Check(datum) && !PyTuple_Check(datum)) return NOT_MINE;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(datum);
    if (count > 0) {
        if (write_zigzag(w, count) < 0) return ENCODE_ERROR;
        for (Py_ssize_t i = 0; i < count; i++) {
            /* the list may not change under us: its items are borrowed */
            if (PyList_Check(datum) && PyList_GET_SIZE(datum) != count) return NOT_MINE;
            int done = encode_op(items_op, PySequence_Fast_GET_ITEM(datum, i), w);
            if (done != ENCODED) return done;
        }
    }
    return write_zigzag(w, 0) < 0 ? ENCODE_ERROR : ENCODED;
}

static int encode_map(PyObject *values_op, PyObject *datum, Writer *w) {
    if (!PyDict_Check(datum)) return NOT_MINE;
    Py_ssize_t count = PyDict_GET_SIZE(datum), position = 0;
    PyObject *key, *value;
    if (count > 0) {
        if (write_zigzag(w, count) < 0) return ENCODE_ERROR;
        while (PyDict_Next(datum, &position, &key, &value)) {
            int done = encode_string(key, w);
            if (done == ENCODED) done = encode_op(values_op, value, w);
            if (done != ENCODED) return done;
        }
    }
    return write_zigzag(w, 0) < 0 ? ENCODE_ERROR : ENCODED;
}

/* A union of null and one other branch (either order); other unions are fastavro's. */
static int encode_union(PyObject *op, PyObject *datum, Writer *w) {
    PyObject *branches = argument(op, 1);
    if (branches == NULL) return ENCODE_ERROR;
    if (!PyTuple_Check(branches) || PyTuple_GET_SIZE(branches) != 2) return NOT_MINE;
    long first = opcode_of(PyTuple_GET_ITEM(branches, 0));
    long second = opcode_of(PyTuple_GET_ITEM(branches, 1));
    if (PyErr_Occurred()) return ENCODE_ERROR;
    if ((first == OP_NULL) == (second == OP_NULL)) return NOT_MINE;
    Py_ssize_t null_index = first == OP_NULL ? 0 : 1;
    if (datum == Py_None) return write_zigzag(w, null_index) < 0 ? ENCODE_ERROR : ENCODED;
    if (write_zigzag(w, 1 - null_index) < 0) return ENCODE_ERROR;
    return encode_op(PyTuple_GET_ITEM(branches, 1 - null_index), datum, w);
}

static int encode_op(PyObject *op, PyObject *datum, Writer *w) {
    long opcode = opcode_of(op);
    if (opcode == -1 && PyErr_Occurred()) return ENCODE_ERROR;
    switch (opcode) {
    case OP_NULL:
        return datum == Py_None ? ENCODED : NOT_MINE;
    case OP_BOOLEAN: {
        if (!PyBool_Check(datum)) return NOT_MINE;
        char byte = datum == Py_True;
        return write_raw(w, &byte, 1) < 0 ? ENCODE_ERROR : ENCODED;
    }
    case OP_INT:
    case OP_LONG: {
        if (!PyLong_Check(datum) || PyBool_Check(datum)) return NOT_MINE;
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(datum, &overflow);
        if (value == -1 && PyErr_Occurred()) return ENCODE_ERROR;
        if (overflow || (opcode == OP_INT && (value < INT32_MIN || value > INT32_MAX)))
            return NOT_MINE;
        return write_zigzag(w, value) < 0 ? ENCODE_ERROR : ENCODED;
    }
    case OP_FLOAT:
    case OP_DOUBLE: {
        if (!is_number(datum)) return NOT_MINE;
        double value = PyFloat_AsDouble(datum);
        if (value == -1.0 && PyErr_Occurred()) {  /* an int too large for a double */
            PyErr_Clear();
            return NOT_MINE;
        }
        unsigned char bytes[8];
        if (opcode == OP_FLOAT) {
            if (PyFloat_Pack4(value, (char *)bytes, 1) < 0) {
                PyErr_Clear();
                return NOT_MINE;
            }
            return write_raw(w, bytes, 4) < 0 ? ENCODE_ERROR : ENCODED;
        }
        if (PyFloat_Pack8(value, (char *)bytes, 1) < 0) return ENCODE_ERROR;
        return write_raw(w, bytes, 8) < 0 ? ENCODE_ERROR : ENCODED;
    }
    case OP_BYTES:
        if (!PyBytes_Check(datum)) return NOT_MINE;
        if (write_zigzag(w, PyBytes_GET_SIZE(datum)) < 0
                || write_raw(w, PyBytes_AS_STRING(datum), PyBytes_GET_SIZE(datum)) < 0)
            return ENCODE_ERROR;
        return ENCODED;
    case OP_STRING:
        return encode_string(datum, w);
    case OP_FIXED: {
        PyObject *size = argument(op, 1);
        if (size == NULL) return ENCODE_ERROR;
        if (!PyBytes_Check(datum) || PyBytes_GET_SIZE(datum) != PyLong_AsSsize_t(size))
            return PyErr_Occurred() ? ENCODE_ERROR : NOT_MINE;
        return write_raw(w, PyBytes_AS_STRING(datum), PyBytes_GET_SIZE(datum)) < 0
            ? ENCODE_ERROR : ENCODED;
    }
    case OP_ENUM: {
        PyObject *symbols = argument(op, 1);
        if (symbols == NULL) return ENCODE_ERROR;
        if (!PyUnicode_Check(datum)) return NOT_MINE;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(symbols); i++) {
            int equal = PyUnicode_Compare(datum, PyTuple_GET_ITEM(symbols, i));
            if (equal == -1 && PyErr_Occurred()) return ENCODE_ERROR;
            if (equal == 0) return write_zigzag(w, i) < 0 ? ENCODE_ERROR : ENCODED;
        }
        return NOT_MINE;
    }
    case OP_UNION:
        return encode_union(op, datum, w);
    case OP_ARRAY: {
        PyObject *items = argument(op, 1);
        return items == NULL ? ENCODE_ERROR : encode_items(items, datum, w);
    }
    case OP_MAP: {
        PyObject *values = argument(op, 1);
        return values == NULL ? ENCODE_ERROR : encode_map(values, datum, w);
    }
    case OP_RECORD:
        return encode_record(op, datum, w);
    default:
        PyErr_Format(PyExc_TypeError, "unknown opcode %ld", opcode);
        return ENCODE_ERROR;
    }
}

/* encode_frame(program, header, datum): header followed by the datum's Avro body, or
 * None when fastavro is to write it. */
static PyObject *encode_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "encode_frame(program, header: bytes, datum)");
        return NULL;
    }
    Writer w = {NULL, 0, 0};
    int done = write_raw(&w, PyBytes_AS_STRING(args[1]), PyBytes_GET_SIZE(args[1]));
    if (done == 0) done = encode_op(args[0], args[2], &w);
    PyObject *out = NULL;
    if (done == ENCODED) out = PyBytes_FromStringAndSize(w.data, w.size);
    else if (done == NOT_MINE) out = Py_NewRef(Py_None);
    PyMem_Free(w.data);
    return out;
}

static PyMethodDef methods[] = {
    {"plain_getattr", (PyCFunction)plain_getattr, METH_O,
     "plain_getattr(cls): instances of cls read attributes with the generic lookup, not "
     "through the class's __getattr__ hook (see streams.records)."},
    {"has_plain_getattr", (PyCFunction)has_plain_getattr, METH_O,
     "has_plain_getattr(cls) -> whether instances of cls read attributes with the generic "
     "lookup."},
    {"decode_frame", (PyCFunction)(void (*)(void))decode_frame, METH_FASTCALL,
     "decode_frame(program, header, data) -> the datum of the frame's body when data "
     "starts with header and its body is exactly one well-formed record of the program's "
     "schema, else None."},
    {"assemble", (PyCFunction)(void (*)(void))assemble, METH_FASTCALL,
     "assemble(cls, fields, names) -> the pydantic model cls with these field values and "
     "this set of given fields, unvalidated (see streams.assembly._assemble)."},
    {"encode_frame", (PyCFunction)(void (*)(void))encode_frame, METH_FASTCALL,
     "encode_frame(program, header, datum) -> header followed by the datum's Avro body, "
     "as fastavro writes it, or None for a datum fastavro is to write (or refuse)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_avro",
    "Avro frames of known schemas decoded and encoded, pydantic models assembled "
    "(see streams/avrodecode.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__avro(void) {
    empty_tuple = PyTuple_New(0);
    name_dict = PyUnicode_InternFromString("__dict__");
    name_fields_set = PyUnicode_InternFromString("__pydantic_fields_set__");
    name_extra = PyUnicode_InternFromString("__pydantic_extra__");
    name_private = PyUnicode_InternFromString("__pydantic_private__");
    if (!empty_tuple || !name_dict || !name_fields_set || !name_extra || !name_private)
        return NULL;
    return PyModule_Create(&module);
}
