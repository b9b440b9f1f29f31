/* test_blob.c: the package writer's weight.bin and save protocol: the worked
 * example of docs/coreml-format.md 4.4 byte for byte, the 10-element
 * threshold of section 4.6, a file-backed const converted while streamed,
 * replacing an existing package, a failed save leaving nothing behind,
 * and every dtype and value kind through save and load (the TensorValue
 * field of section 3.3 for each). model.mlmodel is decoded with protobuf-c
 * to find the BlobFileValues and fields. */
#include "milk.h"
#include "check.h"
#include "ir/ir.h"
#include "Model.pb-c.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

/* ---- small file helpers ------------------------------------------------- */

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(len > 0 ? (size_t)len : 1);
    *n = buf ? fread(buf, 1, (size_t)len, f) : 0;
    fclose(f);
    return buf;
}

static char *pkg_file(const char *pkg, const char *rel)
{
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "%s/%s", pkg, rel);
    return b;
}

#define WEIGHTS "Data/com.apple.CoreML/weights/weight.bin"
#define MODEL "Data/com.apple.CoreML/model.mlmodel"

static uint32_t u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t u64(const unsigned char *p)
{
    return (uint64_t)u32(p) | (uint64_t)u32(p + 4) << 32;
}

/* Entries of tmpdir other than "." and "..". */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) closedir(d);
    return n;
}

/* ---- decoding model.mlmodel --------------------------------------------- */

typedef CoreML__Specification__MILSpec__Operation pb_op;

static CoreML__Specification__Model *load_model(const char *pkg)
{
    size_t n;
    unsigned char *buf = slurp(pkg_file(pkg, MODEL), &n);
    CoreML__Specification__Model *m =
        buf ? core_ml__specification__model__unpack(NULL, n, buf) : NULL;
    free(buf);
    return m;
}

/* The `val` attribute of the const op named name in main. */
static CoreML__Specification__MILSpec__Value *const_val(
    CoreML__Specification__Model *m, const char *name)
{
    if (!m || !m->mlprogram || m->mlprogram->n_functions != 1) return NULL;
    CoreML__Specification__MILSpec__Function *f = m->mlprogram->functions[0]->value;
    CoreML__Specification__MILSpec__Block *b = f->block_specializations[0]->value;
    for (size_t i = 0; i < b->n_operations; i++) {
        pb_op *op = b->operations[i];
        if (strcmp(op->type, "const") || strcmp(op->outputs[0]->name, name)) continue;
        for (size_t j = 0; j < op->n_attributes; j++)
            if (strcmp(op->attributes[j]->key, "val") == 0)
                return op->attributes[j]->value;
    }
    return NULL;
}

static long long blob_offset(CoreML__Specification__Model *m, const char *name)
{
    CoreML__Specification__MILSpec__Value *v = const_val(m, name);
    if (!v || v->value_case != CORE_ML__SPECIFICATION__MILSPEC__VALUE__VALUE_BLOB_FILE_VALUE)
        return -1;
    if (strcmp(v->blobfilevalue->filename, "@model_path/weights/weight.bin"))
        return -2;
    return (long long)v->blobfilevalue->offset;
}

/* ---- building programs ---------------------------------------------------- */

static milk_tensor_type vec(milk_dtype d, int64_t n)
{
    milk_tensor_type t = {d, 1, {n}};
    return t;
}

/* main(x: fp32[n]) -> relu(x), plus whatever consts the caller adds. */
static milk_block *new_main(milk_ctx *ctx, milk_program **p, milk_target t)
{
    milk_function *f;
    milk_var *x;
    CHECK_OK(ctx, milk_program_create(ctx, t, p));
    CHECK_OK(ctx, milk_program_add_function(ctx, *p, "main", &f));
    milk_tensor_type tx = vec(MILK_DTYPE_FP32, 4);
    CHECK_OK(ctx, milk_function_add_input(ctx, f, "x", &tx, &x));
    return milk_function_block(f);
}

