/* The Node.js addon: N-API entry points over spanguard.h, one per C call,
 * converting JavaScript values and nothing more (index.js is the API).
 *
 * Why an addon and not koffi: a koffi call costs several hundred
 * nanoseconds, N-API tens (bench/node, `make bench`).
 *
 * Conventions. A span handle (uint64) crosses as two uint32 numbers (hi,
 * lo), since a JS number holds 53 bits. Span calls return undefined for
 * OK and any other spanguard result code as a number; `begin*` write the
 * new handle into the Uint32Array given to `init`, so they allocate no JS
 * object. Times cross as (seconds, nanoseconds), OpenTelemetry's HrTime.
 * Attribute lists cross as two arrays, keys and values (or, for beginKV,
 * as arguments); a value's type follows from typeof
 * (integral numbers and BigInts are ints); an Array is an array attribute
 * (numbers: int64 when every element is a safe integer, else doubles), a
 * Uint8Array or Buffer a bytes attribute.
 *
 * Thread-safety: everything runs on the JS thread of its environment
 * except flush and shutdown, whose blocking C call runs on libuv's pool. */
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uchar.h>

#include "spanguard.h"

/* Where an environment's tracers send the error callback's news: a
 * threadsafe function that calls the JS listener setEventSink gave. Never
 * freed: a tracer never freed keeps its address as user_data past the
 * environment. `fn` is NULL before setEventSink and once the environment
 * is torn down (its finalizer, under `lock`, which the callback holds
 * around its call: so the function is never called once freed). */
typedef struct {
    pthread_mutex_t lock;
    napi_threadsafe_function fn;
} event_sink;

/* Per environment (each worker thread loads the addon anew). */
typedef struct {
    /* [hi, lo] of the last span begun; after an end, OUT_IDS words of the
     * ended span's ids (end_keeping_ids). */
    uint32_t *out;
    napi_ref out_ref;
    event_sink *events;
} addon_state;

/* The words init's Uint32Array holds: the handle, then the kept ids. */
#define OUT_WORDS 11
#define OUT_IDS 2

#define CALL(env, expr)                                                      \
    do {                                                                     \
        if ((expr) != napi_ok) return throw_last(env, #expr);               \
    } while (0)

static napi_value throw_last(napi_env env, const char *what) {
    const napi_extended_error_info *info = NULL;
    napi_get_last_error_info(env, &info);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) {
        char msg[256];
        snprintf(msg, sizeof msg, "spanguard addon: %s: %s", what,
                 info && info->error_message ? info->error_message : "N-API call failed");
        napi_throw_error(env, NULL, msg);
    }
    return NULL;
}

static napi_value number(napi_env env, double v) {
    napi_value out = NULL;
    napi_create_double(env, v, &out);
    return out;
}

static napi_value code_value(napi_env env, spanguard_result rc) {
    napi_value out = NULL;
    napi_create_uint32(env, (uint32_t)rc, &out);
    return out;
}

/* What a span call returns: undefined for OK (a callback returning NULL
 * makes no value: one N-API call fewer a crossing, and a span makes three
 * to five), else the code as a number. */
static napi_value result_value(napi_env env, spanguard_result rc) {
    return rc == SPANGUARD_RESULT_OK ? NULL : code_value(env, rc);
}

/* ---- the memory of one call ------------------------------------------- */

/* What one call converts (strings, and the elements of array and bytes
 * attributes) lives here until text_free: the first TEXT_STACK bytes on
 * the stack, the rest in heap blocks of BLOCK_BYTES, and a value longer
 * than a quarter of that in a block of its own. No limit on how many
 * strings one call converts. */
#define TEXT_STACK 4096
#define BLOCK_BYTES 65536
typedef struct arena_block {
    struct arena_block *prev;
    size_t size, used;
    _Alignas(8) char data[];
} arena_block;

typedef struct {
    _Alignas(8) char stack[TEXT_STACK];
    size_t used;
    arena_block *heap; /* the block being filled, and the full ones; NULL while on the stack */
    arena_block *own;  /* blocks of one long value each */
} text_arena;

static void text_init(text_arena *a) {
    a->used = 0;
    a->heap = NULL;
    a->own = NULL;
}

static void blocks_free(arena_block *b) {
    while (b) {
        arena_block *prev = b->prev;
        free(b);
        b = prev;
    }
}

static void text_free(text_arena *a) {
    blocks_free(a->heap);
    blocks_free(a->own);
    a->heap = a->own = NULL;
}

static size_t align_up(size_t n, size_t align) { return (n + align - 1) & ~(align - 1); }

/* Where the next bytes go: the free space of the place being filled. */
static char *arena_free_space(text_arena *a, size_t *room) {
    if (!a->heap) {
        *room = TEXT_STACK - a->used;
        return a->stack + a->used;
    }
    *room = a->heap->size - a->heap->used;
    return a->heap->data + a->heap->used;
}

/* Marks `n` bytes at the free space as taken. */
static void arena_commit(text_arena *a, size_t n) {
    if (a->heap) a->heap->used += n;
    else a->used += n;
}

/* `n` bytes aligned to `align` (a power of two, at most 8), kept until
 * text_free. NULL with a JS exception pending when out of memory. */
static void *arena_alloc(napi_env env, text_arena *a, size_t n, size_t align) {
    size_t *used = a->heap ? &a->heap->used : &a->used;
    size_t size = a->heap ? a->heap->size : TEXT_STACK;
    char *base = a->heap ? a->heap->data : a->stack;
    size_t at = align_up(*used, align);
    if (at <= size && n <= size - at) {
        *used = at + n;
        return base + at;
    }
    bool own = n > BLOCK_BYTES / 4;
    size_t block = own ? n : BLOCK_BYTES;
    arena_block *b = malloc(sizeof *b + block);
    if (!b) {
        napi_throw_error(env, NULL, "spanguard: out of memory");
        return NULL;
    }
    b->size = block;
    b->used = n;
    /* A long value's block is off to the side: the place being filled
     * keeps its free space. */
    arena_block **list = own ? &a->own : &a->heap;
    b->prev = *list;
    *list = b;
    return b->data;
}

/* napi_get_value_string_utf8 of `*v` (with `buf` NULL: its length only),
 * a non-string first converted with String() (then `*v` is that string).
 * The read itself says whether `*v` is a string: no napi_typeof, one
 * N-API call fewer on the hot path, where keys and values are strings. */
static bool utf8_of(napi_env env, napi_value *v, char *buf, size_t size, size_t *len) {
    napi_status st = napi_get_value_string_utf8(env, *v, buf, size, len);
    if (st == napi_string_expected) {
        if (napi_coerce_to_string(env, *v, v) != napi_ok) return false;
        st = napi_get_value_string_utf8(env, *v, buf, size, len);
    }
    return st == napi_ok;
}

/* String `v` (a string) as UTF-8 with each lone surrogate as the three
 * bytes of its code point (WTF-8), which are not UTF-8: the library
 * replaces them and counts them in utf8_replaced, as it does those the
 * Python binding passes. NULL with a JS exception pending on failure. */
static const char *wtf8_of(napi_env env, text_arena *a, napi_value v, size_t *len) {
    size_t n = 0;
    if (napi_get_value_string_utf16(env, v, NULL, 0, &n) != napi_ok) return NULL;
    char16_t *u = arena_alloc(env, a, (n + 1) * sizeof *u, _Alignof(char16_t));
    if (!u || napi_get_value_string_utf16(env, v, u, n + 1, &n) != napi_ok) return NULL;
    /* At most 3 bytes a UTF-16 unit (a pair's 4 bytes are 2 units' worth). */
    unsigned char *out = arena_alloc(env, a, 3 * n + 1, 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = u[i];
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < n && u[i + 1] >= 0xDC00 && u[i + 1] <= 0xDFFF) {
            c = 0x10000 + ((c - 0xD800) << 10) + (u[i + 1] - 0xDC00u);
            i++;
        }
        if (c < 0x80) {
            out[o++] = (unsigned char)c;
        } else if (c < 0x800) {
            out[o++] = (unsigned char)(0xC0 | c >> 6);
            out[o++] = (unsigned char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out[o++] = (unsigned char)(0xE0 | c >> 12);
            out[o++] = (unsigned char)(0x80 | (c >> 6 & 0x3F));
            out[o++] = (unsigned char)(0x80 | (c & 0x3F));
        } else {
            out[o++] = (unsigned char)(0xF0 | c >> 18);
            out[o++] = (unsigned char)(0x80 | (c >> 12 & 0x3F));
            out[o++] = (unsigned char)(0x80 | (c >> 6 & 0x3F));
            out[o++] = (unsigned char)(0x80 | (c & 0x3F));
        }
    }
    out[o] = '\0';
    *len = o;
    return (const char *)out;
}

/* Whether UTF-8 that V8 wrote may have held a lone surrogate: V8 writes
 * one as U+FFFD, silently, so that a prompt cut inside a surrogate pair
 * (the SDK's attributeValueLengthLimit cuts UTF-16 units) arrived mended
 * and counted nowhere. Only then (or for a real U+FFFD) is the string
 * read again, by wtf8_of. */
static bool may_hold_lone_surrogate(const char *p, size_t len) {
    const char *end = p + len;
    for (const char *q = p; (q = memchr(q, 0xEF, (size_t)(end - q))) != NULL && end - q >= 3; q++) {
        if ((unsigned char)q[1] == 0xBF && (unsigned char)q[2] == 0xBD) return true;
    }
    return false;
}

/* The UTF-8 bytes of string `v` (a non-string is converted with String()),
 * kept until text_free; a lone surrogate as wtf8_of has it. NULL with a
 * JS exception pending on failure. */
static const char *text_of(napi_env env, text_arena *a, napi_value v, size_t *len) {
    size_t room;
    char *dst = arena_free_space(a, &room);
    if (room > 1) {
        /* Written whole when it fits. napi NUL-terminates and copies whole
         * characters only, so a string it cut fills the room to within 3
         * bytes (a character of up to 4 that did not fit): a copy that
         * ends closer than that may have been cut, and the real length is
         * asked. (Read as whole when merely shorter than the room, a CJK
         * prompt of 120 KB arrived as its first 4 KB, nothing counted.) */
        if (!utf8_of(env, &v, dst, room, len)) return NULL;
        if (*len + 4 < room) {
            arena_commit(a, *len + 1);
            return may_hold_lone_surrogate(dst, *len) ? wtf8_of(env, a, v, len) : dst;
        }
    }
    if (!utf8_of(env, &v, NULL, 0, len)) return NULL;
    char *p = arena_alloc(env, a, *len + 1, 1);
    if (!p) return NULL;
    if (napi_get_value_string_utf8(env, v, p, *len + 1, len) != napi_ok) return NULL;
    return may_hold_lone_surrogate(p, *len) ? wtf8_of(env, a, v, len) : p;
}

/* ---- arguments -------------------------------------------------------- */

