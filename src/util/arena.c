/* arena.c: the bump allocator behind every program (see internal.h). */
#include "../internal.h"

#include <stdlib.h>

#define ARENA_CHUNK (64u * 1024u)

typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
} chunk;

struct milk_arena {
    chunk *head;
    size_t total;
};

milk_arena *milk_arena_create(void)
{
    return calloc(1, sizeof(milk_arena));
}

void milk_arena_free(milk_arena *a)
{
    if (!a) return;
    for (chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(a);
}

static chunk *new_chunk(size_t size)
{
    chunk *c = malloc(sizeof(chunk) + size);
    if (!c) return NULL;
    c->size = size;
    c->used = 0;
    c->next = NULL;
    return c;
}

void *milk_arena_alloc(milk_arena *a, size_t size)
{
    size_t need = (size + 15u) & ~(size_t)15u;
    if (need < size) return NULL;
    chunk *c = a->head;
    if (!c || c->size - c->used < need) {
        /* A big request gets a chunk of its own behind the current one, so
         * the space left in the current chunk is not wasted. */
        if (need > ARENA_CHUNK / 4 && c) {
            chunk *big = new_chunk(need);
            if (!big) return NULL;
            big->used = need;
            big->next = c->next;
            c->next = big;
            a->total += need;
            memset(big->data, 0, need);
            return big->data;
        }
        c = new_chunk(need > ARENA_CHUNK ? need : ARENA_CHUNK);
        if (!c) return NULL;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->total += need;
    memset(p, 0, need);
    return p;
}

char *milk_arena_strndup(milk_arena *a, const char *s, size_t n)
{
    char *p = milk_arena_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *milk_arena_strdup(milk_arena *a, const char *s)
{
    return milk_arena_strndup(a, s, strlen(s));
}

void *milk_arena_memdup(milk_arena *a, const void *p, size_t size)
{
    void *q = milk_arena_alloc(a, size ? size : 1);
    if (q && size) memcpy(q, p, size);
    return q;
}

size_t milk_arena_used(const milk_arena *a)
{
    return a->total;
}

bool milk_arena_grow(milk_arena *a, void **items, int n, int *cap,
                     size_t elem)
{
    if (n < *cap) return true;
    int ncap = *cap ? *cap * 2 : 4;
    if (ncap < *cap) return false;
    void *p = milk_arena_alloc(a, (size_t)ncap * elem);
    if (!p) return false;
    if (n) memcpy(p, *items, (size_t)n * elem);
    *items = p;
    *cap = ncap;
    return true;
}