static void finish_main(milk_ctx *ctx, milk_block *b)
{
    milk_op *op;
    milk_var *x = milk_function_input(b->fn, 0);
    milk_input in[] = {{"x", x}};
    CHECK_OK(ctx, milk_block_add_op(ctx, b, "relu", "y", in, 1, &op));
    CHECK_OK(ctx, milk_block_add_output(ctx, b, milk_op_output(op, 0)));
}

/* ---- tests ------------------------------------------------------------------ */

/* Section 4.4: fp16 x100 then fp32 x30 -> header {2, 2}, records at 64 and
 * 384 (= round_up_64(128 + 200)), data at 128 and 448, length 568. */
static void test_worked_example(milk_ctx *ctx)
{
    milk_program *p;
    milk_block *b = new_main(ctx, &p, MILK_TARGET_IOS17);
    uint16_t h[100];
    float f[30];
    for (int i = 0; i < 100; i++) h[i] = (uint16_t)(0x3C00 + i); /* 1.0 and up */
    for (int i = 0; i < 30; i++) f[i] = (float)i * 0.5f;
    milk_tensor_type th = vec(MILK_DTYPE_FP16, 100), tf = vec(MILK_DTYPE_FP32, 30);
    CHECK_OK(ctx, milk_block_add_const(ctx, b, "w16", &th, h, NULL));
    CHECK_OK(ctx, milk_block_add_const(ctx, b, "w32", &tf, f, NULL));
    finish_main(ctx, b);
    char pkg[512];
    snprintf(pkg, sizeof pkg, "%s/ex.mlpackage", tmpdir);
    CHECK_OK(ctx, milk_program_save(ctx, p, pkg));
    milk_program_free(p);

    size_t n = 0;
    unsigned char *w = slurp(pkg_file(pkg, WEIGHTS), &n);
    CHECK(w != NULL);
    CHECK_EQ_INT(n, 568);
    if (!w || n != 568) {
        free(w);
        return;
    }
    CHECK_EQ_INT(u32(w), 2);            /* count */
    CHECK_EQ_INT(u32(w + 4), 2);        /* version */
    CHECK_EQ_INT(u32(w + 64), 0xDEADBEEF);
    CHECK_EQ_INT(u32(w + 68), 1);       /* Float16 */
    CHECK_EQ_INT(u64(w + 72), 200);
    CHECK_EQ_INT(u64(w + 80), 128);
    CHECK_EQ_INT(u32(w + 384), 0xDEADBEEF);
    CHECK_EQ_INT(u32(w + 388), 2);      /* Float32 */
    CHECK_EQ_INT(u64(w + 392), 120);
    CHECK_EQ_INT(u64(w + 400), 448);
    CHECK(memcmp(w + 128, h, 200) == 0);
    CHECK(memcmp(w + 448, f, 120) == 0);
    CHECK(w[128] == 0x00 && w[129] == 0x3C); /* 0x3C00 little-endian */
    CHECK(w[448 + 4 * 3 + 3] == 0x3F && w[448 + 4 * 3 + 2] == 0xC0); /* 1.5f = 0x3FC00000 */
    int zero = 1;
    for (int i = 328; i < 384; i++) zero &= w[i] == 0; /* the alignment gap */
    CHECK(zero);
    free(w);

    CoreML__Specification__Model *m = load_model(pkg);
    CHECK(m != NULL);
    CHECK_EQ_INT(blob_offset(m, "w16"), 64);
    CHECK_EQ_INT(blob_offset(m, "w32"), 384);
    CHECK_EQ_INT(m ? m->specificationversion : 0, 8);
    /* the description derived from main (section 2.6): x and y, fp32 [4] */
    CoreML__Specification__ModelDescription *d = m ? m->description : NULL;
    CHECK(d && d->n_input == 1 && d->n_output == 1 && !d->metadata);
    if (d && d->n_input == 1 && d->n_output == 1) {
        CoreML__Specification__ArrayFeatureType *a = d->input[0]->type->multiarraytype;
        CHECK(strcmp(d->input[0]->name, "x") == 0 && strcmp(d->output[0]->name, "y") == 0);
        CHECK(a && a->n_shape == 1 && a->shape[0] == 4 && a->datatype == 65568);
    }
    if (m) core_ml__specification__model__free_unpacked(m, NULL);

    /* and the reader finds the same data behind those offsets */
    milk_program *q;
    CHECK_OK(ctx, milk_program_load(ctx, pkg, &q));
    if (!q) return;
    const milk_value *v = milk_var_const(milk_function_var(milk_program_function(q, "main"), "w32"));
    float back[30] = {0};
    CHECK(v && v->data.kind == MILK_DATA_FILE && v->data.record == 384);
    if (v) CHECK_OK(ctx, milk_value_read(ctx, v, back));
    CHECK(memcmp(back, f, sizeof f) == 0);
    milk_program_free(q);
}