/* beginKV's 5 arguments and KV_PAIRS key/value pairs. */
#define KV_PAIRS 8
#define MAX_ARGS (5 + 2 * KV_PAIRS)
typedef struct {
    size_t argc;
    napi_value argv[MAX_ARGS];
    addon_state *state;
} args;

static bool get_args(napi_env env, napi_callback_info info, args *a, size_t want) {
    a->argc = MAX_ARGS;
    if (napi_get_cb_info(env, info, &a->argc, a->argv, NULL, (void **)&a->state) != napi_ok) return false;
    if (a->argc < want) {
        napi_throw_type_error(env, NULL, "spanguard addon: too few arguments");
        return false;
    }
    return true;
}

static bool u32_arg(napi_env env, napi_value v, uint32_t *out) {
    return napi_get_value_uint32(env, v, out) == napi_ok;
}

static bool span_arg(napi_env env, const args *a, size_t i, spanguard_span *out) {
    uint32_t hi = 0, lo = 0;
    if (!u32_arg(env, a->argv[i], &hi) || !u32_arg(env, a->argv[i + 1], &lo)) return false;
    *out = (uint64_t)hi << 32 | lo;
    return true;
}

static bool tracer_arg(napi_env env, napi_value v, spanguard_tracer **out) {
    return napi_get_value_external(env, v, (void **)out) == napi_ok;
}

/* (seconds, nanoseconds) to Unix nanoseconds; 0 stays 0 ("now"). */
static bool time_arg(napi_env env, const args *a, size_t i, uint64_t *out) {
    double s = 0, ns = 0;
    if (napi_get_value_double(env, a->argv[i], &s) != napi_ok) return false;
    if (napi_get_value_double(env, a->argv[i + 1], &ns) != napi_ok) return false;
    /* NaN, negative or past 2554 (u64 nanoseconds): "now", never a
     * conversion C leaves undefined. index.js sends none of these. */
    if (!(s >= 0 && s < 1.8e10) || !(ns >= 0 && ns < 1e18)) s = ns = 0;
    *out = (uint64_t)s * 1000000000ull + (uint64_t)ns;
    return true;
}

static void write_handle(const args *a, spanguard_span s) {
    a->state->out[0] = (uint32_t)(s >> 32);
    a->state->out[1] = (uint32_t)s;
}

/* ---- attribute lists -------------------------------------------------- */

#define ATTRS_STACK 64
typedef struct {
    spanguard_attribute stack[ATTRS_STACK];
    spanguard_attribute *items;
    size_t n;
    /* Values OpenTelemetry does not take (a function, a symbol, a Date or
     * class instance, a complex value holding one, a cycle), left out: a
     * call that left one out answers ADDON_VALUE_LEFT_OUT, which index.js
     * counts (leftOut) and warns about once. */
    size_t left_out;
    text_arena text;
} attr_list;

/* The addon's own notice, beside spanguard's codes: the call succeeded and
 * some values were left out (RESULT.VALUE_LEFT_OUT in index.js). */
#define ADDON_VALUE_LEFT_OUT 100

static void attrs_init(attr_list *l) {
    l->items = l->stack;
    l->n = 0;
    l->left_out = 0;
    text_init(&l->text);
}

/* What a value became: stored in the list; left out, without a word (null
 * and undefined, which OpenTelemetry's setAttribute ignores) or with one
 * (a value it does not take); or an exception is pending. */
typedef enum { VALUE_THREW, VALUE_STORED, VALUE_SKIPPED, VALUE_LEFT_OUT } value_fate;

/* A call's answer: ADDON_VALUE_LEFT_OUT when it succeeded but left values
 * out, else spanguard's code. */
static _Thread_local uint32_t last_left_out;
static napi_value list_result(napi_env env, spanguard_result rc, const attr_list *l) {
    if (rc != SPANGUARD_RESULT_OK || !l->left_out) return result_value(env, rc);
    last_left_out = l->left_out > UINT32_MAX ? UINT32_MAX : (uint32_t)l->left_out;
    napi_value out = NULL;
    napi_create_uint32(env, ADDON_VALUE_LEFT_OUT, &out);
    return out;
}

static void attrs_free(attr_list *l) {
    if (l->items && l->items != l->stack) free(l->items);
    l->items = NULL;
    text_free(&l->text);
}

/* A number is a safe integer (Number.isSafeInteger). */
static bool safe_integer(double d) {
    return d >= -9007199254740991.0 && d <= 9007199254740991.0 && d == (double)(int64_t)d;
}

/* Whether an element is null or undefined. */
static bool no_value(napi_valuetype t) { return t == napi_null || t == napi_undefined; }

/* The most values one attribute value may hold, all levels: an object that
 * refers to another twice at each of 32 levels holds 2^32 without any
 * cycle, and a sparse Array (`a.length = 2 ** 32 - 1`) four billion holes,
 * which were read one by one (and their 32 GB of elements allocated). */
#define ANY_MAX_NODES 1000000

static value_fate complex_value(napi_env env, attr_list *l, napi_value v, spanguard_attribute *at);

/* An Array into `at` as a spanguard array attribute: strings, booleans,
 * BigInts (int64), or numbers (int64 when every element is a safe
 * integer, else doubles). An empty Array is an empty array. A null or
 * undefined element is its type's zero ('', false, 0; an Array of only
 * those: strings): OpenTelemetry keeps nulls in arrays (the JS SDK takes
 * them) and lets an exporter that cannot send a null send those instead;
 * spanguard's arrays are typed. Elements of different types, or other
 * than those (an object, an array), make it a complex value
 * (complex_value); this path, the common one, costs what it did. */
static value_fate array_value(napi_env env, attr_list *l, napi_value v, spanguard_attribute *at) {
    uint32_t n = 0;
    if (napi_get_array_length(env, v, &n) != napi_ok) return VALUE_THREW;
    at->type_ = SPANGUARD_VALUE_STRING_ARRAY;
    at->string_value = NULL;
    at->string_len = n;
    if (n == 0) return VALUE_STORED;
    if (n > ANY_MAX_NODES) return VALUE_LEFT_OUT;
    napi_value e;
    napi_valuetype first = napi_undefined, t;
    uint32_t typed_at = 0; /* the element that gave the type, still in `e` */
    for (; typed_at < n; typed_at++) {
        if (napi_get_element(env, v, typed_at, &e) != napi_ok || napi_typeof(env, e, &first) != napi_ok)
            return VALUE_THREW;
        if (!no_value(first)) break;
    }
    if (no_value(first)) first = napi_string;
    size_t size = first == napi_string    ? sizeof(spanguard_string)
                  : first == napi_boolean ? sizeof(bool)
                  : first == napi_number || first == napi_bigint ? 8
                                                                 : 0;
    if (size == 0) return complex_value(env, l, v, at); /* objects or arrays inside */
    char *data = arena_alloc(env, &l->text, (size_t)n * size, 8);
    if (!data) return VALUE_THREW;
    /* Zero: what a null element stays ({NULL, 0} is the empty string). */
    memset(data, 0, (size_t)n * size);
    bool all_safe = true;
    for (uint32_t i = 0; i < n; i++) {
        /* Element 0 was read already when it gave the type (the common case). */
        if ((i > 0 || typed_at > 0) && napi_get_element(env, v, i, &e) != napi_ok) return VALUE_THREW;
        if (napi_typeof(env, e, &t) != napi_ok) return VALUE_THREW;
        if (no_value(t)) continue;
        if (t != first) return complex_value(env, l, v, at); /* mixed */
        if (t == napi_string) {
            spanguard_string *s = (spanguard_string *)data + i;
            if (!(s->ptr = text_of(env, &l->text, e, &s->len))) return VALUE_THREW;
        } else if (t == napi_boolean) {
            if (napi_get_value_bool(env, e, (bool *)data + i) != napi_ok) return VALUE_THREW;
        } else if (t == napi_bigint) {
            bool lossless;
            if (napi_get_value_bigint_int64(env, e, (int64_t *)data + i, &lossless) != napi_ok) return VALUE_THREW;
            if (!lossless) return VALUE_LEFT_OUT; /* beyond int64: never wrapped */
        } else {
            double *d = (double *)data + i;
            if (napi_get_value_double(env, e, d) != napi_ok) return VALUE_THREW;
            all_safe = all_safe && safe_integer(*d);
        }
    }
    if (first == napi_number && all_safe) {
        /* The same 8 bytes each: converted in place. */
        for (uint32_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, data + 8 * (size_t)i, 8);
            int64_t x = (int64_t)d;
            memcpy(data + 8 * (size_t)i, &x, 8);
        }
    }
    at->type_ = first == napi_string    ? SPANGUARD_VALUE_STRING_ARRAY
                : first == napi_boolean ? SPANGUARD_VALUE_BOOL_ARRAY
                : first == napi_bigint || all_safe ? SPANGUARD_VALUE_INT_ARRAY
                                                   : SPANGUARD_VALUE_DOUBLE_ARRAY;
    at->string_value = data;
    return VALUE_STORED;
}

/* ---- complex values (OpenTelemetry's AnyValue) ------------------------- */

/* The deepest Array or plain object the binding encodes (the attribute's
 * value is level 1): the highest depth limit a tracer may have
 * (SPANGUARD_MAX_DEPTH_LIMIT). One deeper is written as an empty
 * ArrayValue, unread, which the library replaces by the empty value and
 * counts (values_truncated), as it does any array or map deeper than the
 * tracer's depth limit (64 by default, OpenTelemetry's
 * attribute_value_depth_limit): the value arrives cut at that limit, the
 * rest kept, as in the Python binding. It also ends a value that holds
 * itself, which so arrives cut at the limit too. */
#define ANY_MAX_DEPTH SPANGUARD_MAX_DEPTH_LIMIT

/* An OTLP AnyValue being written (opentelemetry/proto/common/v1/common.proto). */
typedef struct {
    uint8_t *buf;
    size_t len, cap;
    size_t nodes;
    napi_value object_proto; /* Object.prototype */
} any_writer;

/* What writing a value came to: written; refused (not a value OpenTelemetry
 * takes, or too big: the attribute is left out); or an
 * exception is pending (out of memory). */
typedef enum { ANY_OK, ANY_REFUSED, ANY_THREW } any_fate;

static bool any_reserve(napi_env env, any_writer *w, size_t more) {
    if (w->cap - w->len >= more) return true;
    size_t cap = w->cap ? w->cap : 256;
    while (cap - w->len < more) cap *= 2;
    uint8_t *b = realloc(w->buf, cap);
    if (!b) {
        napi_throw_error(env, NULL, "spanguard: out of memory");
        return false;
    }
    w->buf = b;
    w->cap = cap;
    return true;
}

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void put_varint_at(uint8_t *p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p = (uint8_t)v;
}

static bool any_varint(napi_env env, any_writer *w, uint64_t v) {
    if (!any_reserve(env, w, 10)) return false;
    put_varint_at(w->buf + w->len, v);
    w->len += varint_len(v);
    return true;
}

