/* lower_layout.c: lowerings of the ops that rearrange whole blocks of a
 * tensor: Tile, DepthToSpace (DCR and CRD), SpaceToDepth; and Size, a
 * constant once shapes are static. */
#include "lower_util.h"

milk_status milk_lower_tile(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    int64_t reps[MILK_MAX_RANK];
    int k;
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_const_ints(c, 1, reps, MILK_MAX_RANK, &k));
    if (k != x->type.rank)
        return milk_cv_fail(c, MILK_ERR_INVALID_MODEL, "%d repeats for rank %d",
                            k, (int)x->type.rank);
    bool any = false;
    for (int i = 0; i < k; i++) {
        if (reps[i] < 1) return milk_cv_unsupported(c, "repeat %lld (an empty "
                                                    "result)", (long long)reps[i]);
        any |= reps[i] != 1;
    }
    if (!any) return milk_cv_set_out(c, 0, x);
    milk_cv_op o;
    milk_cv_op_begin(&o, c, "tile", milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_ints(&o, "reps", reps, k);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

/* DepthToSpace mode DCR is MIL's depth_to_space (TensorFlow's order), CRD
 * is pixel_shuffle (PyTorch's); SpaceToDepth is space_to_depth. */
milk_status milk_lower_space_depth(milk_cv *c, const milk_onnx_node *n)
{
    milk_var *x, *out;
    int64_t b;
    const char *mode, *type, *param = "block_size";
    MILK_TRY(milk_cv_input(c, 0, &x));
    MILK_TRY(milk_cv_attr_int(c, "blocksize", 0, &b));
    MILK_TRY(milk_cv_attr_str(c, "mode", "DCR", &mode));
    if (strcmp(n->op_type, "SpaceToDepth") == 0) {
        type = "space_to_depth";
    } else if (strcmp(mode, "DCR") == 0) {
        type = "depth_to_space";
    } else if (strcmp(mode, "CRD") == 0) {
        type = "pixel_shuffle";
        param = "upscale_factor";
    } else {
        return milk_cv_unsupported(c, "attribute 'mode': '%s'", mode);
    }
    if (x->type.rank != 4)
        return milk_cv_unsupported(c, "input of rank %d (4 only)", (int)x->type.rank);
    milk_cv_op o;
    milk_cv_op_begin(&o, c, type, milk_cv_out(c, 0));
    milk_cv_arg(&o, "x", x);
    milk_cv_arg_int(&o, param, b);
    MILK_TRY(milk_cv_op_end(&o, &out));
    return milk_cv_set_out(c, 0, out);
}

milk_status milk_lower_size(milk_cv *c, const milk_onnx_node *n)
{
    milk_tensor_type t;
    MILK_TRY(milk_cv_type(c, 0, &t));
    int64_t count = milk_tensor_type_count(&t);
    if (count < 0 || count > INT32_MAX)
        return milk_cv_unsupported(c, "%lld elements (int32 only)", (long long)count);
    int32_t v = (int32_t)count;
    milk_tensor_type st = {MILK_DTYPE_INT32, 0, {0}};
    return milk_cv_set_out_const(c, 0, &st, &v);
}
