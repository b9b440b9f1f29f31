/* test_npy.c: .npy and .npz reading and writing: a header spelled out byte
 * by byte (pinning the format independently of numpy), the dict parser's
 * freedoms and refusals, round trips of every dtype through files, and
 * .npz archives. */
#include "milk.h"
#include "check.h"
#include "util/npy.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char buf[8][128];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

/* numpy's np.save(f, np.array([1, -2], dtype='<i4')) as of numpy 1.24,
 * spelled out: magic, version 1.0, header length 118 (0x76) little-endian,
 * the dict, 60 spaces and '\n' (10 + 57 + 60 + 1 = 128, a multiple of 64),
 * then 1 and -2 as little-endian int32. milk writes the same bytes. */
static const char i4_file[] =
    "\x93NUMPY\x01\x00\x76\x00"
    "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }"
    "          " "          " "          " "          " "          "
    "          " /* 60 spaces */
    "\n"
    "\x01\x00\x00\x00" "\xfe\xff\xff\xff";
#define I4_FILE_LEN (sizeof i4_file - 1)

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = malloc(4096);
    *len = buf ? fread(buf, 1, 4096, f) : 0;
    fclose(f);
    return buf;
}

static void test_spelled_out(milk_ctx *ctx)
{
    milk_array a;
    CHECK_EQ_INT(I4_FILE_LEN, 136);
    CHECK_OK(ctx, milk_npy_parse(ctx, "i4.npy", i4_file, I4_FILE_LEN, &a));
    CHECK_EQ_INT(a.type.dtype, MILK_DTYPE_INT32);
    CHECK_EQ_INT(a.type.rank, 1);
    CHECK_EQ_INT(a.type.dims[0], 2);
    if (a.data) {
        CHECK_EQ_INT(((int32_t *)a.data)[0], 1);
        CHECK_EQ_INT(((int32_t *)a.data)[1], -2);
    }
    /* Written back: byte for byte the same file. */
    const char *path = tmp_path("i4.npy");
    CHECK_OK(ctx, milk_npy_write(ctx, path, &a));
    size_t len = 0;
    unsigned char *got = read_all(path, &len);
    CHECK(got != NULL);
    CHECK_EQ_INT(len, I4_FILE_LEN);
    CHECK(got && len == I4_FILE_LEN && memcmp(got, i4_file, len) == 0);
    free(got);
    milk_array_release(&a);
    CHECK(a.data == NULL);
}

/* A .npy image: magic, version major.0, the header length in 2 (v1) or 4
 * bytes little-endian, the dict as given (no padding), then the data. */
static size_t make_npy(unsigned char *out, int major, const char *dict,
                       const void *data, size_t ndata)
{
    size_t hl = strlen(dict), k = 0;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (unsigned char)major;
    out[7] = 0;
    k = 8;
    for (int i = 0; i < (major == 1 ? 2 : 4); i++) out[k++] = (unsigned char)(hl >> (8 * i));
    memcpy(out + k, dict, hl);
    k += hl;
    if (ndata) memcpy(out + k, data, ndata);
    return k + ndata;
}

static void test_header_freedoms(milk_ctx *ctx)
{
    unsigned char buf[512];
    milk_array a;
    /* Version 2.0: keys reordered, double quotes, newlines, trailing comma
     * in the tuple, none after the last entry. fp16 1, -2, 65504, 0.5, inf,
     * -0 as IEEE half bits. */
    const uint16_t h[6] = {0x3c00, 0xc000, 0x7bff, 0x3800, 0x7c00, 0x8000};
    size_t n = make_npy(buf, 2, "{\"shape\" :\n (2, 3,),\t\"fortran_order\""
                        ":False,\"descr\":\"<f2\"}", h, sizeof h);
    CHECK_OK(ctx, milk_npy_parse(ctx, "v2.npy", buf, n, &a));
    CHECK_EQ_INT(a.type.dtype, MILK_DTYPE_FP16);
    CHECK_EQ_INT(a.type.rank, 2);
    CHECK_EQ_INT(a.type.dims[0], 2);
    CHECK_EQ_INT(a.type.dims[1], 3);
    CHECK(a.data && memcmp(a.data, h, sizeof h) == 0);
    milk_array_release(&a);

    /* Version 3.0, a scalar bool: byte 5 reads as True, stored as 1. */
    n = make_npy(buf, 3, "{'descr': '|b1', 'fortran_order': False, "
                 "'shape': (), }  \n", "\x05", 1);
    CHECK_OK(ctx, milk_npy_parse(ctx, "v3.npy", buf, n, &a));
    CHECK_EQ_INT(a.type.dtype, MILK_DTYPE_BOOL);
    CHECK_EQ_INT(a.type.rank, 0);
    CHECK(a.data && ((unsigned char *)a.data)[0] == 1);
    milk_array_release(&a);

    /* Zero elements: no data bytes, data still allocated. Python 2's 'L'
     * suffix; '<u1' as other writers spell numpy's '|u1'. */
    n = make_npy(buf, 1, "{'descr':'<u1','fortran_order':False,"
                 "'shape':(0L, 3L)}", NULL, 0);
    CHECK_OK(ctx, milk_npy_parse(ctx, "empty.npy", buf, n, &a));
    CHECK_EQ_INT(a.type.dtype, MILK_DTYPE_UINT8);
    CHECK_EQ_INT(a.type.rank, 2);
    CHECK_EQ_INT(a.type.dims[0], 0);
    CHECK(a.data != NULL);
    milk_array_release(&a);
}