/* A length-delimited field's tag, written before its body; any_close puts
 * the length in once the body is written after it. */
static bool any_open(napi_env env, any_writer *w, uint32_t field, size_t *body) {
    if (!any_varint(env, w, (uint64_t)field << 3 | 2)) return false;
    *body = w->len;
    return true;
}

static bool any_close(napi_env env, any_writer *w, size_t body) {
    size_t n = w->len - body, k = varint_len(n);
    if (!any_reserve(env, w, k)) return false;
    memmove(w->buf + body + k, w->buf + body, n);
    put_varint_at(w->buf + body, n);
    w->len += k;
    return true;
}

/* A string as a length-delimited field: UTF-8, lone surrogates as U+FFFD
 * (V8's conversion; the library refuses a complex value whose text is not
 * UTF-8). */
static any_fate any_string(napi_env env, any_writer *w, uint32_t field, napi_value v) {
    size_t n = 0;
    if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) return ANY_THREW;
    if (!any_varint(env, w, (uint64_t)field << 3 | 2) || !any_varint(env, w, n) || !any_reserve(env, w, n + 1))
        return ANY_THREW;
    size_t got = 0;
    if (napi_get_value_string_utf8(env, v, (char *)w->buf + w->len, n + 1, &got) != napi_ok || got != n)
        return ANY_THREW;
    w->len += n;
    return ANY_OK;
}

/* A throw from JavaScript the value ran (a getter, a Proxy's trap) refuses
 * the value: recording never throws. */
static any_fate any_failed(napi_env env) {
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
        napi_value ignored;
        napi_get_and_clear_last_exception(env, &ignored);
    }
    return ANY_REFUSED;
}

static any_fate any_value_at(napi_env env, any_writer *w, napi_value v, size_t depth);

/* The body of an AnyValue holding `v` (nothing: the empty value), at
 * nesting level `depth`, each element and map value in a handle scope of
 * its own (an Array of a million elements makes no million handles). */
static any_fate any_element(napi_env env, any_writer *w, uint32_t field, napi_value v, size_t depth) {
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return ANY_THREW;
    size_t body;
    any_fate f = any_open(env, w, field, &body) ? any_value_at(env, w, v, depth) : ANY_THREW;
    if (f == ANY_OK && !any_close(env, w, body)) f = ANY_THREW;
    napi_close_handle_scope(env, scope);
    return f;
}

/* `v` (an Array) as an ArrayValue: its elements, holes and null and
 * undefined as the empty value. */
static any_fate any_array(napi_env env, any_writer *w, napi_value v, size_t depth) {
    uint32_t n = 0;
    if (napi_get_array_length(env, v, &n) != napi_ok) return any_failed(env);
    size_t list;
    if (!any_open(env, w, 5, &list)) return ANY_THREW;
    for (uint32_t i = 0; i < n; i++) {
        napi_handle_scope scope;
        if (napi_open_handle_scope(env, &scope) != napi_ok) return ANY_THREW;
        napi_value e;
        any_fate f = napi_get_element(env, v, i, &e) == napi_ok ? any_element(env, w, 1, e, depth + 1) : any_failed(env);
        napi_close_handle_scope(env, scope);
        if (f != ANY_OK) return f;
    }
    return any_close(env, w, list) ? ANY_OK : ANY_THREW;
}

/* `v` (a plain object) as a KeyValueList: its own enumerable string keys
 * (Object.keys, what OpenTelemetry's OTLP exporters send), in order. */
static any_fate any_map(napi_env env, any_writer *w, napi_value v, size_t depth) {
    napi_value keys;
    uint32_t n = 0;
    if (napi_get_all_property_names(env, v, napi_key_own_only, napi_key_enumerable | napi_key_skip_symbols,
                                    napi_key_numbers_to_strings, &keys) != napi_ok ||
        napi_get_array_length(env, keys, &n) != napi_ok)
        return any_failed(env);
    size_t list;
    if (!any_open(env, w, 6, &list)) return ANY_THREW;
    for (uint32_t i = 0; i < n; i++) {
        napi_handle_scope scope;
        if (napi_open_handle_scope(env, &scope) != napi_ok) return ANY_THREW;
        napi_value k, e;
        size_t kv;
        any_fate f = ANY_THREW;
        if (napi_get_element(env, keys, i, &k) != napi_ok || napi_get_property(env, v, k, &e) != napi_ok) {
            f = any_failed(env);
        } else if (any_open(env, w, 1, &kv) && any_string(env, w, 1, k) == ANY_OK) {
            f = any_element(env, w, 2, e, depth + 1);
            if (f == ANY_OK && !any_close(env, w, kv)) f = ANY_THREW;
        }
        napi_close_handle_scope(env, scope);
        if (f != ANY_OK) return f;
    }
    return any_close(env, w, list) ? ANY_OK : ANY_THREW;
}

/* The body of an AnyValue holding `v`, at nesting level `depth` (the
 * attribute's value is 1): a string, boolean, number (int64 when
 * integral within it, as a plain value), BigInt within int64, Uint8Array
 * or Buffer (bytes), Array (an ArrayValue), plain object (a KeyValueList;
 * its prototype Object.prototype or null), null or undefined (the empty
 * value). Anything else (a Date, a Map, a class instance, another typed
 * array, a function, a symbol, a BigInt past int64) refuses the whole
 * value, as OpenTelemetry's SDK drops an attribute value it does not take;
 * so do more than ANY_MAX_NODES values. An Array or plain object past
 * ANY_MAX_DEPTH is an empty ArrayValue, unread (see there). */
static any_fate any_value_at(napi_env env, any_writer *w, napi_value v, size_t depth) {
    if (++w->nodes > ANY_MAX_NODES) return ANY_REFUSED;
    napi_valuetype t;
    if (napi_typeof(env, v, &t) != napi_ok) return any_failed(env);
    switch (t) {
        case napi_null:
        case napi_undefined: return ANY_OK;
        case napi_string: return any_string(env, w, 1, v);
        case napi_boolean: {
            bool b;
            if (napi_get_value_bool(env, v, &b) != napi_ok) return any_failed(env);
            return any_varint(env, w, 2 << 3) && any_varint(env, w, b) ? ANY_OK : ANY_THREW;
        }
        case napi_number: {
            double d;
            if (napi_get_value_double(env, v, &d) != napi_ok) return any_failed(env);
            if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == (double)(int64_t)d)
                return any_varint(env, w, 3 << 3) && any_varint(env, w, (uint64_t)(int64_t)d) ? ANY_OK : ANY_THREW;
            uint64_t bits;
            memcpy(&bits, &d, 8);
            if (!any_varint(env, w, 4 << 3 | 1) || !any_reserve(env, w, 8)) return ANY_THREW;
            for (int i = 0; i < 8; i++) w->buf[w->len++] = (uint8_t)(bits >> (8 * i));
            return ANY_OK;
        }
        case napi_bigint: {
            int64_t i;
            bool lossless;
            if (napi_get_value_bigint_int64(env, v, &i, &lossless) != napi_ok) return any_failed(env);
            if (!lossless) return ANY_REFUSED; /* beyond int64: never wrapped */
            return any_varint(env, w, 3 << 3) && any_varint(env, w, (uint64_t)i) ? ANY_OK : ANY_THREW;
        }
        case napi_object: break;
        default: return ANY_REFUSED; /* a function, a symbol, an external */
    }
    bool is = false;
    if (napi_is_typedarray(env, v, &is) != napi_ok) return any_failed(env);
    if (is) {
        napi_typedarray_type type;
        size_t n;
        void *data;
        if (napi_get_typedarray_info(env, v, &type, &n, &data, NULL, NULL) != napi_ok) return any_failed(env);
        if (type != napi_uint8_array) return ANY_REFUSED;
        size_t body;
        if (!any_open(env, w, 7, &body) || !any_reserve(env, w, n)) return ANY_THREW;
        if (n) memcpy(w->buf + w->len, data, n);
        w->len += n;
        return any_close(env, w, body) ? ANY_OK : ANY_THREW;
    }
    /* A value that holds itself ends at ANY_MAX_DEPTH like any deep one:
     * a cycle costs at most ANY_MAX_DEPTH levels (and ANY_MAX_NODES
     * values), and comparing each object with those holding it would cost
     * more than that on every value that has none. */
    bool array = false;
    if (napi_is_array(env, v, &array) != napi_ok) return any_failed(env);
    if (!array) {
        napi_value proto, null_value;
        bool plain = false, is_null = false;
        if (napi_get_prototype(env, v, &proto) != napi_ok || napi_get_null(env, &null_value) != napi_ok ||
            napi_strict_equals(env, proto, w->object_proto, &plain) != napi_ok ||
            napi_strict_equals(env, proto, null_value, &is_null) != napi_ok)
            return any_failed(env);
        if (!plain && !is_null) return ANY_REFUSED;
    }
    if (depth > ANY_MAX_DEPTH) {
        size_t list;
        return any_open(env, w, 5, &list) && any_close(env, w, list) ? ANY_OK : ANY_THREW;
    }
    return array ? any_array(env, w, v, depth) : any_map(env, w, v, depth);
}

/* `v` (an object, or an Array that is not one of OpenTelemetry's typed
 * arrays) into `at` as a complex value (SPANGUARD_VALUE_ANY, an encoded
 * AnyValue kept in the call's arena), or left out (see any_value_at). */
static value_fate complex_value(napi_env env, attr_list *l, napi_value v, spanguard_attribute *at) {
    any_writer w = {0};
    napi_value global, object;
    if (napi_get_global(env, &global) != napi_ok ||
        napi_get_named_property(env, global, "Object", &object) != napi_ok ||
        napi_get_named_property(env, object, "prototype", &w.object_proto) != napi_ok)
        return VALUE_THREW;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return VALUE_THREW;
    any_fate f = any_value_at(env, &w, v, 1);
    napi_close_handle_scope(env, scope);
    value_fate out = f == ANY_OK ? VALUE_STORED : f == ANY_REFUSED ? VALUE_LEFT_OUT : VALUE_THREW;
    if (out == VALUE_STORED) {
        char *copy = w.len ? arena_alloc(env, &l->text, w.len, 1) : NULL;
        if (w.len && !copy) {
            out = VALUE_THREW;
        } else {
            if (w.len) memcpy(copy, w.buf, w.len);
            at->type_ = SPANGUARD_VALUE_ANY;
            at->string_value = copy;
            at->string_len = w.len;
        }
    }
    free(w.buf);
    return out;
}

/* A Uint8Array (a Buffer is one) into `at` as a bytes attribute, copied:
 * JavaScript that runs later in the call (a key's toString) could detach
 * its memory. */
