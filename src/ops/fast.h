/*
 * fast.h: the planned interpreter's fast kernels (src/ops/NAME_fast.c,
 * beside each op's reference kernel), and how the planner (src/run/plan.c)
 * drives them.
 *
 * At plan time the planner binds an op's inputs and outputs to tensors of
 * known types (constants with their data) in a milk_eval and calls the
 * op's prepare function, which either declines (leaving k->run NULL: the
 * planner then runs the op's eval_fast or reference kernel) or fills a
 * milk_kernel: the run function, its prepared state (in the plan's arena),
 * the scratch it needs per worker thread and shared by all, and whether
 * it takes a fused
 * epilogue. At run time the kernel reads its tensors' data through the
 * same milk_eval (data pointers can change between runs: inputs are set
 * anew), never allocates, and splits its work over the pool by output
 * channels or rows in a way fixed by the shapes alone, so results do not
 * depend on the number of threads.
 *
 * A kernel must write every element of its outputs, and record their
 * statistics: those with an epilogue (conv, linear) through it, the others
 * leave that to the planner (milk_vec's finish).
 */
#ifndef MILK_OPS_FAST_H
#define MILK_OPS_FAST_H

#include "../run/pool.h"
#include "../run/run.h"
#include "../run/vec.h"

typedef struct milk_fast milk_fast;

typedef struct milk_kernel {
    milk_status (*run)(const milk_fast *f);
    void *state;          /* prepared at plan time, in the plan's arena */
    int64_t scratch;      /* bytes of scratch per worker thread */
    int64_t shared;       /* bytes of scratch shared by the threads */
    bool epilogue;        /* takes an epilogue (and records statistics) */
} milk_kernel;

/* What a kernel sees when it runs. */
struct milk_fast {
    milk_eval *ec;        /* inputs and outputs (data valid for this run) */
    const void *state;
    milk_pool *pool;
    const milk_vec *v;
    char *scratch;        /* threads x scratch bytes; worker w's at w * stride */
    int64_t scratch_stride;
    char *shared;         /* k.shared bytes */
    /* epilogue kernels: the fused stages and their statistics, 3 per
     * worker thread (st[worker * 3 + stage]) */
    const milk_epi *epi;
    milk_vstats *st;
};

/* Prepare: ec has the op and its bound tensors (types; constants have
 * data). Return MILK_OK with k->run NULL to decline. */
typedef milk_status (*milk_fast_prepare)(milk_eval *ec, milk_arena *a,
                                         milk_kernel *k);

/* The prepare function for an op kind, NULL if it has none. */
milk_fast_prepare milk_fast_for(int kind);

/* Per-op prepare functions (one file per family). */
milk_status milk_fast_conv(milk_eval *ec, milk_arena *a, milk_kernel *k);
milk_status milk_fast_linear(milk_eval *ec, milk_arena *a, milk_kernel *k);
milk_status milk_fast_unary(milk_eval *ec, milk_arena *a, milk_kernel *k);
milk_status milk_fast_binary(milk_eval *ec, milk_arena *a, milk_kernel *k);
milk_status milk_fast_softmax(milk_eval *ec, milk_arena *a, milk_kernel *k);
milk_status milk_fast_layer_norm(milk_eval *ec, milk_arena *a, milk_kernel *k);
milk_status milk_fast_reduce(milk_eval *ec, milk_arena *a, milk_kernel *k);
milk_status milk_fast_pool(milk_eval *ec, milk_arena *a, milk_kernel *k);
milk_status milk_fast_transpose(milk_eval *ec, milk_arena *a, milk_kernel *k);
milk_status milk_fast_concat(milk_eval *ec, milk_arena *a, milk_kernel *k);

/* The element-wise function an activation op computes (relu, sigmoid,
 * sigmoid_hard, gelu, ...), for fusing it into an epilogue: false if op
 * is none of them (or has parameters that are not constants). */
bool milk_fast_act_of(milk_ctx *ctx, const milk_op *op, milk_fnp *f);

/* pool.c's window geometry of max_pool, avg_pool and l2_pool: per spatial
 * dim the input and output sizes, kernel, stride, the padding placed
 * before index 0, and the stride of the dim within one [*D] plane of x. */
typedef struct milk_pool_geom {
    int S;
    int64_t in[3], out[3], k[3], s[3], before[3], st[3];
    int64_t window; /* elements of the kernel's window */
} milk_pool_geom;
milk_status milk_pool_geometry(milk_eval *ec, const milk_rt *x,
                               const milk_rt *o, milk_pool_geom *g);

/* Worker w's scratch. */
static inline void *milk_fast_scratch(const milk_fast *f, int w)
{
    return f->scratch + (int64_t)w * f->scratch_stride;
}

#endif /* MILK_OPS_FAST_H */