typedef struct bad_case {
    int major;
    const char *dict;
    size_t ndata;
    milk_status status;
    const char *msg;
} bad_case;

static const bad_case bad_headers[] = {
    {4, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4,
     MILK_ERR_UNSUPPORTED, "version 4.0"},
    {1, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", 4,
     MILK_ERR_UNSUPPORTED, "field 'descr': big-endian dtype '>f4'"},
    {1, "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", 8,
     MILK_ERR_UNSUPPORTED, "field 'descr': object arrays"},
    {1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", 8,
     MILK_ERR_UNSUPPORTED, "dtype '<c8' is not supported"},
    {1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
     4, MILK_ERR_UNSUPPORTED, "structured dtypes"},
    {1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16,
     MILK_ERR_UNSUPPORTED, "field 'fortran_order': Fortran-ordered"},
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3), }", 12,
     MILK_ERR_PARSE, "(n) is not a tuple"},
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': [3], }", 12,
     MILK_ERR_PARSE, "field 'shape': expected a tuple"},
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 4,
     MILK_ERR_PARSE, "expected a non-negative integer"},
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (03,), }", 12,
     MILK_ERR_PARSE, "leading zero"},
    {1, "{'descr': '<f4', 'fortran_order': False, "
        "'shape': (9223372036854775808,), }", 4,
     MILK_ERR_PARSE, "dimension 9223372036854775808 overflows int64"},
    {1, "{'descr': '<f4', 'fortran_order': False, "
        "'shape': (4294967296, 4294967296, 4294967296), }", 4,
     MILK_ERR_UNSUPPORTED, "more elements than milk supports (2^40)"},
    {1, "{'descr': '<f4', 'fortran_order': False, "
        "'shape': (1048576, 1048576, 2), }", 4,
     MILK_ERR_UNSUPPORTED, "more elements than milk supports (2^40)"},
    /* a zero dim does not hide huge ones (their partial products would
     * overflow in the kernels) */
    {1, "{'descr': '<f4', 'fortran_order': False, "
        "'shape': (0, 4294967296, 4294967296), }", 4,
     MILK_ERR_UNSUPPORTED, "more elements than milk supports (2^40)"},
    {1, "{'descr': '<f4', 'fortran_order': False, "
        "'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }", 4,
     MILK_ERR_UNSUPPORTED, "rank 9"},
    {1, "{'descr': '<f4', 'fortran_order': False}", 4,
     MILK_ERR_PARSE, "missing key 'shape'"},
    {1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
        "'shape': (), }", 4, MILK_ERR_PARSE, "duplicate key 'descr'"},
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}", 4,
     MILK_ERR_PARSE, "unexpected key 'x'"},
    {1, "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (), }", 4,
     MILK_ERR_PARSE, "expected True or False"},
    {1, "{'descr' '<f4', 'fortran_order': False, 'shape': (), }", 4,
     MILK_ERR_PARSE, "expected ':' after 'descr'"},
    {1, "{'descr': '<f4", 4, MILK_ERR_PARSE, "unterminated string"},
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), } x", 4,
     MILK_ERR_PARSE, "unexpected text after the dict"},
    {1, "{'descr': '<f4' 'fortran_order': False, 'shape': (), }", 4,
     MILK_ERR_PARSE, "expected ',' or '}'"},
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), ", 4,
     MILK_ERR_PARSE, "expected a quoted string"},
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 4,
     MILK_ERR_PARSE, "truncated: shape (2,) of <f4 needs 8 bytes of data, "
                     "the file has 4"},
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 5,
     MILK_ERR_PARSE, "trailing bytes"},
};