static bool bytes_value(napi_env env, attr_list *l, napi_value v, spanguard_attribute *at) {
    napi_typedarray_type type;
    size_t n;
    void *data;
    if (napi_get_typedarray_info(env, v, &type, &n, &data, NULL, NULL) != napi_ok) return false;
    char *copy = n ? arena_alloc(env, &l->text, n, 1) : NULL;
    if (n && !copy) return false;
    if (n) memcpy(copy, data, n);
    at->type_ = SPANGUARD_VALUE_BYTES;
    at->string_value = copy;
    at->string_len = n;
    return true;
}

/* Whether `v` (an object) is a Uint8Array or a Buffer. */
static bool is_uint8_array(napi_env env, napi_value v) {
    bool is = false;
    if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
    napi_typedarray_type type;
    if (napi_get_typedarray_info(env, v, &type, NULL, NULL, NULL, NULL) != napi_ok) return false;
    return type == napi_uint8_array;
}

#define FATE(ok) ((ok) ? VALUE_STORED : VALUE_THREW)

/* One value into `at`, as OpenTelemetry's setAttribute takes values: a
 * string, number, boolean, BigInt, Uint8Array, or an array of one of the
 * first four; a plain object or another Array as a complex value
 * (complex_value); null and undefined are ignored, anything else left out. */
static value_fate attr_value(napi_env env, attr_list *l, napi_value v, spanguard_attribute *at) {
    napi_valuetype t;
    if (napi_typeof(env, v, &t) != napi_ok) return VALUE_THREW;
    if (t == napi_string) {
        at->type_ = SPANGUARD_VALUE_STRING;
        at->string_value = text_of(env, &l->text, v, &at->string_len);
        return FATE(at->string_value != NULL);
    }
    if (t == napi_boolean) {
        at->type_ = SPANGUARD_VALUE_BOOL;
        return FATE(napi_get_value_bool(env, v, &at->bool_value) == napi_ok);
    }
    if (t == napi_bigint) {
        bool lossless;
        at->type_ = SPANGUARD_VALUE_INT;
        if (napi_get_value_bigint_int64(env, v, &at->int_value, &lossless) != napi_ok) return VALUE_THREW;
        return lossless ? VALUE_STORED : VALUE_LEFT_OUT; /* beyond int64: never wrapped */
    }
    if (t == napi_number) {
        double d;
        if (napi_get_value_double(env, v, &d) != napi_ok) return VALUE_THREW;
        /* Number.isInteger within int64: an int, as index.js decides. */
        if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == (double)(int64_t)d) {
            at->type_ = SPANGUARD_VALUE_INT;
            at->int_value = (int64_t)d;
        } else {
            at->type_ = SPANGUARD_VALUE_DOUBLE;
            at->double_value = d;
        }
        return VALUE_STORED;
    }
    if (t == napi_null || t == napi_undefined) return VALUE_SKIPPED;
    if (t == napi_object) {
        bool is = false;
        if (napi_is_array(env, v, &is) != napi_ok) return VALUE_THREW;
        if (is) return array_value(env, l, v, at);
        if (is_uint8_array(env, v)) return FATE(bytes_value(env, l, v, at));
        return complex_value(env, l, v, at);
    }
    return VALUE_LEFT_OUT;
}

/* Key `k` and value `v` as the next attribute of `l` (room checked by the
 * caller), or left out and counted; false with an exception pending. */
static bool attr_push(napi_env env, attr_list *l, napi_value k, napi_value v) {
    spanguard_attribute *at = &l->items[l->n];
    memset(at, 0, sizeof *at);
    at->key = text_of(env, &l->text, k, &at->key_len);
    if (!at->key) return false;
    switch (attr_value(env, l, v, at)) {
        case VALUE_THREW: return false;
        case VALUE_STORED: l->n++; break;
        case VALUE_SKIPPED: break;
        case VALUE_LEFT_OUT: l->left_out++; break;
    }
    return true;
}

/* Reads arrays `keys` and `values` (same length) into `l`, made by
 * attrs_init; attrs_free releases it whatever happened. */
static bool attrs_read(napi_env env, napi_value keys, napi_value values, attr_list *l) {
    napi_valuetype t;
    if (napi_typeof(env, keys, &t) != napi_ok) return false;
    if (t == napi_undefined || t == napi_null) return true;
    uint32_t n = 0, nv = 0;
    if (napi_get_array_length(env, keys, &n) != napi_ok) return false;
    if (napi_get_array_length(env, values, &nv) != napi_ok) return false;
    if (n != nv) {
        napi_throw_type_error(env, NULL, "spanguard addon: keys and values differ in length");
        return false;
    }
    if (n > ATTRS_STACK) {
        l->items = calloc(n, sizeof *l->items);
        if (!l->items) {
            napi_throw_error(env, NULL, "spanguard: out of memory");
            return false;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        napi_value k, v;
        if (napi_get_element(env, keys, i, &k) != napi_ok) return false;
        if (napi_get_element(env, values, i, &v) != napi_ok) return false;
        if (!attr_push(env, l, k, v)) return false;
    }
    return true;
}

/* ---- the hot path ----------------------------------------------------- */

/* begin(tracer, name, parentHi, parentLo, kind) -> code; handle in out[] */
static napi_value js_begin(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 5)) return NULL;
    spanguard_tracer *t;
    spanguard_span parent, s = SPANGUARD_SPAN_NONE;
    uint32_t kind;
    if (!tracer_arg(env, a.argv[0], &t) || !span_arg(env, &a, 2, &parent) || !u32_arg(env, a.argv[4], &kind))
        return throw_last(env, "begin");
    text_arena text;
    text_init(&text);
    size_t nl;
    const char *name = text_of(env, &text, a.argv[1], &nl);
    if (!name) {
        text_free(&text);
        return NULL;
    }
    spanguard_result rc = spanguard_span_begin(t, name, nl, parent, kind, &s);
    text_free(&text);
    write_handle(&a, s);
    return result_value(env, rc);
}

/* beginWithAttributes(tracer, name, parentHi, parentLo, kind, keys, values) */
static napi_value js_begin_with_attributes(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 7)) return NULL;
    spanguard_tracer *t;
    spanguard_span parent, s = SPANGUARD_SPAN_NONE;
    uint32_t kind;
    if (!tracer_arg(env, a.argv[0], &t) || !span_arg(env, &a, 2, &parent) || !u32_arg(env, a.argv[4], &kind))
        return throw_last(env, "beginWithAttributes");
    attr_list l;
    attrs_init(&l);
    text_arena text;
    text_init(&text);
    size_t nl;
    const char *name = text_of(env, &text, a.argv[1], &nl);
    if (!name || !attrs_read(env, a.argv[5], a.argv[6], &l)) {
        text_free(&text);
        attrs_free(&l);
        return NULL;
    }
    spanguard_result rc = spanguard_span_begin_with_attributes(t, name, nl, parent, kind, l.items, l.n, &s);
    text_free(&text);
    napi_value out = list_result(env, rc, &l);
    attrs_free(&l);
    write_handle(&a, s);
    return out;
}

/* beginKV(tracer, name, parentHi, parentLo, kind, key0, value0, key1,
 * value1, ...): at most KV_PAIRS attributes as arguments rather than two
 * arrays, since reading an array's element is an N-API call of its own
 * (index.js uses it for the attributes of startSpan). */
static napi_value js_begin_kv(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 5)) return NULL;
    if (a.argc > MAX_ARGS || (a.argc - 5) % 2 != 0) {
        napi_throw_type_error(env, NULL, "spanguard addon: beginKV takes at most 8 key/value pairs");
        return NULL;
    }
    spanguard_tracer *t;
    spanguard_span parent, s = SPANGUARD_SPAN_NONE;
    uint32_t kind;
    if (!tracer_arg(env, a.argv[0], &t) || !span_arg(env, &a, 2, &parent) || !u32_arg(env, a.argv[4], &kind))
        return throw_last(env, "beginKV");
    attr_list l;
    attrs_init(&l);
    size_t nl;
    const char *name = text_of(env, &l.text, a.argv[1], &nl);
    bool ok = name != NULL;
    for (size_t i = 5; ok && i < a.argc; i += 2) ok = attr_push(env, &l, a.argv[i], a.argv[i + 1]);
    if (!ok) {
        attrs_free(&l);
        return NULL;
    }
    spanguard_result rc = spanguard_span_begin_with_attributes(t, name, nl, parent, kind, l.n ? l.items : NULL, l.n, &s);
    napi_value out = list_result(env, rc, &l);
    attrs_free(&l);
    write_handle(&a, s);
    return out;
}

/* beginRemote(tracer, name, traceparent, kind) */
static napi_value js_begin_remote(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 4)) return NULL;
    spanguard_tracer *t;
    spanguard_span s = SPANGUARD_SPAN_NONE;
    uint32_t kind;
    if (!tracer_arg(env, a.argv[0], &t) || !u32_arg(env, a.argv[3], &kind)) return throw_last(env, "beginRemote");
    text_arena text;
    text_init(&text);
    size_t nl, tl;
    const char *name = text_of(env, &text, a.argv[1], &nl);
    const char *tp = name ? text_of(env, &text, a.argv[2], &tl) : NULL;
    if (!tp) {
        text_free(&text);
        return NULL;
    }
    spanguard_result rc = spanguard_span_begin_remote(t, name, nl, tp, tl, kind, &s);
    text_free(&text);
    write_handle(&a, s);
    return result_value(env, rc);
}

/* `hex` (2 * n digits) as n bytes; false when it is not that. */
static bool hex_bytes(const char *hex, size_t len, uint8_t *out, size_t n) {
    if (len != 2 * n) return false;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v < 0) return false;
        out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | v : v << 4);
    }
    return true;
}

/* beginEx(tracer, name, kind, traceId, spanId, parentSpanId, traceFlags,
 *         flags (SPANGUARD_SPAN_OPTION_* bits), tracestate, startSeconds, startNanoseconds,
 *         scopeName, scopeVersion, keys, values, scopeSchemaUrl) -> code;
 *         handle in out[].
 * A span whose ids an OpenTelemetry SDK chose (hex text; parentSpanId ''
 * for a root): spanguard_span_begin_ex with explicit ids. */
