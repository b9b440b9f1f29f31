/*
 * passes.h: rewrite passes over a MIL program. Each pass leaves a program
 * that milk_program_check() accepts: every op it touches is re-typed by
 * type inference.
 */
#ifndef MILK_PASSES_H
#define MILK_PASSES_H

#include "../ir/ir.h"

/* Remove the ops of f's top-level block whose outputs nothing uses (no
 * later op, not a block output), and their names. */
milk_status milk_pass_dce(milk_ctx *ctx, milk_function *f);

/* Turn an fp32 program into an fp16 one as coremltools' default
 * (FP16ComputePrecision) does: fp32 consts become fp16 (file-backed ones
 * keep pointing at their fp32 data and are converted in chunks when
 * saved; inline ones are converted now, finite values beyond the fp16
 * range clamped to +-65504), and every op is re-typed in order with fp16
 * inputs; an op that refuses them keeps fp32 constants, or else runs in
 * fp32 with casts around it. Model inputs and outputs become fp16 from
 * iOS16 on; for iOS15 they stay fp32 with casts at the boundary, the
 * outputs keeping their names. Run milk_pass_dce afterwards: replaced
 * consts and unused casts are left in place. */
milk_status milk_pass_fp16(milk_ctx *ctx, milk_program *p);

/* As milk_pass_fp16, but the n_keep ops of keep (mixed precision) stay in
 * fp32: their float inputs are bound to fp32 (a cast of an fp16 value,
 * the fp32 data of a converted const) and their outputs stay fp32, cast
 * to fp16 for the fp16 ops reading them; a model output they compute
 * stays fp32. keep is borrowed for the call; ops not in p are ignored. */
milk_status milk_pass_fp16_mixed(milk_ctx *ctx, milk_program *p,
                                 milk_op *const *keep, int n_keep);

/* ---- the model's boundary (boundary.c) ---------------------------------- */

/* What a Core ML model input or output cannot be: each is a bit of
 * milk_io_change.kinds. */
enum {
    MILK_IO_INT64 = 1u << 0,  /* int64: becomes int32 (an input is retyped,
                                 an output cast) */
    MILK_IO_BOOL = 1u << 1,   /* bool: declared int32, cast inside */
    MILK_IO_SCALAR = 1u << 2, /* rank 0: declared [1], squeezed (input) or
                                 expanded (output) inside */
};

/* The MILK_IO_* bits of a model input or output of type t: what
 * milk_pass_io_boundary changes (0: nothing). */
unsigned milk_io_kinds(const milk_tensor_type *t);

/* One input or output milk_pass_io_boundary changed. */
typedef struct milk_io_change {
    bool output;            /* an output of the function, else an input */
    int index;              /* its position among the inputs or outputs */
    const char *name;       /* its name (the pass keeps it; arena) */
    unsigned kinds;         /* MILK_IO_* bits */
    milk_tensor_type was;   /* its type before the pass */
    milk_tensor_type now;   /* and after */
    /* An input: the var its readers read now (the squeeze or cast inside;
     * the input itself when only its dtype changed). An output: the var
     * that was the output, now read by the ops the pass added. */
    milk_var *inner;
} milk_io_change;

/* What milk_pass_io_boundary changed: the inputs in order, then the
 * outputs in order. Zero it before the call; `changes` is in the
 * program's arena (nothing to free). */
typedef struct milk_io_report {
    milk_io_change *changes;
    int n, cap;
} milk_io_report;

/* For callers that name the outputs themselves or complete what the pass
 * makes (the converter: folding, identity ops). Every field may be 0. */
typedef struct milk_io_params {
    /* The name output i is to have (one per output, borrowed for the
     * call); NULL: the name its var has when the pass starts. A helper
     * var holding such a name is renamed; when an input or another output
     * holds it, a fresh name is taken (milk_io_change.name says which). */
    const char *const *output_names;
    /* Called after each op (not const) the pass adds, with the change in
     * progress (output, index, name, kinds, was). The callee may replace
     * the op by a const keeping its output var (fold it): the pass reads
     * only that var afterwards. Output ops are appended to the function's
     * block, so each is its last op when this is called. */
    milk_status (*op_added)(void *user, const milk_io_change *ch, milk_op *op);
    /* Called once per output, in order, when the pass is done with it (ch
     * is its change, NULL if it needed none), before the next output's
     * ops: the callee may append ops for it and replace block output i. */
    milk_status (*output_done)(void *user, int i, const milk_io_change *ch);
    void *user;
} milk_io_params;

/* Rewrite function f's inputs and outputs of int64, bool or rank 0 as
 * Core ML model I/O can be, keeping their names (coremltools does the
 * same in adjust_io_to_supported_types, declaring bool as fp32; int32
 * holds 0 and 1 as exactly and is what a bool is fed as):
 * - an input is declared int32 (int64, bool) of shape [1] (rank 0); a
 *   squeeze and then a cast to bool give its readers what they read
 *   before; an int64 one is only retyped (MIL has no int64 at run time)
 *   and the ops of f's block re-inferred;
 * - an output gets a cast to int32 (bool, int64) and then an expand_dims
 *   to [1] (rank 0), appended to f's block; the last of them takes the
 *   output's name, and the var that was the output moves to a fresh name
 *   if it held it. (No MIL op computes int64, so only a const can be an
 *   int64 output; cast refuses it, MILK_ERR_TYPE naming the op.)
 * For main, the model description recorded with the program (if any)
 * follows the new types. params may be NULL; report (may be NULL) gets
 * one entry per input or output changed. On failure the function may be
 * left half rewritten: the caller discards the program or reports the
 * error. */
milk_status milk_pass_io_boundary(milk_ctx *ctx, milk_program *p, milk_function *f,
                                  const milk_io_params *params,
                                  milk_io_report *report);

#endif /* MILK_PASSES_H */