static void test_bad_headers(milk_ctx *ctx)
{
    static const unsigned char zeros[64];
    unsigned char buf[512];
    for (size_t i = 0; i < MILK_ARRAY_LEN(bad_headers); i++) {
        const bad_case *b = &bad_headers[i];
        size_t n = make_npy(buf, b->major, b->dict, zeros, b->ndata);
        milk_array a = {{0}, (void *)1};
        milk_status s = milk_npy_parse(ctx, "bad.npy", buf, n, &a);
        if (s != b->status)
            fprintf(stderr, "case %zu: %s\n", i, milk_ctx_error(ctx));
        CHECK_EQ_INT(s, b->status);
        CHECK_STR_CONTAINS(milk_ctx_error(ctx), "bad.npy: ");
        CHECK_STR_CONTAINS(milk_ctx_error(ctx), b->msg);
        CHECK(a.data == NULL); /* left empty on failure */
    }
}

/* Damage to the prelude of the spelled-out file. */
static void test_bad_prelude(milk_ctx *ctx)
{
    unsigned char buf[I4_FILE_LEN];
    milk_array a;
    memcpy(buf, i4_file, sizeof buf);
    buf[5] = 'Z'; /* \x93NUMPZ */
    CHECK_EQ_INT(milk_npy_parse(ctx, "m.npy", buf, sizeof buf, &a), MILK_ERR_PARSE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "m.npy: not a .npy file (bad magic)");
    CHECK_EQ_INT(milk_npy_parse(ctx, "m.npy", i4_file, 3, &a), MILK_ERR_PARSE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "bad magic");
    CHECK_EQ_INT(milk_npy_parse(ctx, "m.npy", i4_file, 9, &a), MILK_ERR_PARSE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "ends inside the header");
    /* header length 0xff76 runs past the 136 bytes */
    memcpy(buf, i4_file, sizeof buf);
    buf[9] = 0xff;
    CHECK_EQ_INT(milk_npy_parse(ctx, "m.npy", buf, sizeof buf, &a), MILK_ERR_PARSE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "header length 65398 runs past the end");
    /* cut in the middle of the header dict */
    CHECK_EQ_INT(milk_npy_parse(ctx, "m.npy", i4_file, 40, &a), MILK_ERR_PARSE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "runs past the end");
    /* cut in the middle of the data */
    CHECK_EQ_INT(milk_npy_parse(ctx, "m.npy", i4_file, I4_FILE_LEN - 1, &a),
                 MILK_ERR_PARSE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "m.npy: truncated");
}

static milk_tensor_type tt(milk_dtype d, int rank, const int64_t *dims)
{
    milk_tensor_type t = {d, rank, {0}};
    for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
    return t;
}

/* Fill with a byte pattern that is a valid value in every dtype (bools 0/1). */
static void fill(milk_array *a, uint64_t nbytes, unsigned seed)
{
    unsigned char *p = a->data;
    for (uint64_t i = 0; i < nbytes; i++)
        p[i] = a->type.dtype == MILK_DTYPE_BOOL ? (i * 7 + seed) % 3 == 0
                                                : (unsigned char)(i * 31 + seed);
}

static void test_round_trips(milk_ctx *ctx)
{
    static const milk_dtype dts[] = {
        MILK_DTYPE_FP16, MILK_DTYPE_FP32, MILK_DTYPE_FP64, MILK_DTYPE_INT8,
        MILK_DTYPE_INT32, MILK_DTYPE_INT64, MILK_DTYPE_UINT8, MILK_DTYPE_BOOL};
    static const int64_t dims[] = {2, 3, 1, 4, 2};
    const char *path = tmp_path("rt.npy");
    for (size_t d = 0; d < MILK_ARRAY_LEN(dts); d++) {
        for (int rank = 0; rank <= 5; rank++) {
            milk_tensor_type t = tt(dts[d], rank, dims);
            milk_array a, b;
            uint64_t nbytes;
            CHECK_OK(ctx, milk_array_init(ctx, &t, &a));
            CHECK(milk_dtype_nbytes(t.dtype, milk_tensor_type_count(&t), &nbytes));
            fill(&a, nbytes, (unsigned)(d * 8 + rank));
            CHECK_OK(ctx, milk_npy_write(ctx, path, &a));
            CHECK_OK(ctx, milk_npy_read(ctx, path, &b));
            CHECK(memcmp(&a.type, &b.type, sizeof a.type) == 0);
            CHECK(b.data && memcmp(a.data, b.data, nbytes) == 0);
            milk_array_release(&a);
            milk_array_release(&b);
        }
    }
    unlink(path);
}

