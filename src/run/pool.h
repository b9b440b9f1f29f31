/*
 * pool.h: the planned interpreter's thread pool. milk_pool_run() runs
 * tasks 0..n-1 of a parallel loop on the pool's threads (the caller being
 * one of them) and returns when all are done. Kernels split their work
 * into tasks by output channels or rows, fixed by the shapes alone, so
 * that every output element is computed by the same code in the same order
 * whatever the number of threads: results are the same for every count.
 */
#ifndef MILK_RUN_POOL_H
#define MILK_RUN_POOL_H

#include <stdint.h>

typedef struct milk_pool milk_pool;

/* A pool of n threads in all (n - 1 workers besides the caller); NULL if
 * threads cannot be made (n <= 1 needs no pool: pass NULL around). */
milk_pool *milk_pool_create(int n);
void milk_pool_free(milk_pool *p);
/* Threads of p (1 for NULL). */
int milk_pool_threads(const milk_pool *p);

/* fn(arg, task, worker) for every task in [0, n), worker in [0, threads)
 * naming the thread that runs it (for per-thread scratch and statistics).
 * Runs inline when p is NULL or n is 1. */
typedef void (*milk_task_fn)(void *arg, int64_t task, int worker);
void milk_pool_run(milk_pool *p, int64_t n, milk_task_fn fn, void *arg);

#endif /* MILK_RUN_POOL_H */
