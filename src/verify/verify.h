/*
 * verify.h: what the files of src/verify share: the result of a
 * comparison (struct milk_verify), tensor metrics, model inputs gathered
 * from files or made up, and the run helpers. The public side is the
 * "Verifying and extracting" section of milk.h.
 */
#ifndef MILK_VERIFY_H
#define MILK_VERIFY_H

#include "../ops/op.h"
#include "../util/npy.h"

#include <stdio.h>

/* An op whose run produced fp16 overflows, infs or NaNs. */
typedef struct vf_flag {
    const char *op, *op_type;
    int op_index; /* position among main's non-const ops */
    int64_t n_overflow, n_inf, n_nan;
} vf_flag;

/* A var of the program under test compared with a reference var of
 * another name: by position among the outputs, or as params.pairs say. */
typedef struct vf_pairing {
    const char *var, *ref;
    const char *how; /* "position" or "pair" */
} vf_pairing;

struct milk_verify {
    milk_arena *arena;     /* every string and array below */
    bool two_programs;
    const char *label, *ref_label;
    milk_precision precision;
    unsigned flags;        /* MILK_VERIFY_SET_* as given */
    double atol, rtol;
    int n_tols;
    milk_verify_tolerance *tols; /* per-var tolerances (names in the arena) */
    milk_verify_stat stat;
    bool stopped;          /* fail fast: comparing stopped at a mismatch */
    const char *extract_command; /* NULL: the default (report_html.c) */
    const char *save_inputs;
    bool random;           /* some input was random */
    uint64_t seed;
    int n_rows, cap_rows;
    milk_verify_row *rows;
    int *row_var;          /* var id of each row (program under test) */
    bool *row_match;       /* within tolerance */
    int first;             /* row of the first divergence, -1 if none */
    int n_suspects;
    const char **suspects; /* "name (type)" of unchecked ops feeding it */
    int n_ops;             /* non-const ops of main (the chart's x axis) */
    int n_unchecked;       /* op outputs without reference value */
    int n_flags, cap_flags;
    vf_flag *flags_list;
    int n_unmatched, cap_unmatched;
    const char **unmatched; /* reference tensors that match no var */
    int n_paired, cap_paired;
    vf_pairing *paired;    /* vars compared with a var of another name */
};

/* ---- tensors (metrics.c) ------------------------------------------------ */

/* Error statistics of got against want (n elements). */
typedef struct vf_metrics {
    double max_abs;  /* +inf if a non-finite value disagrees */
    double max_want; /* largest finite |want| */
    double max_rel, snr_db, psnr_db;
    double mean_abs, median_abs;
    int64_t n_beyond; /* elements beyond atol + rtol * |want| */
} vf_metrics;

milk_status vf_compare(milk_ctx *ctx, const float *got, const float *want, int64_t n,
                       double atol, double rtol, vf_metrics *m);
/* Does the statistic checked lie within the tolerance (milk.h, at
 * milk_verify_stat)? */
bool vf_within(const vf_metrics *m, milk_verify_stat stat, double atol, double rtol);
/* The tolerance for a var: its own (params.tolerances), else the values
 * given, else the defaults for fp16 or fp32 values. var may be NULL. */
void vf_tolerance(const milk_verify *v, bool fp16, const char *var, double *atol,
                  double *rtol);
/* Same shape, or the same once dims of size 1 are dropped. */
bool vf_same_shape(const milk_tensor_type *a, const milk_tensor_type *b);
/* The elements of a as fp32 (malloc'd, at least one element). */
milk_status vf_array_f32(milk_ctx *ctx, const char *what, const milk_array *a,
                         float **out);
/* The kept value of var `name` as fp32 (malloc'd). */
milk_status vf_runner_f32(milk_ctx *ctx, const milk_runner *r,
                          const char *name, float **out);
/* Length of the valid UTF-8 sequence at s (lead byte >= 0x80), 0 if
 * invalid (overlong, surrogate, beyond U+10FFFF, cut short). */
int vf_utf8_len(const unsigned char *s);
/* A copy of s in a whose invalid UTF-8 bytes are '?' (file names may
 * hold anything; JSON and XML must be UTF-8). NULL if out of memory. */