/* Section 4.6: 9 elements stay inline, 10 go to weight.bin. */
static void test_threshold(milk_ctx *ctx)
{
    milk_program *p;
    milk_block *b = new_main(ctx, &p, MILK_TARGET_IOS15);
    float f[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    milk_tensor_type t9 = vec(MILK_DTYPE_FP32, 9), t10 = vec(MILK_DTYPE_FP32, 10);
    CHECK_OK(ctx, milk_block_add_const(ctx, b, "nine", &t9, f, NULL));
    CHECK_OK(ctx, milk_block_add_const(ctx, b, "ten", &t10, f, NULL));
    finish_main(ctx, b);
    char pkg[512];
    snprintf(pkg, sizeof pkg, "%s/thr.mlpackage", tmpdir);
    CHECK_OK(ctx, milk_program_save(ctx, p, pkg));
    milk_program_free(p);
    CoreML__Specification__Model *m = load_model(pkg);
    CoreML__Specification__MILSpec__Value *nine = const_val(m, "nine");
    CHECK(nine && nine->value_case == CORE_ML__SPECIFICATION__MILSPEC__VALUE__VALUE_IMMEDIATE_VALUE);
    if (nine && nine->value_case == CORE_ML__SPECIFICATION__MILSPEC__VALUE__VALUE_IMMEDIATE_VALUE) {
        CoreML__Specification__MILSpec__TensorValue *tv = nine->immediatevalue->tensor;
        CHECK(tv && tv->value_case == CORE_ML__SPECIFICATION__MILSPEC__TENSOR_VALUE__VALUE_FLOATS);
        CHECK(tv && tv->floats->n_values == 9 && tv->floats->values[8] == 9.0f);
    }
    CHECK_EQ_INT(blob_offset(m, "ten"), 64);
    if (m) core_ml__specification__model__free_unpacked(m, NULL);
    struct stat st;
    CHECK(stat(pkg_file(pkg, WEIGHTS), &st) == 0 && st.st_size == 64 + 64 + 40);
}

/* Consts taking their data from the same place with the same type share
 * one blob (as coremltools writes one blob for a weight several functions
 * use); the same memory seen with another shape is a blob of its own. */
static void test_shared(milk_ctx *ctx)
{
    milk_program *p;
    milk_block *b = new_main(ctx, &p, MILK_TARGET_IOS17);
    float f[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    milk_tensor_type t10 = vec(MILK_DTYPE_FP32, 10), t25 = {MILK_DTYPE_FP32, 2, {2, 5}};
    CHECK_OK(ctx, milk_block_add_const_borrowed(ctx, b, "s1", &t10, f, NULL));
    CHECK_OK(ctx, milk_block_add_const_borrowed(ctx, b, "s2", &t10, f, NULL));
    CHECK_OK(ctx, milk_block_add_const_borrowed(ctx, b, "s3", &t25, f, NULL));
    finish_main(ctx, b);
    char pkg[512];
    snprintf(pkg, sizeof pkg, "%s/shared.mlpackage", tmpdir);
    CHECK_OK(ctx, milk_program_save(ctx, p, pkg));
    milk_program_free(p);
    CoreML__Specification__Model *m = load_model(pkg);
    CHECK_EQ_INT(blob_offset(m, "s1"), 64);
    CHECK_EQ_INT(blob_offset(m, "s2"), 64);
    CHECK_EQ_INT(blob_offset(m, "s3"), 192); /* round_up_64(128 + 40) */
    if (m) core_ml__specification__model__free_unpacked(m, NULL);
    size_t n = 0;
    unsigned char *w = slurp(pkg_file(pkg, WEIGHTS), &n);
    CHECK_EQ_INT(n, 192 + 64 + 40);
    CHECK(w && n >= 8 && u32(w) == 2); /* two blobs counted */
    free(w);
}

/* A const whose data is fp32 in a range of another file, declared fp16:
 * converted chunk by chunk while streamed (6 MB of output, more than one
 * 4 MiB chunk). Values -1, 0, 1, 2 repeat: fp16 0xBC00, 0, 0x3C00, 0x4000. */
static void test_file_const(milk_ctx *ctx)
{
    const int64_t n = 3000003;
    const uint64_t skip = 100; /* the range starts inside the file */
    char src[512], pkg[512];
    snprintf(src, sizeof src, "%s/src.bin", tmpdir);
    snprintf(pkg, sizeof pkg, "%s/file.mlpackage", tmpdir);
    FILE *fp = fopen(src, "wb");
    CHECK(fp != NULL);
    if (!fp) return;
    for (uint64_t i = 0; i < skip; i++) fputc(0x55, fp);
    for (int64_t i = 0; i < n; i++) {
        float x = (float)(i % 4) - 1.0f;
        fwrite(&x, sizeof x, 1, fp);
    }
    fclose(fp);

    milk_program *p;
    milk_block *b = new_main(ctx, &p, MILK_TARGET_IOS16);
    milk_tensor_type t = vec(MILK_DTYPE_FP16, n);
    CHECK_OK(ctx, milk_block_add_const_file(ctx, b, "big", &t, src, skip,
                                            MILK_DTYPE_FP32, NULL));
    finish_main(ctx, b);
    CHECK_OK(ctx, milk_program_save(ctx, p, pkg));
    milk_program_free(p);

    size_t len = 0;
    unsigned char *w = slurp(pkg_file(pkg, WEIGHTS), &len);
    CHECK_EQ_INT(len, 128 + 2 * n);
    if (w && len == (size_t)(128 + 2 * n)) {
        CHECK_EQ_INT(u32(w + 68), 1);
        CHECK_EQ_INT(u64(w + 72), 2 * n);
        static const uint16_t want[4] = {0xBC00, 0x0000, 0x3C00, 0x4000};
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(w[128 + 2 * i] | w[129 + 2 * i] << 8);
            bad += h != want[i % 4];
        }
        CHECK_EQ_INT(bad, 0);
    }
    free(w);
    unlink(src);
}

/* Saving over an existing package replaces it, leaving nothing else. */
static void test_replace(milk_ctx *ctx)
{
    char dir[300], pkg[512];
    snprintf(dir, sizeof dir, "%s/rep", tmpdir);
    snprintf(pkg, sizeof pkg, "%s/m.mlpackage", dir);
    mkdir(dir, 0777);
    for (int round = 0; round < 2; round++) {
        milk_program *p;
        milk_block *b = new_main(ctx, &p, MILK_TARGET_IOS17);
        float f[12] = {(float)round};
        milk_tensor_type t = vec(MILK_DTYPE_FP32, 12);
        CHECK_OK(ctx, milk_block_add_const(ctx, b, round ? "second" : "first", &t, f, NULL));
        finish_main(ctx, b);
        CHECK_OK(ctx, milk_program_save(ctx, p, pkg));
        milk_program_free(p);
    }
    milk_program *q;
    CHECK_OK(ctx, milk_program_load(ctx, pkg, &q));
    if (q) {
        milk_function *f = milk_program_function(q, "main");
        CHECK(milk_function_var(f, "second") != NULL);
        CHECK(milk_function_var(f, "first") == NULL);
        milk_program_free(q);
    }
    CHECK_EQ_INT(dir_entries(dir), 1); /* no .tmp-* or .old-* left */

    /* a file or an unrelated directory is never replaced */
    char other[512];
    snprintf(other, sizeof other, "%s/notes", dir);
    mkdir(other, 0777);
    FILE *fp = fopen(pkg_file(other, "keep.txt"), "w");
    if (fp) fclose(fp);
    milk_program *p;
    milk_block *b = new_main(ctx, &p, MILK_TARGET_IOS17);
    finish_main(ctx, b);
    CHECK(milk_program_save(ctx, p, other) == MILK_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "not a .mlpackage");
    milk_program_free(p);
    CHECK(access(pkg_file(other, "keep.txt"), F_OK) == 0);
}

/* A const whose backing file is missing: the save fails naming the file,
 * no temporary directory is left, and the destination is not created (or,
 * if it existed, left as it was). */
static void test_failed_save(milk_ctx *ctx)
{
    char dir[300], pkg[512], missing[512];
    snprintf(dir, sizeof dir, "%s/fail", tmpdir);
    snprintf(pkg, sizeof pkg, "%s/m.mlpackage", dir);
    snprintf(missing, sizeof missing, "%s/no-such-file.bin", tmpdir);
    mkdir(dir, 0777);
    milk_program *p;
    milk_block *b = new_main(ctx, &p, MILK_TARGET_IOS17);
    milk_tensor_type t = vec(MILK_DTYPE_FP32, 64);
    CHECK_OK(ctx, milk_block_add_const_file(ctx, b, "w", &t, missing, 0,
                                            MILK_DTYPE_FP32, NULL));
    finish_main(ctx, b);
    CHECK(milk_program_save(ctx, p, pkg) == MILK_ERR_IO);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "no-such-file.bin");
    CHECK_EQ_INT(dir_entries(dir), 0);

    /* an existing package at the destination survives the failure */
    milk_program *good;
    milk_block *gb = new_main(ctx, &good, MILK_TARGET_IOS17);
    finish_main(ctx, gb);
    CHECK_OK(ctx, milk_program_save(ctx, good, pkg));
    milk_program_free(good);
    size_t n1 = 0, n2 = 0;
    unsigned char *before = slurp(pkg_file(pkg, MODEL), &n1);
    CHECK(milk_program_save(ctx, p, pkg) == MILK_ERR_IO);
    unsigned char *after = slurp(pkg_file(pkg, MODEL), &n2);
    CHECK(before && after && n1 == n2 && memcmp(before, after, n1) == 0);
    CHECK_EQ_INT(dir_entries(dir), 1);
    free(before);
    free(after);
    milk_program_free(p);
}