static napi_value js_begin_ex(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 16)) return NULL;
    spanguard_tracer *t;
    uint32_t kind, trace_flags, flags;
    uint64_t start;
    if (!tracer_arg(env, a.argv[0], &t) || !u32_arg(env, a.argv[2], &kind) ||
        !u32_arg(env, a.argv[6], &trace_flags) || !u32_arg(env, a.argv[7], &flags) || !time_arg(env, &a, 9, &start))
        return throw_last(env, "beginEx");
    spanguard_span_options o;
    spanguard_span_options_init_sized(&o, sizeof o);
    attr_list l;
    attrs_init(&l);
    text_arena text;
    text_init(&text);
    size_t tl, sl, pl;
    uint8_t trace_id[16], span_id[8], parent_id[8];
    const char *tid = NULL, *sid = NULL, *pid = NULL;
    bool ok = (o.name = text_of(env, &text, a.argv[1], &o.name_len)) &&
              (tid = text_of(env, &text, a.argv[3], &tl)) && (sid = text_of(env, &text, a.argv[4], &sl)) &&
              (pid = text_of(env, &text, a.argv[5], &pl)) &&
              (o.tracestate = text_of(env, &text, a.argv[8], &o.tracestate_len)) &&
              (o.scope_name = text_of(env, &text, a.argv[11], &o.scope_name_len)) &&
              (o.scope_version = text_of(env, &text, a.argv[12], &o.scope_version_len)) &&
              (o.scope_schema_url = text_of(env, &text, a.argv[15], &o.scope_schema_url_len)) &&
              attrs_read(env, a.argv[13], a.argv[14], &l);
    spanguard_result rc = SPANGUARD_RESULT_INVALID_ARGUMENT;
    spanguard_span s = SPANGUARD_SPAN_NONE;
    if (ok && hex_bytes(tid, tl, trace_id, 16) && hex_bytes(sid, sl, span_id, 8) &&
        (pl == 0 || hex_bytes(pid, pl, parent_id, 8))) {
        o.kind = kind;
        o.trace_id = trace_id;
        o.span_id = span_id;
        o.parent_span_id = pl ? parent_id : NULL;
        o.trace_flags = trace_flags;
        /* A root span has no parent to be remote. */
        o.flags = pl ? flags : flags & ~(uint32_t)SPANGUARD_SPAN_OPTION_PARENT_IS_REMOTE;
        o.start_time_unix_ns = start;
        o.attributes = l.n ? l.items : NULL;
        o.attribute_count = l.n;
        rc = spanguard_span_begin_ex(t, &o, &s);
    }
    text_free(&text);
    napi_value out = ok ? list_result(env, rc, &l) : NULL;
    attrs_free(&l);
    if (!ok) return NULL;
    write_handle(&a, s);
    return out;
}

/* The body of setString, setInt, setDouble and setBool (hi, lo, key,
 * value): the value read as `type` says. */
static napi_value set_one(napi_env env, napi_callback_info info, uint32_t type) {
    args a;
    if (!get_args(env, info, &a, 4)) return NULL;
    spanguard_span s;
    if (!span_arg(env, &a, 0, &s)) return throw_last(env, "set");
    text_arena text;
    text_init(&text);
    spanguard_attribute at;
    memset(&at, 0, sizeof at);
    at.type_ = type;
    napi_valuetype t = napi_undefined;
    bool ok = (at.key = text_of(env, &text, a.argv[2], &at.key_len)) != NULL;
    if (ok && type == SPANGUARD_VALUE_STRING) {
        ok = (at.string_value = text_of(env, &text, a.argv[3], &at.string_len)) != NULL;
    } else if (ok && type == SPANGUARD_VALUE_INT) {
        bool lossless;
        ok = napi_typeof(env, a.argv[3], &t) == napi_ok &&
             (t == napi_bigint ? napi_get_value_bigint_int64(env, a.argv[3], &at.int_value, &lossless)
                               : napi_get_value_int64(env, a.argv[3], &at.int_value)) == napi_ok;
    } else if (ok && type == SPANGUARD_VALUE_DOUBLE) {
        ok = napi_get_value_double(env, a.argv[3], &at.double_value) == napi_ok;
    } else if (ok) {
        ok = napi_get_value_bool(env, a.argv[3], &at.bool_value) == napi_ok;
    }
    if (!ok) {
        text_free(&text);
        return throw_last(env, "set");
    }
    spanguard_result rc;
    switch (type) {
        case SPANGUARD_VALUE_STRING: rc = spanguard_span_set_string(s, at.key, at.key_len, at.string_value, at.string_len); break;
        case SPANGUARD_VALUE_INT: rc = spanguard_span_set_int(s, at.key, at.key_len, at.int_value); break;
        case SPANGUARD_VALUE_DOUBLE: rc = spanguard_span_set_double(s, at.key, at.key_len, at.double_value); break;
        default: rc = spanguard_span_set_bool(s, at.key, at.key_len, at.bool_value); break;
    }
    text_free(&text);
    return result_value(env, rc);
}

static napi_value js_set_string(napi_env env, napi_callback_info info) { return set_one(env, info, SPANGUARD_VALUE_STRING); }
/* A number or a BigInt. */
static napi_value js_set_int(napi_env env, napi_callback_info info) { return set_one(env, info, SPANGUARD_VALUE_INT); }
static napi_value js_set_double(napi_env env, napi_callback_info info) { return set_one(env, info, SPANGUARD_VALUE_DOUBLE); }
static napi_value js_set_bool(napi_env env, napi_callback_info info) { return set_one(env, info, SPANGUARD_VALUE_BOOL); }

/* setAttributes(hi, lo, keys, values): several in one crossing */
static napi_value js_set_attributes(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 4)) return NULL;
    spanguard_span s;
    if (!span_arg(env, &a, 0, &s)) return throw_last(env, "setAttributes");
    attr_list l;
    attrs_init(&l);
    if (!attrs_read(env, a.argv[2], a.argv[3], &l)) {
        attrs_free(&l);
        return NULL;
    }
    spanguard_result rc = spanguard_span_set_attributes(s, l.items, l.n);
    napi_value out = list_result(env, rc, &l);
    attrs_free(&l);
    return out;
}

/* setResource(tracer, keys, values): the OpenTelemetry provider's resource
 * over the tracer's own for the batches exported from now on (the bridge
 * passes it on a span's start). */
static napi_value js_set_resource(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 3)) return NULL;
    spanguard_tracer *t;
    if (!tracer_arg(env, a.argv[0], &t)) return throw_last(env, "setResource");
    attr_list l;
    attrs_init(&l);
    if (!attrs_read(env, a.argv[1], a.argv[2], &l)) {
        attrs_free(&l);
        return NULL;
    }
    spanguard_result rc = spanguard_tracer_set_resource(t, l.items, l.n);
    napi_value out = list_result(env, rc, &l);
    attrs_free(&l);
    return out;
}

/* Ends `s` (at `when`, 0: now) and writes its ids, read just before, to
 * out[OUT_IDS..]: its 16 trace id bytes, 8 span id bytes and flags byte as
 * nine numbers of at most 24 bits (three bytes each, the flags last with
 * 0x100 set), so that index.js keeps them as small integers (V8 stores
 * larger ones boxed, one allocation each); out[OUT_IDS + 8] is 0 when the
 * span has no context. An ended span is exported and its slot reused at any
 * moment, so its end is the last time its handle reliably names it, and
 * OpenTelemetry's API wants its context to stay the same and to parent
 * spans still. */
static napi_value end_keeping_ids(napi_env env, const args *a, spanguard_span s, uint64_t when) {
    uint8_t ids[27] = {0};
    bool kept = false;
    spanguard_result rc = spanguard_span_end_keeping_ids(s, when, ids, ids + 16, ids + 24, &kept);
    uint32_t *out = a->state->out + OUT_IDS;
    if (kept) {
        for (int i = 0; i < 8; i++)
            out[i] = (uint32_t)ids[3 * i] << 16 | (uint32_t)ids[3 * i + 1] << 8 | ids[3 * i + 2];
        out[8] = 0x100u | ids[24];
    } else {
        out[8] = 0;
    }
    return result_value(env, rc);
}

/* end(hi, lo); the span's ids in out[] (end_keeping_ids) */
static napi_value js_end(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 2)) return NULL;
    spanguard_span s;
    if (!span_arg(env, &a, 0, &s)) return throw_last(env, "end");
    return end_keeping_ids(env, &a, s, 0);
}

/* endAt(hi, lo, seconds, nanoseconds); the ids as end */
static napi_value js_end_at(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 4)) return NULL;
    spanguard_span s;
    uint64_t when;
    if (!span_arg(env, &a, 0, &s) || !time_arg(env, &a, 2, &when)) return throw_last(env, "endAt");
    return end_keeping_ids(env, &a, s, when ? when : 1);
}

/* ---- the rest of a span ----------------------------------------------- */

/* setStartTime(hi, lo, seconds, nanoseconds) */
static napi_value js_set_start_time(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 4)) return NULL;
    spanguard_span s;
    uint64_t when;
    if (!span_arg(env, &a, 0, &s) || !time_arg(env, &a, 2, &when)) return throw_last(env, "setStartTime");
    return result_value(env, spanguard_span_set_start_time(s, when));
}

/* addEvent(hi, lo, name, seconds, nanoseconds, keys, values, droppedAttributes):
 * droppedAttributes, what the SDK already dropped of the event's attributes,
 * is exported in its dropped count with spanguard's own. */
static napi_value js_add_event(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 8)) return NULL;
    spanguard_span s;
    uint64_t when;
    uint32_t dropped;
    if (!span_arg(env, &a, 0, &s) || !time_arg(env, &a, 3, &when) || !u32_arg(env, a.argv[7], &dropped))
        return throw_last(env, "addEvent");
    attr_list l;
    attrs_init(&l);
    text_arena text;
    text_init(&text);
    size_t nl;
    const char *name = text_of(env, &text, a.argv[2], &nl);
    if (!name || !attrs_read(env, a.argv[5], a.argv[6], &l)) {
        text_free(&text);
        attrs_free(&l);
        return NULL;
    }
    spanguard_result rc = spanguard_span_add_event_with_dropped(s, name, nl, when, l.n ? l.items : NULL, l.n, dropped);
    text_free(&text);
    napi_value out = list_result(env, rc, &l);
    attrs_free(&l);
    return out;
}

/* addLink(hi, lo, traceparent, keys, values, tracestate) */
static napi_value js_add_link(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 6)) return NULL;
    spanguard_span s;
    if (!span_arg(env, &a, 0, &s)) return throw_last(env, "addLink");
    attr_list l;
    attrs_init(&l);
    text_arena text;
    text_init(&text);
    size_t tl, sl;
    const char *tp = text_of(env, &text, a.argv[2], &tl);
    const char *ts = tp ? text_of(env, &text, a.argv[5], &sl) : NULL;
    if (!ts || !attrs_read(env, a.argv[3], a.argv[4], &l)) {
        text_free(&text);
        attrs_free(&l);
        return NULL;
    }
    spanguard_result rc = spanguard_span_add_link_with_tracestate(s, tp, tl, ts, sl, l.n ? l.items : NULL, l.n);
    text_free(&text);
    napi_value out = list_result(env, rc, &l);
    attrs_free(&l);
    return out;
}

/* addLinkIds(hi, lo, traceId, spanId, traceFlags, keys, values, tracestate,
 *            linkFlags, droppedAttributes): a link by its ids (hex text, as
 * an OpenTelemetry SpanContext holds them) and whether its context was
 * remote (linkFlags: SPANGUARD_LINK_REMOTE, _LOCAL or 0), with what the SDK
 * already dropped of its attributes, through
 * spanguard_span_add_link_ids_with_dropped. Ids that are not hex of the
 * right length: INVALID_ARGUMENT. */
