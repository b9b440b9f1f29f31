/* names.c: a string -> var hash table (open addressing, linear probing)
 * for the names of one function's vars. Names are not copied: they live in
 * the program's arena. Removed slots become tombstones. */
#include "ir.h"

#include <stdlib.h>

#define TOMBSTONE ((const char *)1)

struct milk_names {
    size_t cap, used; /* used counts live entries and tombstones */
    const char **keys;
    milk_var **vals;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

milk_names *milk_names_create(void)
{
    milk_names *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->cap = 64;
    n->keys = calloc(n->cap, sizeof *n->keys);
    n->vals = calloc(n->cap, sizeof *n->vals);
    if (!n->keys || !n->vals) {
        milk_names_free(n);
        return NULL;
    }
    return n;
}

void milk_names_free(milk_names *n)
{
    if (!n) return;
    free(n->keys);
    free(n->vals);
    free(n);
}

static size_t find(const milk_names *n, const char *name, bool for_insert)
{
    size_t mask = n->cap - 1, i = hash(name) & mask, tomb = SIZE_MAX;
    for (;; i = (i + 1) & mask) {
        const char *k = n->keys[i];
        if (!k) return for_insert && tomb != SIZE_MAX ? tomb : i;
        if (k == TOMBSTONE) {
            if (tomb == SIZE_MAX) tomb = i;
        } else if (strcmp(k, name) == 0) {
            return i;
        }
    }
}

static bool rehash(milk_names *n)
{
    milk_names m = {n->cap * 2, 0, NULL, NULL};
    m.keys = calloc(m.cap, sizeof *m.keys);
    m.vals = calloc(m.cap, sizeof *m.vals);
    if (!m.keys || !m.vals) {
        free(m.keys);
        free(m.vals);
        return false;
    }
    for (size_t i = 0; i < n->cap; i++) {
        if (!n->keys[i] || n->keys[i] == TOMBSTONE) continue;
        size_t j = find(&m, n->keys[i], true);
        m.keys[j] = n->keys[i];
        m.vals[j] = n->vals[i];
        m.used++;
    }
    free(n->keys);
    free(n->vals);
    *n = m;
    return true;
}

bool milk_names_put(milk_names *n, const char *name, milk_var *v, bool *oom)
{
    *oom = false;
    if ((n->used + 1) * 2 > n->cap && !rehash(n)) {
        *oom = true;
        return false;
    }
    size_t i = find(n, name, true);
    if (n->keys[i] && n->keys[i] != TOMBSTONE) return false;
    if (!n->keys[i]) n->used++;
    n->keys[i] = name;
    n->vals[i] = v;
    return true;
}

milk_var *milk_names_get(const milk_names *n, const char *name)
{
    size_t i = find(n, name, false);
    return n->keys[i] ? n->vals[i] : NULL;
}

void milk_names_remove(milk_names *n, const char *name)
{
    size_t i = find(n, name, false);
    if (n->keys[i]) {
        n->keys[i] = TOMBSTONE;
        n->vals[i] = NULL;
    }
}

/* ---- coremltools' name sanitizing ------------------------------------------
 * coremltools' NameSanitizer (passes/defs/preprocess.py): every character
 * outside [A-Za-z0-9_] becomes '_'; then a name not starting with a letter
 * or '_' gets a prefix ("var_" for vars, "op_" for ops); then a reserved
 * word of MIL's text format gets "_workaround". One implementation, used
 * by the converter for ONNX names and by the `names` rule for packages. */

static const char *const reserved_words[] = {
    "any",    "bool",   "program", "func",   "tensor", "list",  "dict",
    "tuple",  "true",   "false",   "string", "bf16",   "fp16",  "fp32",
    "fp64",   "int8",   "int16",   "int32",  "int64",  "uint8", "uint16",
    "uint32", "uint64", "state",
};

bool milk_name_is_reserved(const char *s)
{
    for (size_t i = 0; i < MILK_ARRAY_LEN(reserved_words); i++)
        if (strcmp(s, reserved_words[i]) == 0) return true;
    return false;
}

static bool word_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '_';
}

size_t milk_name_sanitize(const char *name, const char *prefix, char *buf,
                          size_t cap)
{
    char first = name[0] && word_char(name[0]) ? name[0] : '_';
    bool lead = first == '_' || (first >= 'a' && first <= 'z') ||
                (first >= 'A' && first <= 'Z');
    size_t n = 0;
#define PUT(ch) do { if (n + 1 < cap) buf[n] = (ch); n++; } while (0)
    for (const char *p = lead ? "" : prefix; *p; p++) PUT(*p);
    for (const char *p = name; *p; p++) PUT(word_char(*p) ? *p : '_');
    if (lead) {
        /* the reserved words are short: compare the sanitized name */
        char w[16];
        size_t len = strlen(name);
        if (len < sizeof w) {
            for (size_t i = 0; i <= len; i++) w[i] = word_char(name[i]) || !name[i] ? name[i] : '_';
            if (milk_name_is_reserved(w))
                for (const char *p = "_workaround"; *p; p++) PUT(*p);
        }
    }
#undef PUT
    if (cap) buf[n < cap ? n : cap - 1] = 0;
    return n;
}
