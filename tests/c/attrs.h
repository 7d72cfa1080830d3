/* Attributes as the C tests pass them. */
#ifndef SPANGUARD_TEST_ATTRS_H
#define SPANGUARD_TEST_ATTRS_H

#include <string.h>

#include "spanguard.h"

/* A string attribute of two NUL-terminated texts. */
static inline spanguard_attribute text_attr(const char *key, const char *value) {
    spanguard_attribute a;
    memset(&a, 0, sizeof a);
    a.key = key;
    a.key_len = strlen(key);
    a.type_ = SPANGUARD_VALUE_STRING;
    a.string_value = value;
    a.string_len = strlen(value);
    return a;
}

#endif
