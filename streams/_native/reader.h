/* The reading both extensions share: a bounds-checked cursor over untrusted bytes, and
 * the zig-zag varint that Avro (int, long, lengths) and Kafka's v2 records (lengths,
 * deltas) both use. Included by streams/_native/avro.c and streams/_native/batches.c. */
#ifndef POLYMON_READER_H
#define POLYMON_READER_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} Reader;

/* A zig-zag varint (Avro int and long). 0 on success, -1 when malformed. */
static inline int read_long(Reader *r, int64_t *out) {
    uint64_t value = 0;
    int shift = 0;
    for (;;) {
        if (r->p >= r->end) return -1;
        unsigned char byte = *r->p++;
        if (shift == 63 && byte > 1) return -1; /* more than 64 bits */
        value |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) break;
        shift += 7;
        if (shift > 63) return -1;
    }
    *out = (int64_t)((value >> 1) ^ (0 - (value & 1)));
    return 0;
}

/* a + b into *out, or -1 when the sum is not an int64_t: offsets and timestamps of a
 * record batch are sums of fields the input sets (base + delta), and signed overflow is
 * undefined behaviour in C, so each is checked before it is made. */
static inline int add_int64(int64_t a, int64_t b, int64_t *out) {
    if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) return -1;
    *out = a + b;
    return 0;
}

/* A length (of bytes, a string): non-negative and within the buffer. */
static inline int read_length(Reader *r, Py_ssize_t *out) {
    int64_t length;
    if (read_long(r, &length) < 0 || length < 0 || length > (int64_t)(r->end - r->p)) return -1;
    *out = (Py_ssize_t)length;
    return 0;
}

#endif
