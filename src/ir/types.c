/* types.c: the dtype traits table, tensor type helpers, deployment
 * targets and opset names, and MIL's identifier rule. */
#include "ir.h"

#include <ctype.h>
#include <stdio.h>
#include <strings.h>

typedef struct dtype_traits {
    milk_dtype dtype;
    const char *name; /* MIL text name */
    int bits;
} dtype_traits;

static const dtype_traits dtypes[] = {
    {MILK_DTYPE_BOOL, "bool", 8},     {MILK_DTYPE_STRING, "string", 0},
    {MILK_DTYPE_FP16, "fp16", 16},    {MILK_DTYPE_FP32, "fp32", 32},
    {MILK_DTYPE_FP64, "fp64", 64},    {MILK_DTYPE_BF16, "bf16", 16},
    {MILK_DTYPE_INT8, "int8", 8},     {MILK_DTYPE_INT16, "int16", 16},
    {MILK_DTYPE_INT32, "int32", 32},  {MILK_DTYPE_INT64, "int64", 64},
    {MILK_DTYPE_INT4, "int4", 4},     {MILK_DTYPE_UINT8, "uint8", 8},
    {MILK_DTYPE_UINT16, "uint16", 16}, {MILK_DTYPE_UINT32, "uint32", 32},
    {MILK_DTYPE_UINT64, "uint64", 64}, {MILK_DTYPE_UINT4, "uint4", 4},
    {MILK_DTYPE_UINT2, "uint2", 2},   {MILK_DTYPE_UINT1, "uint1", 1},
    {MILK_DTYPE_UINT6, "uint6", 6},   {MILK_DTYPE_UINT3, "uint3", 3},
};

static const dtype_traits *traits(milk_dtype d)
{
    for (size_t i = 0; i < MILK_ARRAY_LEN(dtypes); i++)
        if (dtypes[i].dtype == d) return &dtypes[i];
    return NULL;
}

const char *milk_dtype_name(milk_dtype d)
{
    const dtype_traits *t = traits(d);
    return t ? t->name : NULL;
}

milk_dtype milk_dtype_from_name(const char *name)
{
    for (size_t i = 0; i < MILK_ARRAY_LEN(dtypes); i++)
        if (strcmp(dtypes[i].name, name) == 0) return dtypes[i].dtype;
    return MILK_DTYPE_INVALID;
}

int milk_dtype_bits(milk_dtype d)
{
    const dtype_traits *t = traits(d);
    return t ? t->bits : 0;
}

bool milk_dtype_nbytes(milk_dtype d, int64_t n, uint64_t *out)
{
    int bits = milk_dtype_bits(d);
    if (bits == 0 || n < 0) return false;
    uint64_t nbits;
    if (!milk_mul_u64((uint64_t)n, (uint64_t)bits, &nbits)) return false;
    *out = (nbits + 7) / 8;
    return true;
}

int64_t milk_tensor_type_count(const milk_tensor_type *t)
{
    int64_t n;
    if (t->rank < 0 || t->rank > MILK_MAX_RANK) return -1;
    return milk_dims_count(t->dims, t->rank, &n) ? n : -1;
}

milk_status milk_tensor_type_check(milk_ctx *ctx, const milk_tensor_type *t)
{
    if (!milk_dtype_name(t->dtype))
        return milk_errorf(ctx, MILK_ERR_TYPE, "unknown dtype %d", (int)t->dtype);
    if (t->rank == MILK_RANK_UNKNOWN) return MILK_OK;
    if (t->rank < 0 || t->rank > MILK_MAX_RANK)
        return milk_errorf(ctx, MILK_ERR_TYPE, "rank %d outside 0..%d",
                           (int)t->rank, MILK_MAX_RANK);
    int64_t known[MILK_MAX_RANK], count;
    int n = 0;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i] == MILK_DIM_UNKNOWN) continue;
        if (t->dims[i] < 0)
            return milk_errorf(ctx, MILK_ERR_TYPE, "dimension %d is %lld", i,
                               (long long)t->dims[i]);
        known[n++] = t->dims[i];
    }
    if (!milk_dims_count(known, n, &count)) {
        char dims[MILK_MAX_RANK * 24] = "";
        for (int i = 0, k = 0; i < t->rank; i++)
            k += snprintf(dims + k, sizeof dims - (size_t)k, "%s%lld", i ? ", " : "",
                          (long long)t->dims[i]);
        return milk_errorf(ctx, MILK_ERR_TYPE, "shape [%s] holds more than 2^40 "
                           "elements", dims);
    }
    return MILK_OK;
}

static const struct {
    milk_target target;
    const char *name;  /* text form, as in model.mil */
    const char *opset; /* Function.opset in the proto */
} targets[] = {
    {MILK_TARGET_IOS15, "ios15", "CoreML5"},
    {MILK_TARGET_IOS16, "ios16", "CoreML6"},
    {MILK_TARGET_IOS17, "ios17", "CoreML7"},
    {MILK_TARGET_IOS18, "ios18", "CoreML8"},
    {MILK_TARGET_IOS26, "ios26", "CoreML9"},
};

/* The same Core ML releases under the names of the other OSes
 * (coremltools' AvailableTarget, Model.proto's specificationVersion
 * comments; visionOS 1 shipped with the iOS17 release, 2 with iOS18). */
static const struct {
    const char *name;
    milk_target target;
} aliases[] = {
    {"macos12", MILK_TARGET_IOS15}, {"tvos15", MILK_TARGET_IOS15},
    {"watchos8", MILK_TARGET_IOS15},
    {"macos13", MILK_TARGET_IOS16}, {"tvos16", MILK_TARGET_IOS16},
    {"watchos9", MILK_TARGET_IOS16},
    {"macos14", MILK_TARGET_IOS17}, {"tvos17", MILK_TARGET_IOS17},
    {"watchos10", MILK_TARGET_IOS17}, {"visionos1", MILK_TARGET_IOS17},
    {"macos15", MILK_TARGET_IOS18}, {"tvos18", MILK_TARGET_IOS18},
    {"watchos11", MILK_TARGET_IOS18}, {"visionos2", MILK_TARGET_IOS18},
    {"macos26", MILK_TARGET_IOS26}, {"tvos26", MILK_TARGET_IOS26},
    {"watchos26", MILK_TARGET_IOS26}, {"visionos26", MILK_TARGET_IOS26},
};

const char *milk_target_name(milk_target t)
{
    for (size_t i = 0; i < MILK_ARRAY_LEN(targets); i++)
        if (targets[i].target == t) return targets[i].name;
    return NULL;
}

milk_target milk_target_from_name(const char *name)
{
    for (size_t i = 0; i < MILK_ARRAY_LEN(targets); i++)
        if (strcasecmp(targets[i].name, name) == 0) return targets[i].target;
    for (size_t i = 0; i < MILK_ARRAY_LEN(aliases); i++)
        if (strcasecmp(aliases[i].name, name) == 0) return aliases[i].target;
    return (milk_target)0;
}

const char *milk_opset_proto_name(milk_target t)
{
    for (size_t i = 0; i < MILK_ARRAY_LEN(targets); i++)
        if (targets[i].target == t) return targets[i].opset;
    return NULL;
}

milk_target milk_opset_from_proto_name(const char *s)
{
    for (size_t i = 0; i < MILK_ARRAY_LEN(targets); i++)
        if (strcmp(targets[i].opset, s) == 0) return targets[i].target;
    return (milk_target)0;
}

bool milk_is_identifier(const char *s)
{
    if (!s || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
    for (const char *p = s + 1; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '@'))
            return false;
    return true;
}