static napi_value js_add_link_ids(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 10)) return NULL;
    spanguard_span s;
    uint32_t trace_flags, link_flags, dropped;
    if (!span_arg(env, &a, 0, &s) || !u32_arg(env, a.argv[4], &trace_flags) || !u32_arg(env, a.argv[8], &link_flags) ||
        !u32_arg(env, a.argv[9], &dropped))
        return throw_last(env, "addLinkIds");
    attr_list l;
    attrs_init(&l);
    text_arena text;
    text_init(&text);
    size_t tl = 0, sl = 0, stl = 0;
    const char *tid = NULL, *sid = NULL, *ts = NULL;
    bool ok = (tid = text_of(env, &text, a.argv[2], &tl)) && (sid = text_of(env, &text, a.argv[3], &sl)) &&
              (ts = text_of(env, &text, a.argv[7], &stl)) && attrs_read(env, a.argv[5], a.argv[6], &l);
    if (!ok) {
        text_free(&text);
        attrs_free(&l);
        return NULL;
    }
    uint8_t trace_id[16], span_id[8];
    spanguard_result rc = SPANGUARD_RESULT_INVALID_ARGUMENT;
    if (hex_bytes(tid, tl, trace_id, 16) && hex_bytes(sid, sl, span_id, 8))
        rc = spanguard_span_add_link_ids_with_dropped(s, trace_id, span_id, (uint8_t)(trace_flags & 0xff), ts, stl,
                                                      link_flags, l.n ? l.items : NULL, l.n, dropped);
    text_free(&text);
    napi_value out = list_result(env, rc, &l);
    attrs_free(&l);
    return out;
}

/* setStatus(hi, lo, code, message) */
static napi_value js_set_status(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 4)) return NULL;
    spanguard_span s;
    uint32_t code;
    if (!span_arg(env, &a, 0, &s) || !u32_arg(env, a.argv[2], &code)) return throw_last(env, "setStatus");
    text_arena text;
    text_init(&text);
    size_t ml;
    const char *m = text_of(env, &text, a.argv[3], &ml);
    if (!m) {
        text_free(&text);
        return NULL;
    }
    spanguard_result rc = spanguard_span_set_status(s, code, m, ml);
    text_free(&text);
    return result_value(env, rc);
}

/* addDroppedCounts(hi, lo, attributes, events, links) */
static napi_value js_add_dropped_counts(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 5)) return NULL;
    spanguard_span s;
    uint32_t attributes, events, links;
    if (!span_arg(env, &a, 0, &s) || !u32_arg(env, a.argv[2], &attributes) || !u32_arg(env, a.argv[3], &events) ||
        !u32_arg(env, a.argv[4], &links))
        return throw_last(env, "addDroppedCounts");
    return result_value(env, spanguard_span_add_dropped_counts(s, attributes, events, links));
}

/* dropOldest(hi, lo, events, links) */
static napi_value js_drop_oldest(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 4)) return NULL;
    spanguard_span s;
    uint32_t events, links;
    if (!span_arg(env, &a, 0, &s) || !u32_arg(env, a.argv[2], &events) || !u32_arg(env, a.argv[3], &links))
        return throw_last(env, "dropOldest");
    return result_value(env, spanguard_span_drop_oldest(s, events, links));
}

/* dropOldestUncounted(hi, lo, events, links): for a bridge that counted
 * them as its SDK evicted them */
static napi_value js_drop_oldest_uncounted(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 4)) return NULL;
    spanguard_span s;
    uint32_t events, links;
    if (!span_arg(env, &a, 0, &s) || !u32_arg(env, a.argv[2], &events) || !u32_arg(env, a.argv[3], &links))
        return throw_last(env, "dropOldestUncounted");
    return result_value(env, spanguard_span_drop_oldest_uncounted(s, events, links));
}

/* updateName(hi, lo, name) */
static napi_value js_update_name(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 3)) return NULL;
    spanguard_span s;
    if (!span_arg(env, &a, 0, &s)) return throw_last(env, "updateName");
    text_arena text;
    text_init(&text);
    size_t nl;
    const char *name = text_of(env, &text, a.argv[2], &nl);
    if (!name) {
        text_free(&text);
        return NULL;
    }
    spanguard_result rc = spanguard_span_update_name(s, name, nl);
    text_free(&text);
    return result_value(env, rc);
}

/* traceparent(hi, lo) -> string, or the result code (a number) on failure */
static napi_value js_traceparent(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 2)) return NULL;
    spanguard_span s;
    if (!span_arg(env, &a, 0, &s)) return throw_last(env, "traceparent");
    char buf[SPANGUARD_TRACEPARENT_SIZE];
    spanguard_result rc = spanguard_span_traceparent(s, buf, sizeof buf);
    if (!spanguard_result_is_ok(rc)) return code_value(env, rc);
    napi_value out;
    CALL(env, napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &out));
    return out;
}

/* ---- tracers ---------------------------------------------------------- */

/* Reads option `name` of `obj` into a config field: a string (copied into
 * `text`, NUL-terminated) or a number. Absent or undefined: untouched. */
static bool cfg_string(napi_env env, napi_value obj, const char *name, text_arena *text, const char **field) {
    napi_value v;
    napi_valuetype t;
    if (napi_get_named_property(env, obj, name, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok) return false;
    if (t == napi_undefined || t == napi_null) return true;
    size_t len;
    *field = text_of(env, text, v, &len);
    return *field != NULL;
}

static bool cfg_u32(napi_env env, napi_value obj, const char *name, uint32_t *field) {
    napi_value v;
    napi_valuetype t;
    if (napi_get_named_property(env, obj, name, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok) return false;
    if (t == napi_undefined || t == napi_null) return true;
    if (t == napi_boolean) {
        bool b;
        if (napi_get_value_bool(env, v, &b) != napi_ok) return false;
        *field = b;
        return true;
    }
    return napi_get_value_uint32(env, v, field) == napi_ok;
}

static bool cfg_double(napi_env env, napi_value obj, const char *name, double *field) {
    napi_value v;
    napi_valuetype t;
    if (napi_get_named_property(env, obj, name, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok) return false;
    if (t == napi_undefined || t == napi_null) return true;
    return napi_get_value_double(env, v, field) == napi_ok;
}

/* ---- the error callback's news, to JS ----------------------------------- */

/* One event on its way from the exporter thread to JS. */
typedef struct {
    uint32_t event;
    size_t len;
    char message[];
} event_news;

/* The error callback of every tracer the addon makes (exporter thread):
 * queues the event for the JS thread without waiting. A queue full of
 * news JS has not taken yet (its thread busy) drops this one. */
static void on_event(spanguard_event event, const char *message, size_t len, void *user_data) {
    event_sink *sink = user_data;
    event_news *n = malloc(sizeof *n + len + 1);
    if (!n) return;
    n->event = (uint32_t)event;
    n->len = len;
    memcpy(n->message, message, len);
    n->message[len] = 0;
    pthread_mutex_lock(&sink->lock);
    napi_status st = sink->fn ? napi_call_threadsafe_function(sink->fn, n, napi_tsfn_nonblocking) : napi_closing;
    pthread_mutex_unlock(&sink->lock);
    if (st != napi_ok) free(n);
}

/* On the JS thread: listener(eventNumber, message). env is NULL when the
 * environment is torn down with news still queued: only freed then. */
static void event_to_js(napi_env env, napi_value listener, void *context, void *data) {
    (void)context;
    event_news *n = data;
    napi_value argv[2], undefined;
    if (env && listener && napi_create_uint32(env, n->event, &argv[0]) == napi_ok &&
        napi_create_string_utf8(env, n->message, n->len, &argv[1]) == napi_ok &&
        napi_get_undefined(env, &undefined) == napi_ok) {
        /* A listener that throws: an uncaught exception, as from any emitter. */
        napi_call_function(env, undefined, listener, 2, argv, NULL);
    }
    free(n);
}

static void event_sink_gone(napi_env env, void *data, void *hint) {
    (void)env;
    (void)hint;
    event_sink *sink = data;
    pthread_mutex_lock(&sink->lock);
    sink->fn = NULL;
    pthread_mutex_unlock(&sink->lock);
}

/* setEventSink(listener): called once, at load; the tracers made from then
 * on tell it their news. It keeps no event loop alive. */
static napi_value js_set_event_sink(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 1)) return NULL;
    event_sink *sink = a.state->events;
    if (sink->fn) return NULL;
    napi_value name;
    napi_threadsafe_function fn;
    CALL(env, napi_create_string_utf8(env, "spanguard.events", NAPI_AUTO_LENGTH, &name));
    CALL(env, napi_create_threadsafe_function(env, a.argv[0], NULL, name, 1024, 1, sink, event_sink_gone, NULL,
                                              event_to_js, &fn));
    CALL(env, napi_unref_threadsafe_function(env, fn));
    pthread_mutex_lock(&sink->lock);
    sink->fn = fn;
    pthread_mutex_unlock(&sink->lock);
    return NULL;
}

/* tracerNew(config, fromEnv) -> [code, tracer?, message?]. `config` uses
 * the C field names; index.js maps its options onto them. On failure the
 * message names the variable or field and the value that were wrong. */
static napi_value js_tracer_new(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 2)) return NULL;
    bool from_env;
    CALL(env, napi_get_value_bool(env, a.argv[1], &from_env));
    spanguard_config cfg;
    spanguard_config_init(&cfg, sizeof cfg);
    text_arena text;
    text_init(&text);
    napi_value o = a.argv[0];
    bool ok = cfg_string(env, o, "service_name", &text, &cfg.service_name) &&
              cfg_string(env, o, "resource_attributes", &text, &cfg.resource_attributes) &&
              cfg_string(env, o, "endpoint", &text, &cfg.endpoint) &&
              cfg_string(env, o, "headers", &text, &cfg.headers) &&
              cfg_string(env, o, "sink_dir", &text, &cfg.sink_dir) &&
              cfg_string(env, o, "spool_dir", &text, &cfg.spool_dir) &&
              cfg_u32(env, o, "protocol", &cfg.protocol) && cfg_u32(env, o, "compression", &cfg.compression) &&
              cfg_u32(env, o, "full_policy", &cfg.full_policy) &&
              cfg_u32(env, o, "request_timeout_ms", &cfg.request_timeout_ms) &&
              cfg_u32(env, o, "schedule_delay_ms", &cfg.schedule_delay_ms) &&
              cfg_u32(env, o, "max_queue_size", &cfg.max_queue_size) &&
              cfg_u32(env, o, "max_export_batch_size", &cfg.max_export_batch_size) &&
              cfg_u32(env, o, "export_timeout_ms", &cfg.export_timeout_ms) &&
              cfg_u32(env, o, "max_open_spans", &cfg.max_open_spans) &&
              cfg_u32(env, o, "full_wait_ms", &cfg.full_wait_ms) &&
              cfg_u32(env, o, "install_signal_handlers", &cfg.install_signal_handlers) &&
              cfg_u32(env, o, "flight_recorder", &cfg.flight_recorder) &&
              cfg_u32(env, o, "prefault_slots", &cfg.prefault_slots) &&
              cfg_u32(env, o, "spool_max_mib", &cfg.spool_max_mib) &&
              cfg_u32(env, o, "signal_flush_timeout_ms", &cfg.signal_flush_timeout_ms) &&
              cfg_u32(env, o, "exporter_max_cpu_percent", &cfg.exporter_max_cpu_percent) &&
              cfg_u32(env, o, "payload_pool_mib", &cfg.payload_pool_mib) &&
              cfg_u32(env, o, "value_length_limit", &cfg.value_length_limit) &&
              cfg_u32(env, o, "value_depth_limit", &cfg.value_depth_limit) &&
              cfg_u32(env, o, "attribute_count_limit", &cfg.attribute_count_limit) &&
              cfg_u32(env, o, "event_count_limit", &cfg.event_count_limit) &&
              cfg_u32(env, o, "link_count_limit", &cfg.link_count_limit) &&
              cfg_u32(env, o, "event_attribute_count_limit", &cfg.event_attribute_count_limit) &&
              cfg_u32(env, o, "link_attribute_count_limit", &cfg.link_attribute_count_limit) &&
              cfg_string(env, o, "certificate", &text, &cfg.certificate) &&
              cfg_string(env, o, "client_certificate", &text, &cfg.client_certificate) &&
              cfg_string(env, o, "client_key", &text, &cfg.client_key) &&
              cfg_u32(env, o, "max_request_bytes", &cfg.max_request_bytes) &&
              cfg_u32(env, o, "sink_max_line_bytes", &cfg.sink_max_line_bytes) &&
              cfg_string(env, o, "log_level", &text, &cfg.log_level) &&
              cfg_u32(env, o, "sampler", &cfg.sampler) &&
              cfg_double(env, o, "sampler_ratio", &cfg.sampler_ratio);
    if (!ok) {
        text_free(&text);
        return throw_last(env, "tracerNew: config");
    }
    spanguard_tracer *t = NULL;
    char message[SPANGUARD_ERROR_MESSAGE_SIZE];
    spanguard_result rc = spanguard_tracer_new_with_error(&cfg, from_env, &t, message, sizeof message, NULL);
    text_free(&text);
    napi_value out, ext;
    CALL(env, napi_create_array_with_length(env, 3, &out));
    CALL(env, napi_set_element(env, out, 0, code_value(env, rc)));
    if (rc != SPANGUARD_RESULT_OK) {
        napi_value text_value;
        CALL(env, napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text_value));
        CALL(env, napi_set_element(env, out, 2, text_value));
    }
    if (rc == SPANGUARD_RESULT_OK) {
        /* No finalizer: freeing shuts down and may block for seconds, so it
         * is close()'s job; a tracer never closed is shut down at exit. */
        CALL(env, napi_create_external(env, t, NULL, NULL, &ext));
        CALL(env, napi_set_element(env, out, 1, ext));
        /* No callback can run on a tracer just made: this does not wait. */
        spanguard_set_error_callback(t, on_event, a.state->events);
    }
    return out;
}

