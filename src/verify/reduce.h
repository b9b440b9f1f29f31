/*
 * reduce.h: what the files of `milk debug reduce` share (reduce.c: the
 * search and the checks; reduce_out.c: the text, the JSON log and the
 * files written). The public side is the "Reducing a failing program"
 * section of milk.h.
 */
#ifndef MILK_REDUCE_H
#define MILK_REDUCE_H

#include "verify.h"

/* A model input of the result, and where its value came from. */
typedef struct rd_input {
    const char *name;
    const char *origin;  /* "model input", "cut: output of op 'x' (conv)" */
    const char *source;  /* "the reference", "the run of the whole program" */
} rd_input;

struct milk_reduce {
    milk_arena *arena;       /* every string below */
    milk_program *best;      /* the smallest failing program */
    const char *label;       /* the program reduced */
    const char *check;       /* the check, in words */
    int n_ops;               /* ops of the whole program */
    int n_steps, cap_steps;
    milk_reduce_step *steps;
    int n_inputs;
    rd_input *inputs;
    const char **kept;       /* "name (type)" of the ops of best, in order */
    int n_kept;
    const char *failure;     /* the detail of best's verdict */
    /* What BASE.npz holds: n_values arrays, by name (arrays owned). */
    int n_values;
    const char **value_names;
    milk_array *values;
};

#endif /* MILK_REDUCE_H */