/* milk_program_check on programs that break its rules. */
static void test_check(milk_ctx *ctx)
{
    milk_program *p;
    milk_block *b = new_main(ctx, &p, MILK_TARGET_IOS17);
    finish_main(ctx, b);
    CHECK_OK(ctx, milk_program_check(ctx, p));
    /* a declared output type that disagrees with inference */
    milk_var *y = milk_block_output(b, 0);
    y->type.dims[0] = 5;
    CHECK(milk_program_check(ctx, p) == MILK_ERR_TYPE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "function 'main': op 'y' (relu)");
    y->type.dims[0] = 4;
    /* an op that uses a var defined after it */
    milk_op *relu = milk_block_op(b, 0);
    milk_var *late;
    CHECK_OK(ctx, milk_block_add_const_fp32(ctx, b, "late", 1.0f, &late));
    milk_var *x = relu->args[0].b[0].var;
    relu->args[0].b[0].var = late;
    CHECK(milk_program_check(ctx, p) != MILK_OK);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "'late' is not defined before");
    relu->args[0].b[0].var = x;
    CHECK_OK(ctx, milk_program_check(ctx, p));
    milk_program_free(p);
}

/* ---- every dtype and value kind through save and load ---------------------- */

#define TV(x) CORE_ML__SPECIFICATION__MILSPEC__TENSOR_VALUE__VALUE_##x

