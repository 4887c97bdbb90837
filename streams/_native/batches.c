/* Kafka record batches (format v2) read in C: read_batches() reads the record batches
 * of a fetched partition's bytes into the records streams/fetching.py hands to the
 * consumer, at C speed: aiokafka's own
 * reading costs a Cython record object, several property reads and a Python-level
 * record per message. It reads what aiokafka reads the same way (tests/unit/
 * test_fetching.py compares both) and leaves to aiokafka every batch that is not a
 * plain, well-formed v2 batch: compressed, an older format, or malformed in any way
 * (aiokafka then reads it, or raises its own error). Control batches are skipped, as
 * aiokafka's consumer skips them. */

#include "reader.h"

static uint32_t crc32c_table[8][256];

static void crc32c_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t crc = n;
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        crc32c_table[0][n] = crc;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t crc = crc32c_table[0][n];
        for (int k = 1; k < 8; k++) {
            crc = crc32c_table[0][crc & 0xFF] ^ (crc >> 8);
            crc32c_table[k][n] = crc;
        }
    }
}

/* CRC-32C (Castagnoli), slicing by 8. */
static uint32_t crc32c(const unsigned char *p, Py_ssize_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    while (n >= 8) {
        uint32_t low = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16
                              | (uint32_t)p[3] << 24);
        crc = crc32c_table[7][low & 0xFF] ^ crc32c_table[6][(low >> 8) & 0xFF]
              ^ crc32c_table[5][(low >> 16) & 0xFF] ^ crc32c_table[4][low >> 24]
              ^ crc32c_table[3][p[4]] ^ crc32c_table[2][p[5]] ^ crc32c_table[1][p[6]]
              ^ crc32c_table[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n-- > 0) crc = crc32c_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

static int64_t read_be(const unsigned char *p, int bytes) {
    uint64_t value = 0;
    for (int i = 0; i < bytes; i++) value = value << 8 | p[i];
    if (bytes < 8 && (value >> (bytes * 8 - 1)) & 1) value |= ~(uint64_t)0 << (bytes * 8);
    return (int64_t)value;
}

enum { BATCHES_END = 0, BATCHES_PYTHON = 1, BATCHES_CRC = 2, BATCHES_LIMIT = 3 };
#define BATCH_OVERHEAD 12  /* base offset, length */
#define BATCH_HEADER 61

/* A Kafka bytes field (length, then the bytes; -1: null) as a new reference. */
static PyObject *read_kafka_bytes(Reader *r) {
    int64_t length;
    if (read_long(r, &length) < 0 || length > (int64_t)(r->end - r->p)) return NULL;
    if (length < 0) Py_RETURN_NONE;
    PyObject *out = PyBytes_FromStringAndSize((const char *)r->p, (Py_ssize_t)length);
    r->p += length;
    return out;
}

/* The records of one uncompressed v2 batch appended to ``out``, those at or after
 * *next_offset (which moves past each); -1 when malformed (nothing appended then is
 * kept by the caller), with a Python error set only for a Python failure. */
static int read_batch_records(const unsigned char *batch, Py_ssize_t size, PyObject *out,
                              int64_t *next_offset, PyObject *topic, PyObject *partition,
                              PyTypeObject *cls) {
    int64_t base_offset = read_be(batch, 8);
    int log_append_time = (int)(read_be(batch + 21, 2) & 0x08) != 0;
    int64_t first_timestamp = read_be(batch + 27, 8), max_timestamp = read_be(batch + 35, 8);
    int64_t count = read_be(batch + 57, 4);
    Reader r = {batch + BATCH_HEADER, batch + size};
    for (int64_t index = 0; index < count; index++) {
        int64_t length, attributes, timestamp_delta, offset_delta, header_count;
        if (read_long(&r, &length) < 0 || length < 0) return -1;
        const unsigned char *start = r.p;
        if (read_long(&r, &attributes) < 0 || read_long(&r, &timestamp_delta) < 0
                || read_long(&r, &offset_delta) < 0)
            return -1;
        PyObject *key = read_kafka_bytes(&r);
        if (key == NULL) return -1;
        PyObject *value = read_kafka_bytes(&r);
        if (value == NULL) {
            Py_DECREF(key);
            return -1;
        }
        PyObject *headers = NULL;
        if (read_long(&r, &header_count) < 0 || header_count < 0
                || header_count > (int64_t)(r.end - r.p)
                || (headers = PyTuple_New((Py_ssize_t)header_count)) == NULL)
            goto malformed;
        for (int64_t h = 0; h < header_count; h++) {
            Py_ssize_t name_length;
            if (read_length(&r, &name_length) < 0) goto malformed;
            PyObject *name = PyUnicode_DecodeUTF8((const char *)r.p, name_length, NULL);
            if (name == NULL) {
                PyErr_Clear();
                goto malformed;
            }
            r.p += name_length;
            PyObject *header_value = read_kafka_bytes(&r);
            PyObject *header = header_value ? PyTuple_New(2) : NULL;
            if (header == NULL) {
                Py_DECREF(name);
                Py_XDECREF(header_value);
                goto malformed;
            }
            PyTuple_SET_ITEM(header, 0, name);
            PyTuple_SET_ITEM(header, 1, header_value);
            PyObject_GC_UnTrack(header);
            PyTuple_SET_ITEM(headers, (Py_ssize_t)h, header);
        }
        if (r.p - start != length) goto malformed;
        PyObject_GC_UnTrack(headers);  /* strings and bytes (see the record's below) */
        /* offsets and timestamps out of int64_t (and the offset after the last one):
         * aiokafka reads such a batch, with Python's integers */
        int64_t offset, timestamp = max_timestamp, after;
        if (add_int64(base_offset, offset_delta, &offset) < 0 || add_int64(offset, 1, &after) < 0
                || (!log_append_time
                    && add_int64(first_timestamp, timestamp_delta, &timestamp) < 0))
            goto malformed;
        if (offset < *next_offset) {  /* before the fetch position (a batch's head) */
            Py_DECREF(key);
            Py_DECREF(value);
            Py_DECREF(headers);
            continue;
        }
        PyObject *record = cls->tp_alloc(cls, 11);
        if (record == NULL) goto malformed;
        Py_INCREF(topic);
        Py_INCREF(partition);
        PyTuple_SET_ITEM(record, 0, topic);
        PyTuple_SET_ITEM(record, 1, partition);
        PyTuple_SET_ITEM(record, 2, PyLong_FromLongLong(offset));
        PyTuple_SET_ITEM(record, 3, PyLong_FromLongLong(timestamp));
        PyTuple_SET_ITEM(record, 4, PyLong_FromLong(log_append_time));
        PyTuple_SET_ITEM(record, 7, Py_NewRef(Py_None));  /* v2 records carry no checksum */
        PyTuple_SET_ITEM(record, 8, PyLong_FromSsize_t(key == Py_None ? -1 : PyBytes_GET_SIZE(key)));
        PyTuple_SET_ITEM(record, 9, PyLong_FromSsize_t(
            value == Py_None ? -1 : PyBytes_GET_SIZE(value)));
        PyTuple_SET_ITEM(record, 5, key);
        PyTuple_SET_ITEM(record, 6, value);
        PyTuple_SET_ITEM(record, 10, headers);
        if (!PyTuple_GET_ITEM(record, 2) || !PyTuple_GET_ITEM(record, 3)
                || !PyTuple_GET_ITEM(record, 4) || !PyTuple_GET_ITEM(record, 8)
                || !PyTuple_GET_ITEM(record, 9) || PyList_Append(out, record) < 0) {
            Py_DECREF(record);
            return -1;
        }
        /* Its fields are strings, numbers, bytes and tuples of them: it cannot be in a
         * reference cycle, so the collector need not track it (CPython untracks such
         * plain tuples itself, not those of a tuple subclass). */
        PyObject_GC_UnTrack(record);
        Py_DECREF(record);
        *next_offset = after;
        continue;
    malformed:
        Py_DECREF(key);
        Py_DECREF(value);
        Py_XDECREF(headers);
        return -1;
    }
    return r.p == r.end ? 0 : -1;  /* bytes left over: malformed */
}

/* read_batches(raw, pos, next_offset, topic, partition, cls, check_crcs, limit)
 *   -> (records, pos, next_offset, status) */
static PyObject *read_batches(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 8 || !PyBytes_Check(args[0]) || !PyType_Check(args[5])
            || !PyType_IsSubtype((PyTypeObject *)args[5], &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "read_batches(raw: bytes, pos, next_offset, topic, "
                        "partition, cls: a tuple type, check_crcs, limit)");
        return NULL;
    }
    const unsigned char *raw = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t raw_size = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    int64_t next_offset = PyLong_AsLongLong(args[2]);
    int check_crcs = PyObject_IsTrue(args[6]);
    /* records wanted: no batch is begun once this many are read (None: all) */
    Py_ssize_t limit = args[7] == Py_None ? PY_SSIZE_T_MAX : PyLong_AsSsize_t(args[7]);
    if (PyErr_Occurred()) return NULL;
    if (pos < 0 || pos > raw_size) {
        PyErr_SetString(PyExc_ValueError, "read_batches: pos out of the buffer");
        return NULL;
    }
    PyObject *records = PyList_New(0);
    if (records == NULL) return NULL;
    int status = BATCHES_END;
    while (raw_size - pos >= BATCH_OVERHEAD) {
        if (PyList_GET_SIZE(records) >= limit) {
            status = BATCHES_LIMIT;
            break;
        }
        const unsigned char *batch = raw + pos;
        int64_t size = BATCH_OVERHEAD + read_be(batch + 8, 4);
        if (size > raw_size - pos) break;  /* the fetch ends inside this batch */
        if (size < BATCH_HEADER || batch[16] != 2) {
            status = BATCHES_PYTHON;
            break;
        }
        if (check_crcs && crc32c(batch + 21, (Py_ssize_t)size - 21) != (uint32_t)read_be(batch + 17, 4)) {
            status = BATCHES_CRC;
            break;
        }
        int64_t attributes = read_be(batch + 21, 2);
        /* base offset + last offset delta + 1, when an int64_t (else aiokafka's) */
        int64_t last_offset, batch_next_offset;
        if (add_int64(read_be(batch, 8), read_be(batch + 23, 4), &last_offset) < 0
                || add_int64(last_offset, 1, &batch_next_offset) < 0) {
            status = BATCHES_PYTHON;
            break;
        }
        if (attributes & 0x20) {  /* a control batch: skipped */
            next_offset = batch_next_offset;
            pos += (Py_ssize_t)size;
            continue;
        }
        if (attributes & 0x07) {  /* compressed: aiokafka decompresses */
            status = BATCHES_PYTHON;
            break;
        }
        Py_ssize_t kept = PyList_GET_SIZE(records);
        int64_t offset = next_offset;
        if (read_batch_records(batch, (Py_ssize_t)size, records, &offset, args[3], args[4],
                               (PyTypeObject *)args[5]) < 0) {
            if (PyErr_Occurred() || PyList_SetSlice(records, kept, PY_SSIZE_T_MAX, NULL) < 0) {
                Py_DECREF(records);
                return NULL;
            }
            status = BATCHES_PYTHON;
            break;
        }
        /* format v2 keeps a batch's last offset when compaction removed its record */
        next_offset = batch_next_offset;
        pos += (Py_ssize_t)size;
    }
    return Py_BuildValue("(NnLi)", records, pos, (long long)next_offset, status);
}

static PyMethodDef methods[] = {
    {"read_batches", (PyCFunction)(void (*)(void))read_batches, METH_FASTCALL,
     "read_batches(raw, pos, next_offset, topic, partition, cls, check_crcs, limit) -> "
     "(records, pos, next_offset, status): the records (instances of the tuple type cls) "
     "of the plain v2 record batches of raw from pos on, up to the end, to the first "
     "batch aiokafka is to read (status 1) or whose CRC is wrong (status 2), or to the "
     "first batch after limit records (status 3; None: no limit); see "
     "streams/fetching.py."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_batches",
    "Kafka v2 record batches read into records (see streams/fetching.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__batches(void) {
    crc32c_init();
    return PyModule_Create(&module);
}
