/* select.c: select(cond, a, b), NumPy's where: a where cond is true, b
 * elsewhere (coremltools' ops/defs/iOS15/control_flow.py). */
#include "elementwise.h"

static const milk_param select_params[] = {
    {"cond", MILK_P_REQ, 0},
    {"a", MILK_P_REQ, 0},
    {"b", MILK_P_REQ, 0},
    {0},
};

static milk_status select_infer(milk_infer *ic)
{
    static const char *const ab[] = {"a", "b", NULL};
    MILK_TRY(milk_op_check_dtype(ic->ctx, ic->op, "cond", MILK_DT_BOOL));
    MILK_TRY(milk_infer_domain(ic, ab, MILK_DT_NUM | MILK_DT_BOOL));
    milk_tensor_type ab_t;
    MILK_TRY(milk_infer_outputs(ic, 1));
    MILK_TRY(milk_op_broadcast(ic->ctx, ic->op, milk_op_in_type(ic->op, "a"),
                               milk_op_in_type(ic->op, "b"), &ab_t));
    ic->out[0].dtype = milk_op_in_type(ic->op, "a")->dtype;
    return milk_op_broadcast(ic->ctx, ic->op, milk_op_in_type(ic->op, "cond"),
                             &ab_t, &ic->out[0]);
}

/* Two broadcast walks in step: one gives the offsets into cond and a, the
 * other into b. */
static milk_status select_eval(milk_eval *ec)
{
    const milk_rt *c = milk_eval_in(ec, "cond");
    const milk_rt *a = milk_eval_in(ec, "a"), *b = milk_eval_in(ec, "b");
    milk_rt *o = &ec->out[0];
    milk_bcast ca, bb;
    milk_bcast_init(&ca, &o->type, &c->type, &a->type);
    milk_bcast_init(&bb, &o->type, &b->type, &b->type);
    size_t esz = o->store == MILK_DTYPE_BOOL ? 1 : 4;
    for (int64_t i = 0; i < o->count; i++) { /* [out] */
        bool take_a = milk_rt_bool(c)[ca.ia] != 0;
        const milk_rt *src = take_a ? a : b;
        int64_t at = take_a ? ca.ib : bb.ia;
        memcpy((char *)o->data + i * esz, (const char *)src->data + at * esz, esz);
        milk_bcast_next(&ca);
        milk_bcast_next(&bb);
    }
    return MILK_OK;
}

/* select: cond ? a : b element by element.
 *   cond  R  bool
 *   a     R  fp16/fp32/int32/bool
 *   b     R  a's dtype
 * Output: a's dtype; the NumPy broadcast of all three shapes (as
 * np.where and coremltools' docstring say; its type inference broadcasts
 * only a and b, which differs only when cond has the largest shape). */
const milk_op_info milk_op_select = {
    .name = "select",
    .params = select_params,
    .min_opset = MILK_TARGET_IOS15,
    .infer = select_infer,
    .eval = select_eval,
};