char *vf_utf8_clean(milk_arena *a, const char *s);
/* "[1,8,1280]" into buf. */
void vf_shape_str(const milk_tensor_type *t, char *buf, size_t n);

/* ---- model inputs (inputs.c) -------------------------------------------- */

typedef struct vf_input {
    const char *name;        /* the function's input name */
    const char *from;        /* the file, or "random", for messages */
    const milk_array *use;   /* the values: own, or borrowed from an npz */
    milk_array own;
} vf_input;

typedef struct vf_inputs {
    int n;
    vf_input *items;         /* one per input of the function, in order */
} vf_inputs;

/* Values for every input of fn: a --input override, else the tensor of
 * that name in ref (may be NULL; ref_label names it), else, when rng is
 * true, seeded random values (v->random and v->seed are set). */
milk_status vf_inputs_gather(milk_ctx *ctx, const milk_function *fn,
                             const milk_npz *ref, const char *ref_label,
                             const milk_verify_params *p, bool rng,
                             milk_verify *v, vf_inputs *out);
milk_status vf_inputs_set(milk_ctx *ctx, const vf_inputs *in, milk_runner *r,
                          const milk_function *fn);
void vf_inputs_release(vf_inputs *in);

/* ---- running (verify.c) ------------------------------------------------- */

/* Create a runner for the function params->function of p (NULL: its
 * default function) that keeps every value (or, when keep_all
 * is false, the n_keep vars named in keep), set its inputs and run it.
 * Progress and errors are reported under `stage` (the program's label). */
milk_status vf_run(milk_ctx *ctx, const milk_program *p, const vf_inputs *in,
                   const milk_verify_params *params, const char *stage,
                   bool keep_all, const char *const *keep, int n_keep,
                   milk_runner **out);
/* As vf_run, running with the states of `state` (NULL: the runner's own,
 * zero) for the steps of a multi-step verification. */
milk_status vf_run_state(milk_ctx *ctx, const milk_program *p,
                         const vf_inputs *in, const milk_verify_params *params,
                         const char *stage, bool keep_all,
                         const char *const *keep, int n_keep,
                         milk_state *state, milk_runner **out);

/* A new, empty result for params (vf_verify_archive and
 * vf_verify_precisions fill it). */
milk_status vf_verify_new(milk_ctx *ctx, const milk_verify_params *params, bool two,
                          milk_verify **out);
/* Run p on `in` and compare every var that has a tensor of its name in z
 * (milk_verify_reference without reading files). */
milk_status vf_verify_archive(milk_ctx *ctx, const milk_program *p, const vf_inputs *in,
                              const milk_npz *z, const milk_verify_params *params,
                              milk_verify *v);
/* Run p on `in` in fp32 (the reference) and as declared (under test), and
 * compare every var: what fp16 storage changes. */
milk_status vf_verify_precisions(milk_ctx *ctx, const milk_program *p, const vf_inputs *in,
                                 const milk_verify_params *params, milk_verify *v);

/* ---- extraction (variant.c, capture.c) ------------------------------------ */

/* A new program (main) holding the ops of fn (a function of p) whose
 * block index i has take[i] (never consts or constexpr ops, which go with
 * the ops reading them, nor ops with nested blocks), as
 * milk_program_extract builds it: values read from outside become model
 * inputs of the same names, consts are copied; the model outputs are the
 * outputs of taken ops that no taken op reads, and those that are outputs
 * of fn. description (may be NULL) becomes its shortDescription. */
milk_status vf_extract_set(milk_ctx *ctx, const milk_program *p, const milk_function *fn,
                           const bool *take, const char *description, milk_program **out);

/* Apply a variant to every op of f it fits; an error if none fits. */
milk_status vf_variant_apply(milk_ctx *ctx, milk_function *f,
                             milk_extract_variant variant);

/* ---- reports (report_text.c, report_html.c) ------------------------------ */

const char *vf_state_name(milk_verify_state s);
/* "fp32 atol 1e-06 rtol 0.0001, fp16 atol ... " or "atol A rtol R". */
void vf_tolerance_str(const milk_verify *v, char *buf, size_t n);

#endif /* MILK_VERIFY_H */