/* tracerFree(tracer): call once, after shutdown. */
static napi_value js_tracer_free(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 1)) return NULL;
    spanguard_tracer *t;
    if (!tracer_arg(env, a.argv[0], &t)) return throw_last(env, "tracerFree");
    spanguard_tracer_free(t);
    return NULL;
}

/* flush and shutdown block: they run on libuv's pool and settle a Promise
 * with the result code. shutdown(tracer, timeoutMs, signo?): with a signal
 * number, the shutdown is for that signal. */
typedef struct {
    napi_async_work work;
    napi_deferred deferred;
    spanguard_tracer *tracer;
    uint32_t timeout_ms;
    bool shutdown;
    /* A shutdown for this signal (0: none): the spans still open are
     * marked interrupted by it (spanguard_shutdown_for_signal). */
    int32_t signo;
    spanguard_result rc;
} blocking_call;

static void blocking_execute(napi_env env, void *data) {
    (void)env;
    blocking_call *c = data;
    if (!c->shutdown)
        c->rc = spanguard_flush(c->tracer, c->timeout_ms);
    else if (c->signo)
        c->rc = spanguard_shutdown_for_signal(c->tracer, c->signo, c->timeout_ms);
    else
        c->rc = spanguard_shutdown(c->tracer, c->timeout_ms);
}

static void blocking_complete(napi_env env, napi_status status, void *data) {
    blocking_call *c = data;
    if (status == napi_ok) {
        napi_resolve_deferred(env, c->deferred, code_value(env, c->rc));
    } else {
        napi_value msg, err;
        napi_create_string_utf8(env, "spanguard: the flush was cancelled", NAPI_AUTO_LENGTH, &msg);
        napi_create_error(env, NULL, msg, &err);
        napi_reject_deferred(env, c->deferred, err);
    }
    napi_delete_async_work(env, c->work);
    free(c);
}

static napi_value start_blocking(napi_env env, napi_callback_info info, bool shutdown) {
    args a;
    if (!get_args(env, info, &a, 2)) return NULL;
    blocking_call *c = calloc(1, sizeof *c);
    if (!c) {
        napi_throw_error(env, NULL, "spanguard: out of memory");
        return NULL;
    }
    c->shutdown = shutdown;
    napi_value promise, name;
    uint32_t signo = 0;
    if (!tracer_arg(env, a.argv[0], &c->tracer) || !u32_arg(env, a.argv[1], &c->timeout_ms) ||
        (shutdown && a.argc > 2 && (!u32_arg(env, a.argv[2], &signo) || signo > INT32_MAX)) ||
        napi_create_promise(env, &c->deferred, &promise) != napi_ok ||
        napi_create_string_utf8(env, shutdown ? "spanguard.shutdown" : "spanguard.flush", NAPI_AUTO_LENGTH,
                                &name) != napi_ok ||
        napi_create_async_work(env, NULL, name, blocking_execute, blocking_complete, c, &c->work) != napi_ok) {
        free(c);
        return throw_last(env, shutdown ? "shutdown" : "flush");
    }
    c->signo = (int32_t)signo;
    if (napi_queue_async_work(env, c->work) != napi_ok) {
        napi_delete_async_work(env, c->work);
        free(c);
        return throw_last(env, "queue");
    }
    return promise;
}

static napi_value js_flush(napi_env env, napi_callback_info info) { return start_blocking(env, info, false); }
static napi_value js_shutdown(napi_env env, napi_callback_info info) { return start_blocking(env, info, true); }

/* ---- process hooks across threads ------------------------------------- */

/* The tracers of every thread (the main one and each worker's, which load
 * this addon into the same process) whose program installed the process
 * hooks. Signals reach the main thread's JavaScript only: a worker's own
 * SIGTERM listener never runs, and the main thread's hook, which ended the
 * process once its own tracer had shut down, lost every span a worker's
 * tracer still held. The main thread's hook shuts all of these down.
 * Held under `hooked_lock` while they shut down, so that a worker's
 * close() (hookRemove, then free) waits for that rather than freeing
 * under it. The library holds at most 255 tracers. */
static pthread_mutex_t hooked_lock = PTHREAD_MUTEX_INITIALIZER;
static spanguard_tracer *hooked[255];
static size_t hooked_count;

/* hookAdd(tracer): its thread's program installed the process hooks. */
static napi_value js_hook_add(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 1)) return NULL;
    spanguard_tracer *t;
    if (!tracer_arg(env, a.argv[0], &t)) return throw_last(env, "hookAdd");
    pthread_mutex_lock(&hooked_lock);
    bool known = false;
    for (size_t i = 0; i < hooked_count && !known; i++) known = hooked[i] == t;
    if (!known && hooked_count < sizeof hooked / sizeof hooked[0]) hooked[hooked_count++] = t;
    pthread_mutex_unlock(&hooked_lock);
    return NULL;
}

/* hookRemove(tracer): before it is freed; waits for a shutdown of the
 * hooked tracers under way. */
static napi_value js_hook_remove(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 1)) return NULL;
    spanguard_tracer *t;
    if (!tracer_arg(env, a.argv[0], &t)) return throw_last(env, "hookRemove");
    pthread_mutex_lock(&hooked_lock);
    for (size_t i = 0; i < hooked_count; i++) {
        if (hooked[i] == t) {
            hooked[i] = hooked[--hooked_count];
            break;
        }
    }
    pthread_mutex_unlock(&hooked_lock);
    return NULL;
}

typedef struct {
    napi_async_work work;
    napi_deferred deferred;
    uint32_t timeout_ms;
    /* The signal the process is stopping for (0: none): the spans still
     * open are marked interrupted by it, as the library's own handler
     * marks them, not unended (the program forgot none of them). */
    int32_t signo;
} hooked_shutdown;

static uint64_t now_ms(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Shuts every hooked tracer down, all within the one timeout. */
static void hooked_shutdown_execute(napi_env env, void *data) {
    (void)env;
    hooked_shutdown *c = data;
    uint64_t deadline = now_ms() + c->timeout_ms;
    pthread_mutex_lock(&hooked_lock);
    for (size_t i = 0; i < hooked_count; i++) {
        uint64_t now = now_ms();
        uint32_t left = now < deadline ? (uint32_t)(deadline - now) : 0;
        if (c->signo)
            spanguard_shutdown_for_signal(hooked[i], c->signo, left);
        else
            spanguard_shutdown(hooked[i], left);
    }
    pthread_mutex_unlock(&hooked_lock);
}

static void hooked_shutdown_complete(napi_env env, napi_status status, void *data) {
    (void)status;
    hooked_shutdown *c = data;
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, c->deferred, undefined);
    napi_delete_async_work(env, c->work);
    free(c);
}

/* shutdownHooked(timeoutMs, signo?) -> Promise, settled once every hooked
 * tracer (of every thread) has shut down; on libuv's pool. With a signal
 * number, the shutdown is for that signal (spanguard_shutdown_for_signal). */
static napi_value js_shutdown_hooked(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 1)) return NULL;
    hooked_shutdown *c = calloc(1, sizeof *c);
    if (!c) {
        napi_throw_error(env, NULL, "spanguard: out of memory");
        return NULL;
    }
    napi_value promise, name;
    uint32_t signo = 0;
    if (!u32_arg(env, a.argv[0], &c->timeout_ms) || (a.argc > 1 && !u32_arg(env, a.argv[1], &signo)) ||
        signo > INT32_MAX || napi_create_promise(env, &c->deferred, &promise) != napi_ok ||
        napi_create_string_utf8(env, "spanguard.shutdownHooked", NAPI_AUTO_LENGTH, &name) != napi_ok ||
        napi_create_async_work(env, NULL, name, hooked_shutdown_execute, hooked_shutdown_complete, c, &c->work) !=
            napi_ok) {
        free(c);
        return throw_last(env, "shutdownHooked");
    }
    c->signo = (int32_t)signo;
    if (napi_queue_async_work(env, c->work) != napi_ok) {
        napi_delete_async_work(env, c->work);
        free(c);
        return throw_last(env, "queue");
    }
    return promise;
}