static void test_write_errors(milk_ctx *ctx)
{
    milk_tensor_type t = tt(MILK_DTYPE_INT16, 1, (int64_t[]){2});
    milk_array a;
    CHECK_OK(ctx, milk_array_init(ctx, &t, &a));
    CHECK_EQ_INT(milk_npy_write(ctx, tmp_path("i2.npy"), &a), MILK_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "i2.npy: dtype int16 cannot be written");
    milk_array_release(&a);
    t = tt(MILK_DTYPE_STRING, 1, (int64_t[]){2});
    CHECK_EQ_INT(milk_array_init(ctx, &t, &a), MILK_ERR_INVALID_ARG);
    /* A directory that does not exist: an error, and nothing left behind. */
    t = tt(MILK_DTYPE_FP32, 1, (int64_t[]){2});
    CHECK_OK(ctx, milk_array_init(ctx, &t, &a));
    CHECK_EQ_INT(milk_npy_write(ctx, tmp_path("no/x.npy"), &a), MILK_ERR_IO);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "no/x.npy: cannot create");
    milk_array_release(&a);
    CHECK_EQ_INT(milk_npy_read(ctx, tmp_path("none.npy"), &a), MILK_ERR_IO);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "none.npy: cannot open");
    CHECK(a.data == NULL);
}

static void test_npz(milk_ctx *ctx)
{
    milk_array in[3];
    const char *names[3] = {"x", "logits", "mask"};
    milk_tensor_type ts[3] = {tt(MILK_DTYPE_FP32, 2, (int64_t[]){2, 3}),
                              tt(MILK_DTYPE_INT64, 0, NULL),
                              tt(MILK_DTYPE_BOOL, 1, (int64_t[]){0})};
    for (int i = 0; i < 3; i++) {
        uint64_t nb;
        CHECK_OK(ctx, milk_array_init(ctx, &ts[i], &in[i]));
        CHECK(milk_dtype_nbytes(ts[i].dtype, milk_tensor_type_count(&ts[i]), &nb));
        fill(&in[i], nb, (unsigned)i);
    }
    const char *path = tmp_path("a.npz");
    CHECK_OK(ctx, milk_npz_write(ctx, path, names, in, 3));
    milk_npz z;
    CHECK_OK(ctx, milk_npz_read(ctx, path, &z));
    CHECK_EQ_INT(z.n, 3);
    for (int i = 0; i < 3 && z.n == 3; i++) {
        CHECK(strcmp(z.members[i].name, names[i]) == 0);
        const milk_array *a = milk_npz_find(&z, names[i]);
        CHECK(a == &z.members[i].array);
        CHECK(a && memcmp(&a->type, &ts[i], sizeof ts[i]) == 0);
    }
    const milk_array *x = milk_npz_find(&z, "x");
    CHECK(x && memcmp(x->data, in[0].data, 24) == 0);
    CHECK(milk_npz_find(&z, "y") == NULL);
    CHECK(milk_npz_find(&z, "x.npy") == NULL);
    milk_npz_release(&z);
    CHECK(z.n == 0 && z.members == NULL);

    /* Duplicate names are refused; the archive already there survives. */
    const char *dup[2] = {"x", "x"};
    CHECK_EQ_INT(milk_npz_write(ctx, path, dup, in, 2), MILK_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "two arrays named 'x'");
    CHECK_OK(ctx, milk_npz_read(ctx, path, &z));
    CHECK_EQ_INT(z.n, 3);
    milk_npz_release(&z);

    /* No arrays: an empty archive, which reads back empty. */
    CHECK_OK(ctx, milk_npz_write(ctx, path, NULL, NULL, 0));
    CHECK_OK(ctx, milk_npz_read(ctx, path, &z));
    CHECK_EQ_INT(z.n, 0);
    milk_npz_release(&z);
    unlink(path);
    for (int i = 0; i < 3; i++) milk_array_release(&in[i]);

    /* A .npy file is not a zip archive. */
    CHECK_EQ_INT(milk_npz_read(ctx, tmp_path("i4.npy"), &z), MILK_ERR_PARSE);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "i4.npy: not a readable .npz");
    CHECK_EQ_INT(milk_npz_read(ctx, tmp_path("none.npz"), &z), MILK_ERR_IO);
    CHECK_STR_CONTAINS(milk_ctx_error(ctx), "none.npz: ");
}

int main(void)
{
    milk_ctx *ctx;
    if (milk_ctx_create(&ctx) != MILK_OK) return 1;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/milk-npy-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_spelled_out(ctx);
    test_header_freedoms(ctx);
    test_bad_headers(ctx);
    test_bad_prelude(ctx);
    test_round_trips(ctx);
    test_write_errors(ctx);
    test_npz(ctx);
    unlink(tmp_path("i4.npy"));
    CHECK(rmdir(tmpdir) == 0); /* fails if anything (a temp file) is left */
    milk_ctx_free(ctx);
    return check_report("test_npy");
}
