/* state.c: read_state and write_state, the ops on states (iOS18), after
 * coremltools' ops/defs/iOS18/states.py and the coreml_update_state
 * dialect op (coreml_dialect/ops.py), which its backend exports as
 * write_state followed by read_state (backend/mil/load.py). A state is a
 * function input (src/ir/state.c); in the interpreter its tensor belongs
 * to the runner's state object (src/run/state.c) and stays from one run
 * to the next. */
#include "layout.h"

/* The type wrapped by the state bound to `input` (the signature check has
 * made sure it is a state). */
static milk_status state_type(milk_infer *ic, const milk_tensor_type **out)
{
    *out = milk_op_in_type(ic->op, "input");
    if (!*out || (*out)->rank < 0)
        return milk_op_fail(ic->ctx, ic->op, "input",
                            "a state of known rank is needed");
    return MILK_OK;
}

static milk_status read_state_infer(milk_infer *ic)
{
    const milk_tensor_type *st;
    MILK_TRY(state_type(ic, &st));
    return milk_infer_one(ic, st->dtype, st->rank, st->dims);
}

/* out = the state's current value */
static milk_status read_state_eval(milk_eval *ec)
{
    const milk_rt *st = milk_eval_in(ec, "input");
    milk_rt *o = &ec->out[0];
    if (st->count != o->count || st->store != o->store)
        return milk_op_fail(ec->ctx, ec->op, "input",
                            "the state holds %lld values, the output %lld",
                            (long long)st->count, (long long)o->count);
    if (o->count) memcpy(o->data, st->data, (size_t)o->count * milk_layout_esz(o));
    return MILK_OK;
}

/* read_state: a copy of a state's value.
 *   input  R  state<tensor<T, S>>  (a state input of the function)
 * Output: tensor<T, S>. */
static const milk_param read_state_params[] = {
    {"input", MILK_P_REQ | MILK_P_STATE, 0},
    {0},
};

const milk_op_info milk_op_read_state = {
    .name = "read_state",
    .params = read_state_params,
    .min_opset = MILK_TARGET_IOS18,
    .infer = read_state_infer,
    .eval = read_state_eval,
};

/* data must have exactly the state's type (coreml_update_state's rule). */
static milk_status write_state_infer(milk_infer *ic)
{
    const milk_tensor_type *st, *d = milk_op_in_type(ic->op, "data");
    MILK_TRY(state_type(ic, &st));
    bool same = d && d->dtype == st->dtype && d->rank == st->rank;
    for (int i = 0; same && i < st->rank; i++)
        same = d->dims[i] == st->dims[i] || d->dims[i] < 0 || st->dims[i] < 0;
    if (!same) {
        char a[160], b[160];
        milk_type_str(st, a, sizeof a);
        if (d) milk_type_str(d, b, sizeof b);
        return milk_op_fail(ic->ctx, ic->op, "data",
                            "is %s, the state holds %s", d ? b : "?", a);
    }
    ic->n_out = 0; /* no outputs: the op changes the state */
    return MILK_OK;
}

/* state = data, in place: the state tensor is the runner's (its state
 * object's), not an input of this run, so writing through the binding
 * is the op's whole purpose. */
static milk_status write_state_eval(milk_eval *ec)
{
    milk_rt *st = (milk_rt *)milk_eval_in(ec, "input");
    const milk_rt *d = milk_eval_in(ec, "data");
    if (st->count != d->count || st->store != d->store)
        return milk_op_fail(ec->ctx, ec->op, "data",
                            "%lld values for a state of %lld",
                            (long long)d->count, (long long)st->count);
    if (d->count) memcpy(st->data, d->data, (size_t)d->count * milk_layout_esz(d));
    return MILK_OK;
}

/* write_state: store a tensor into a state.
 *   input  R  state<tensor<T, S>>
 *   data   R  tensor<T, S>, the state's exact type
 * No outputs. In MIL.proto coremltools' coreml_update_state(state, value)
 * appears as write_state(input, data) followed by read_state(input). */
static const milk_param write_state_params[] = {
    {"input", MILK_P_REQ | MILK_P_STATE, 0},
    {"data", MILK_P_REQ, 0},
    {0},
};

const milk_op_info milk_op_write_state = {
    .name = "write_state",
    .params = write_state_params,
    .min_opset = MILK_TARGET_IOS18,
    .infer = write_state_infer,
    .eval = write_state_eval,
};
