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

#endif /* MILK_PASSES_H */