/* Three elements of each dtype, packed as the IR keeps them, and the
 * TensorValue field docs/coreml-format.md 3.3 puts them in. Sub-byte
 * values are packed LSB first by hand: int4 {-8, 7, 1} -> 0x78 0x01; uint4
 * {15, 0, 9} -> 0x0F 0x09; uint2 {3, 0, 2} -> 0x23; uint1 {1, 0, 1} -> 0x05;
 * uint3 {7, 5, 1} -> 0x6F 0x00; uint6 {63, 1, 32} -> 0x7F 0x00 0x02. */
static const int8_t i8[] = {-128, 0, 127};
static const uint8_t u8[] = {0, 128, 255}, b1[] = {1, 0, 1};
static const uint16_t h16[] = {0x3C00, 0xC000, 0x7BFF}, u16[] = {0, 1, 65535};
static const int16_t i16[] = {-32768, 1, 32767};
static const int32_t i32[] = {INT32_MIN, 0, INT32_MAX};
static const uint32_t u32v[] = {0, 1, 4294967295u};
static const int64_t i64[] = {INT64_MIN, 0, INT64_MAX};
static const uint64_t u64v[] = {0, 1, UINT64_MAX};
static const float f32[] = {1.5f, -2.0f, 3.25f};
static const double f64[] = {0.1, -1e300, 2.0};
static const uint8_t p_i4[] = {0x78, 0x01}, p_u4[] = {0x0F, 0x09}, p_u2[] = {0x23},
                     p_u1[] = {0x05}, p_u3[] = {0x6F, 0x00}, p_u6[] = {0x7F, 0x00, 0x02};
