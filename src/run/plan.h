/*
 * plan.h: the planned interpreter (plan.c), the runner's fast path: plan
 * once, then run many times.
 *
 * A plan is made for one function and one set of input shapes: every var
 * gets its concrete type (declared, or inferred once for flexible shapes),
 * every op a step (a fast kernel prepared ahead, src/ops/fast.h; a view of
 * its input for reshape-like ops; or the op's own kernel), and every
 * intermediate an offset in one arena, assigned by lifetime so that values
 * that are never alive together share memory. Running a plan allocates
 * nothing. Activations that follow a conv or linear (relu, sigmoid, ...,
 * and x * act(x) as in silu and hard swish) are fused into its epilogue
 * when their intermediate values are not kept. The runner (runner.c) owns
 * the tables the plan writes into (values, statistics), so reading results
 * works the same after a planned run as after a reference one.
 */
#ifndef MILK_RUN_PLAN_H
#define MILK_RUN_PLAN_H

#include "pool.h"
#include "run.h"

typedef struct milk_plan milk_plan;

/* The runner's tables a plan works on (they outlive the plan). */
typedef struct milk_plan_io {
    const milk_function *fn;
    const milk_block *blk;
    const milk_run_params *params;
    milk_rt *vals;                    /* by var id */
    bool *have;
    const bool *keep, *pinned, *open; /* open: by op, see runner.c */
    const milk_rt *const *const *const *in; /* in[op][arg][binding] */
    milk_op_stats *stats;             /* by op */
    bool dynamic;
    milk_pool *pool;                  /* NULL: one thread */
} milk_plan_io;

/* Plan io's function for the input types in io->vals (inputs not set yet
 * take their declared types, which must then be concrete). Fails with
 * MILK_ERR_UNSUPPORTED when the sizes depend on values computed at run
 * time (the runner then runs op by op). */
milk_status milk_plan_make(milk_ctx *ctx, const milk_plan_io *io,
                           milk_plan **out);
/* Whether the inputs set now have the types the plan was made for. */
bool milk_plan_fits(const milk_plan *pl);
milk_status milk_plan_run(milk_ctx *ctx, milk_plan *pl);
/* Frees the plan and forgets the values that lived in its arena. */
void milk_plan_free(milk_plan *pl);

/* Bytes of the plan's arena (intermediate values) and scratch. */
int64_t milk_plan_arena_bytes(const milk_plan *pl);

/* A constant's runtime tensor without a copy where its layout allows:
 * fp32 and int32 data of a weight file are used in place from a read-only
 * mapping of the file (maps keeps the mappings, one per file, until
 * milk_maps_free); fp16 data is converted to fp32 once (F16C where
 * present); anything else goes through milk_rt_from_value. */
typedef struct milk_maps milk_maps;
milk_status milk_rt_from_value_mapped(milk_ctx *ctx, milk_rt *t,
                                      const milk_value *v, milk_maps **maps);
void milk_maps_free(milk_maps *m);

#endif /* MILK_RUN_PLAN_H */