/* shutdownHookedNow(timeoutMs, signo): shutdownHooked on this thread, for
 * the process's 'exit', where no promise settles any more: a program that
 * took the signal with a listener of its own and then called
 * process.exit(). Blocks up to timeoutMs, as the library's own exit flush
 * would have. */
static napi_value js_shutdown_hooked_now(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 2)) return NULL;
    hooked_shutdown c = {0};
    uint32_t signo = 0;
    if (!u32_arg(env, a.argv[0], &c.timeout_ms) || !u32_arg(env, a.argv[1], &signo) || signo > INT32_MAX)
        return throw_last(env, "shutdownHookedNow");
    c.signo = (int32_t)signo;
    hooked_shutdown_execute(env, &c);
    return NULL;
}

/* stats(tracer) -> [code, {counter: number}] */
static napi_value js_stats(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 1)) return NULL;
    spanguard_tracer *t;
    if (!tracer_arg(env, a.argv[0], &t)) return throw_last(env, "stats");
    spanguard_counters c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    spanguard_result rc = spanguard_stats(t, &c);
    napi_value out, obj;
    CALL(env, napi_create_array_with_length(env, 2, &out));
    CALL(env, napi_create_object(env, &obj));
#define COUNTER(f) CALL(env, napi_set_named_property(env, obj, #f, number(env, (double)c.f)))
    COUNTER(spans_begun);
    COUNTER(spans_ended);
    COUNTER(spans_exported);
    COUNTER(queue_depth);
    COUNTER(spans_open);
    COUNTER(dropped_buffer_full);
    COUNTER(dropped_export_failed);
    COUNTER(dropped_rejected);
    COUNTER(dropped_spool_overflow);
    COUNTER(spans_unended_at_shutdown);
    COUNTER(batches_sent);
    COUNTER(batches_failed);
    COUNTER(bytes_sent);
    COUNTER(retries);
    COUNTER(attributes_dropped);
    COUNTER(events_dropped);
    COUNTER(links_dropped);
    COUNTER(values_truncated);
    COUNTER(utf8_replaced);
    COUNTER(spooled_batches);
    COUNTER(spooled_spans);
    COUNTER(replayed_batches);
    COUNTER(replayed_spans);
    COUNTER(spool_bytes);
    COUNTER(recovered_spans);
    COUNTER(exporter_throttled_ns);
    COUNTER(spans_unsampled);
    COUNTER(dropped_replay_failed);
    COUNTER(dropped_replay_rejected);
    COUNTER(exporter_panics);
    COUNTER(files_set_aside);
    COUNTER(payload_waits);
    COUNTER(payload_waits_cut);
    COUNTER(slot_waits);
    COUNTER(slot_wait_ns);
    COUNTER(spans_interrupted_at_shutdown);
    COUNTER(exporter_waits_ran_out);
    COUNTER(host_handler_waits_ran_out);
#undef COUNTER
    CALL(env, napi_set_element(env, out, 0, code_value(env, rc)));
    CALL(env, napi_set_element(env, out, 1, obj));
    return out;
}

typedef spanguard_result (*tracer_text_fn)(const spanguard_tracer *, char *, size_t, size_t *);

/* The text `call` writes for the tracer in argv[0] (its length asked
 * first), or a result code. */
static napi_value tracer_text(napi_env env, napi_callback_info info, tracer_text_fn call, const char *what) {
    args a;
    if (!get_args(env, info, &a, 1)) return NULL;
    spanguard_tracer *t;
    if (!tracer_arg(env, a.argv[0], &t)) return throw_last(env, what);
    size_t n = 0;
    spanguard_result rc = call(t, NULL, 0, &n);
    if (rc != SPANGUARD_RESULT_BUFFER_TOO_SMALL) return code_value(env, rc);
    char *buf = malloc(n + 1);
    if (!buf) {
        napi_throw_error(env, NULL, "spanguard: out of memory");
        return NULL;
    }
    rc = call(t, buf, n + 1, &n);
    napi_value out = NULL;
    if (rc == SPANGUARD_RESULT_OK) napi_create_string_utf8(env, buf, n, &out);
    free(buf);
    return out ? out : code_value(env, rc);
}

/* sinkPath(tracer) -> string ("" with an endpoint), or a result code */
static napi_value js_sink_path(napi_env env, napi_callback_info info) {
    return tracer_text(env, info, spanguard_tracer_sink_path, "sinkPath");
}

/* endpoint(tracer) -> the URL it sends to ("" for the local sink), or a result code */
static napi_value js_endpoint(napi_env env, napi_callback_info info) {
    return tracer_text(env, info, spanguard_tracer_endpoint, "endpoint");
}

/* ---- codes and version ------------------------------------------------ */

static napi_value js_strerror(napi_env env, napi_callback_info info) {
    args a;
    uint32_t code;
    if (!get_args(env, info, &a, 1) || !u32_arg(env, a.argv[0], &code)) return throw_last(env, "strerror");
    napi_value out;
    CALL(env, napi_create_string_utf8(env, spanguard_strerror(code), NAPI_AUTO_LENGTH, &out));
    return out;
}

static napi_value js_is_ok(napi_env env, napi_callback_info info) {
    args a;
    uint32_t code;
    if (!get_args(env, info, &a, 1) || !u32_arg(env, a.argv[0], &code)) return throw_last(env, "isOk");
    napi_value out;
    CALL(env, napi_get_boolean(env, spanguard_result_is_ok(code), &out));
    return out;
}

/* raisedSignalCanEndProcess(programHandlesIt) -> bool: the library's rule
 * (spanguard_raised_signal_can_end_process), for the process hooks. */
static napi_value js_raised_signal_can_end_process(napi_env env, napi_callback_info info) {
    args a;
    bool handled;
    if (!get_args(env, info, &a, 1) || napi_get_value_bool(env, a.argv[0], &handled) != napi_ok)
        return throw_last(env, "raisedSignalCanEndProcess");
    napi_value out;
    CALL(env, napi_get_boolean(env, spanguard_raised_signal_can_end_process(handled), &out));
    return out;
}

/* reclaimSignalFromDefault(signo) -> bool: the library's termination
 * handler back over the default disposition Node set as the program's
 * last listener for the signal went (spanguard_reclaim_signal_from_default). */
static napi_value js_reclaim_signal_from_default(napi_env env, napi_callback_info info) {
    args a;
    uint32_t signo;
    if (!get_args(env, info, &a, 1) || !u32_arg(env, a.argv[0], &signo) || signo > INT32_MAX)
        return throw_last(env, "reclaimSignalFromDefault");
    napi_value out;
    CALL(env, napi_get_boolean(env, spanguard_reclaim_signal_from_default((int32_t)signo), &out));
    return out;
}

/* leftOut(): how many values the last call on this thread that answered
 * ADDON_VALUE_LEFT_OUT left out (index.js counts them). */
static napi_value js_left_out(napi_env env, napi_callback_info info) {
    (void)info;
    return number(env, last_left_out);
}

static napi_value js_version(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value out;
    CALL(env, napi_create_string_utf8(env, spanguard_version(), NAPI_AUTO_LENGTH, &out));
    return out;
}

/* init(Uint32Array(2)): where begin* write the handle. */
static napi_value js_init(napi_env env, napi_callback_info info) {
    args a;
    if (!get_args(env, info, &a, 1)) return NULL;
    napi_typedarray_type type;
    size_t length;
    void *data;
    CALL(env, napi_get_typedarray_info(env, a.argv[0], &type, &length, &data, NULL, NULL));
    if (type != napi_uint32_array || length < OUT_WORDS) {
        napi_throw_type_error(env, NULL, "spanguard addon: init wants a Uint32Array(11)");
        return NULL;
    }
    if (a.state->out_ref) napi_delete_reference(env, a.state->out_ref);
    /* The reference keeps the array, and so its memory, alive. */
    CALL(env, napi_create_reference(env, a.argv[0], 1, &a.state->out_ref));
    a.state->out = data;
    return NULL;
}

static void state_finalize(napi_env env, void *data, void *hint) {
    (void)hint;
    addon_state *state = data;
    if (state->out_ref) napi_delete_reference(env, state->out_ref);
    free(state);
}

NAPI_MODULE_INIT() {
    addon_state *state = calloc(1, sizeof *state);
    if (!state) return NULL;
    state->events = calloc(1, sizeof *state->events);
    if (!state->events) {
        free(state);
        return NULL;
    }
    pthread_mutex_init(&state->events->lock, NULL);
    static uint32_t no_out[OUT_WORDS];
    state->out = no_out;
    if (napi_set_instance_data(env, state, state_finalize, NULL) != napi_ok) {
        free(state);
        return NULL;
    }
#define FN(js, c) {js, NULL, c, NULL, NULL, NULL, napi_default, state}
    napi_property_descriptor fns[] = {
        FN("init", js_init),
        FN("version", js_version),
        FN("leftOut", js_left_out),
        FN("strerror", js_strerror),
        FN("isOk", js_is_ok),
        FN("raisedSignalCanEndProcess", js_raised_signal_can_end_process),
        FN("reclaimSignalFromDefault", js_reclaim_signal_from_default),
        FN("tracerNew", js_tracer_new),
        FN("tracerFree", js_tracer_free),
        FN("setEventSink", js_set_event_sink),
        FN("flush", js_flush),
        FN("shutdown", js_shutdown),
        FN("hookAdd", js_hook_add),
        FN("hookRemove", js_hook_remove),
        FN("shutdownHooked", js_shutdown_hooked),
        FN("shutdownHookedNow", js_shutdown_hooked_now),
        FN("stats", js_stats),
        FN("sinkPath", js_sink_path),
        FN("endpoint", js_endpoint),
        FN("begin", js_begin),
        FN("beginWithAttributes", js_begin_with_attributes),
        FN("beginKV", js_begin_kv),
        FN("beginRemote", js_begin_remote),
        FN("setResource", js_set_resource),
        FN("beginEx", js_begin_ex),
        FN("setString", js_set_string),
        FN("setInt", js_set_int),
        FN("setDouble", js_set_double),
        FN("setBool", js_set_bool),
        FN("setAttributes", js_set_attributes),
        FN("setStartTime", js_set_start_time),
        FN("addEvent", js_add_event),
        FN("addLink", js_add_link),
        FN("addLinkIds", js_add_link_ids),
        FN("setStatus", js_set_status),
        FN("updateName", js_update_name),
        FN("addDroppedCounts", js_add_dropped_counts),
        FN("dropOldest", js_drop_oldest),
        FN("dropOldestUncounted", js_drop_oldest_uncounted),
        FN("traceparent", js_traceparent),
        FN("end", js_end),
        FN("endAt", js_end_at),
    };
#undef FN
    if (napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns) != napi_ok) return NULL;
    return exports;
}