static const char *const strs[] = {"a", "", "\xc3\xbc"};

static const struct dtype_case {
    const char *name;
    milk_dtype dtype;
    const void *data;
    size_t nbytes;
    int field;
} dtype_cases[] = {
    {"c_bool", MILK_DTYPE_BOOL, b1, 3, TV(BOOLS)},
    {"c_string", MILK_DTYPE_STRING, strs, 0, TV(STRINGS)},
    {"c_fp16", MILK_DTYPE_FP16, h16, 6, TV(BYTES)},
    {"c_fp32", MILK_DTYPE_FP32, f32, 12, TV(FLOATS)},
    {"c_fp64", MILK_DTYPE_FP64, f64, 24, TV(DOUBLES)},
    {"c_int8", MILK_DTYPE_INT8, i8, 3, TV(BYTES)},
    {"c_uint8", MILK_DTYPE_UINT8, u8, 3, TV(BYTES)},
    {"c_int16", MILK_DTYPE_INT16, i16, 6, TV(INTS)},
    {"c_uint16", MILK_DTYPE_UINT16, u16, 6, TV(INTS)},
    {"c_int32", MILK_DTYPE_INT32, i32, 12, TV(INTS)},
    {"c_uint32", MILK_DTYPE_UINT32, u32v, 12, TV(BYTES)},
    {"c_int64", MILK_DTYPE_INT64, i64, 24, TV(LONG_INTS)},
    {"c_uint64", MILK_DTYPE_UINT64, u64v, 24, TV(LONG_INTS)},
    {"c_int4", MILK_DTYPE_INT4, p_i4, 2, TV(BYTES)},
    {"c_uint4", MILK_DTYPE_UINT4, p_u4, 2, TV(BYTES)},
    {"c_uint2", MILK_DTYPE_UINT2, p_u2, 1, TV(BYTES)},
    {"c_uint1", MILK_DTYPE_UINT1, p_u1, 1, TV(BYTES)},
    {"c_uint3", MILK_DTYPE_UINT3, p_u3, 2, TV(BYTES)},
    {"c_uint6", MILK_DTYPE_UINT6, p_u6, 3, TV(BYTES)},
};

static milk_value *scalar(milk_program *p, milk_dtype d, const void *data)
{
    milk_tensor_type t = {d, 0, {0}};
    return milk_value_new_tensor(p->arena, &t, data);
}

/* attrs on the relu op: a tuple (int32 5, "s"), a list of two fp32[2]
 * and a dict {"k": 7}. */
