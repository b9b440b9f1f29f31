/* weights.c: constants of a runner without copies (see plan.h). A
 * package's weight.bin is mapped read-only once, and fp32 and int32
 * weights are used where they lie (64-byte aligned records); fp16 weights
 * are converted to fp32 once, in bulk (F16C where the CPU has it). Mappings are prefaulted
 * (MAP_POPULATE): one call maps the file's cached pages instead of a fault
 * per page on first touch. */
#include "plan.h"
#include "vec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct milk_maps {
    struct milk_maps *next;
    char *path;
    const unsigned char *base;
    size_t size;
};

void milk_maps_free(milk_maps *m)
{
    while (m) {
        milk_maps *n = m->next;
        if (m->size) munmap((void *)m->base, m->size);
        free(m->path);
        free(m);
        m = n;
    }
}

/* The mapping of path (made on first use); NULL base for an empty file. */
static milk_status map_file(milk_ctx *ctx, const char *path, milk_maps **maps,
                            const milk_maps **out)
{
    for (const milk_maps *m = *maps; m; m = m->next)
        if (strcmp(m->path, path) == 0) {
            *out = m;
            return MILK_OK;
        }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return milk_errorf(ctx, MILK_ERR_IO, "%s: cannot open: %s", path,
                           strerror(errno));
    struct stat st;
    void *base = NULL;
    milk_status s = MILK_OK;
    if (fstat(fd, &st) != 0) {
        s = milk_errorf(ctx, MILK_ERR_IO, "%s: %s", path, strerror(errno));
    } else if (st.st_size > 0) {
        base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE,
                    fd, 0);
        if (base == MAP_FAILED)
            s = milk_errorf(ctx, MILK_ERR_IO, "%s: cannot map: %s", path,
                            strerror(errno));
    }
    close(fd);
    if (s != MILK_OK) return s;
    milk_maps *m = calloc(1, sizeof *m);
    char *p = m ? strdup(path) : NULL;
    if (!m || !p) {
        if (base) munmap(base, (size_t)st.st_size);
        free(m);
        return milk_errorf(ctx, MILK_ERR_NOMEM, "out of memory");
    }
    m->path = p;
    m->base = base;
    m->size = base ? (size_t)st.st_size : 0;
    m->next = *maps;
    *maps = m;
    *out = m;
    return MILK_OK;
}

milk_status milk_rt_from_value_mapped(milk_ctx *ctx, milk_rt *t,
                                      const milk_value *v, milk_maps **maps)
{
    const milk_data *d = &v->data;
    milk_dtype dt = v->type.dtype;
    bool in_place = dt == MILK_DTYPE_FP32 || dt == MILK_DTYPE_INT32;
    if (v->kind != MILK_VALUE_TENSOR || d->kind != MILK_DATA_FILE ||
        d->stored != dt || (!in_place && dt != MILK_DTYPE_FP16) || d->offset % 4)
        return milk_rt_from_value(ctx, t, v);
    int64_t count = milk_tensor_type_count(&v->type);
    uint64_t nbytes;
    if (count < 0 || !milk_dtype_nbytes(dt, count, &nbytes))
        return milk_rt_from_value(ctx, t, v); /* its error message */
    const milk_maps *m = NULL;
    MILK_TRY(map_file(ctx, d->path, maps, &m));
    if (d->offset > m->size || nbytes > m->size - d->offset)
        return milk_errorf(ctx, MILK_ERR_INVALID_MODEL,
                           "%s: %llu bytes at offset %llu run past the end of "
                           "the file (%zu bytes)",
                           d->path, (unsigned long long)nbytes,
                           (unsigned long long)d->offset, m->size);
    const void *src = m->base + d->offset;
    if (in_place) {
        memset(t, 0, sizeof *t);
        t->type = v->type;
        t->store = milk_rt_store(dt);
        t->count = count;
        t->data = (void *)src; /* read-only: kernels never write inputs */
        return MILK_OK;
    }
    /* fp16: widened once into the runner's own fp32 copy */
    MILK_TRY(milk_rt_alloc(ctx, t, &v->type));
    milk_vec_get()->widen16(src, milk_rt_f32(t), count);
    return MILK_OK;
}