static void add_composite_attrs(milk_ctx *ctx, milk_program *p, milk_op *op)
{
    int32_t five = 5, seven = 7;
    const char *s = "s", *k = "k";
    float two[2] = {1.0f, 2.0f};
    milk_tensor_type t2 = vec(MILK_DTYPE_FP32, 2);
    milk_value *tup = milk_arena_alloc(p->arena, sizeof *tup);
    milk_value *lst = milk_arena_alloc(p->arena, sizeof *lst);
    milk_value *dct = milk_arena_alloc(p->arena, sizeof *dct);
    milk_value **ti = milk_arena_alloc(p->arena, 2 * sizeof *ti);
    milk_value **li = milk_arena_alloc(p->arena, 2 * sizeof *li);
    milk_value **di = milk_arena_alloc(p->arena, 2 * sizeof *di);
    ti[0] = scalar(p, MILK_DTYPE_INT32, &five);
    ti[1] = scalar(p, MILK_DTYPE_STRING, &s);
    li[0] = li[1] = milk_value_new_tensor(p->arena, &t2, two);
    di[0] = scalar(p, MILK_DTYPE_STRING, &k);
    di[1] = scalar(p, MILK_DTYPE_INT32, &seven);
    *tup = (milk_value){.kind = MILK_VALUE_TUPLE, .n = 2, .items = ti};
    *lst = (milk_value){.kind = MILK_VALUE_LIST, .n = 2, .items = li, .elem = {t2}};
    *dct = (milk_value){.kind = MILK_VALUE_DICT, .n = 1, .items = di,
                        .elem = {ti[1]->type, ti[0]->type}};
    CHECK_OK(ctx, milk_attrs_set(ctx, p->arena, &op->attrs, "t", tup));
    CHECK_OK(ctx, milk_attrs_set(ctx, p->arena, &op->attrs, "l", lst));
    CHECK_OK(ctx, milk_attrs_set(ctx, p->arena, &op->attrs, "d", dct));
}

static void check_composite_attrs(milk_ctx *ctx, const milk_op *op)
{
    const milk_value *t = milk_attrs_get(&op->attrs, "t");
    const milk_value *l = milk_attrs_get(&op->attrs, "l");
    const milk_value *d = milk_attrs_get(&op->attrs, "d");
    int64_t x = 0;
    CHECK(t && t->kind == MILK_VALUE_TUPLE && t->n == 2);
    if (t && t->n == 2) {
        CHECK_OK(ctx, milk_value_get_i64(ctx, t->items[0], 0, &x));
        CHECK_EQ_INT(x, 5);
        CHECK(strcmp(milk_value_get_str(t->items[1], 0), "s") == 0);
    }
    CHECK(l && l->kind == MILK_VALUE_LIST && l->n == 2 && l->elem[0].dims[0] == 2);
    if (l && l->n == 2) {
        double f = 0;
        CHECK_OK(ctx, milk_value_get_f64(ctx, l->items[1], 1, &f));
        CHECK(f == 2.0);
    }
    CHECK(d && d->kind == MILK_VALUE_DICT && d->n == 1);
    if (d && d->n == 1) {
        CHECK(strcmp(milk_value_get_str(d->items[0], 0), "k") == 0);
        CHECK_OK(ctx, milk_value_get_i64(ctx, d->items[1], 0, &x));
        CHECK_EQ_INT(x, 7);
    }
}

static void check_dtype_fields(CoreML__Specification__Model *m)
{
    for (size_t i = 0; i < MILK_ARRAY_LEN(dtype_cases); i++) {
        const struct dtype_case *c = &dtype_cases[i];
        CoreML__Specification__MILSpec__Value *v = const_val(m, c->name);
        int field = v && v->value_case == CORE_ML__SPECIFICATION__MILSPEC__VALUE__VALUE_IMMEDIATE_VALUE
                        ? (int)v->immediatevalue->tensor->value_case : -1;
        if (field != c->field)
            fprintf(stderr, "%s: TensorValue field %d, expected %d\n", c->name, field, c->field);
        CHECK_EQ_INT(field, c->field);
        if (field != TV(BYTES)) continue;
        ProtobufCBinaryData *b = &v->immediatevalue->tensor->bytes->values;
        CHECK(b->len == c->nbytes && memcmp(b->data, c->data, c->nbytes) == 0);
    }
    /* spot checks of the widened forms */
    CoreML__Specification__MILSpec__Value *v = const_val(m, "c_uint16");
    if (v) CHECK(v->immediatevalue->tensor->ints->values[2] == 65535);
    v = const_val(m, "c_uint64");
    if (v) CHECK(v->immediatevalue->tensor->longints->values[2] == -1);
}

static void check_dtype_values(milk_ctx *ctx, const milk_function *f)
{
    for (size_t i = 0; i < MILK_ARRAY_LEN(dtype_cases); i++) {
        const struct dtype_case *c = &dtype_cases[i];
        const milk_value *v = milk_var_const(milk_function_var(f, c->name));
        CHECK(v && v->type.dtype == c->dtype && v->type.rank == 1 && v->type.dims[0] == 3);
        if (!v) continue;
        if (c->dtype == MILK_DTYPE_STRING) {
            for (int j = 0; j < 3; j++) CHECK(strcmp(milk_value_get_str(v, j), strs[j]) == 0);
            continue;
        }
        unsigned char buf[32] = {0};
        CHECK_OK(ctx, milk_value_read(ctx, v, buf));
        if (memcmp(buf, c->data, c->nbytes) != 0) fprintf(stderr, "%s: data differs\n", c->name);
        CHECK(memcmp(buf, c->data, c->nbytes) == 0);
    }
}

static void test_values(milk_ctx *ctx)
{
    milk_program *p;
    milk_block *b = new_main(ctx, &p, MILK_TARGET_IOS18);
    for (size_t i = 0; i < MILK_ARRAY_LEN(dtype_cases); i++) {
        milk_tensor_type t = vec(dtype_cases[i].dtype, 3);
        CHECK_OK(ctx, milk_block_add_const(ctx, b, dtype_cases[i].name, &t, dtype_cases[i].data, NULL));
    }
    /* uint3 x10 = 30 bits: a blob of 4 bytes with 2 padding bits; int32 x16
     * goes to the file from iOS18 on */
    uint8_t u3[4] = {0xFF, 0x0F, 0x00, 0x31};
    int32_t big[16] = {0};
    milk_tensor_type t10 = vec(MILK_DTYPE_UINT3, 10), t16 = vec(MILK_DTYPE_INT32, 16);
    CHECK_OK(ctx, milk_block_add_const(ctx, b, "u3_blob", &t10, u3, NULL));
    CHECK_OK(ctx, milk_block_add_const(ctx, b, "i32_blob", &t16, big, NULL));
    finish_main(ctx, b);
    add_composite_attrs(ctx, p, milk_block_op(b, b->n_ops - 1));
    char pkg[512];
    snprintf(pkg, sizeof pkg, "%s/values.mlpackage", tmpdir);
    CHECK_OK(ctx, milk_program_save(ctx, p, pkg));
    milk_program_free(p);

    CoreML__Specification__Model *m = load_model(pkg);
    CHECK(m != NULL);
    if (m) check_dtype_fields(m);
    CHECK_EQ_INT(blob_offset(m, "u3_blob"), 64);
    CHECK_EQ_INT(blob_offset(m, "i32_blob"), 192); /* round_up_64(128 + 4) */
    if (m) core_ml__specification__model__free_unpacked(m, NULL);
    size_t n = 0;
    unsigned char *w = slurp(pkg_file(pkg, WEIGHTS), &n);
    CHECK_EQ_INT(n, 192 + 64 + 64);
    if (w && n == 320) {
        CHECK_EQ_INT(u32(w + 68), 12);  /* UInt3 */
        CHECK_EQ_INT(u64(w + 72), 4);
        CHECK_EQ_INT(u64(w + 88), 2);   /* padding_size_in_bits */
        CHECK(memcmp(w + 128, u3, 4) == 0);
        CHECK_EQ_INT(u32(w + 196), 14); /* Int32 */
    }
    free(w);

    milk_program *q;
    CHECK_OK(ctx, milk_program_load(ctx, pkg, &q));
    if (!q) return;
    const milk_function *f = milk_program_function(q, "main");
    check_dtype_values(ctx, f);
    check_composite_attrs(ctx, milk_block_op(f->block, f->block->n_ops - 1));
    milk_program_free(q);
}

static void rm_rf(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", path);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/milk_test_blob_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    milk_ctx *ctx;
    if (milk_ctx_create(&ctx) != MILK_OK) return 1;
    test_worked_example(ctx);
    test_threshold(ctx);
    test_shared(ctx);
    test_file_const(ctx);
    test_replace(ctx);
    test_failed_save(ctx);
    test_check(ctx);
    test_values(ctx);
    milk_ctx_free(ctx);
    rm_rf(tmpdir);
    return check_report("test_blob");
}
