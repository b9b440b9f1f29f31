/* pool.c: a fixed set of worker threads that take the tasks of one
 * parallel loop at a time from a shared counter (see pool.h). Workers
 * sleep on a condition variable between loops; the machine milk runs on
 * may be shared, so nothing spins for long. */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct milk_pool {
    int n;                 /* threads, the caller included */
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    /* the current loop */
    milk_task_fn fn;
    void *arg;
    int64_t n_tasks;
    atomic_llong next;     /* next task to take */
    int busy;              /* workers still in the loop (under mu) */
    unsigned long gen;     /* loop number, so workers see each loop once */
    bool stop;
};

typedef struct worker_arg {
    milk_pool *p;
    int id;
} worker_arg;

static void take_tasks(milk_pool *p, int worker)
{
    for (;;) {
        int64_t t = atomic_fetch_add(&p->next, 1);
        if (t >= p->n_tasks) return;
        p->fn(p->arg, t, worker);
    }
}

static void *worker_main(void *a)
{
    worker_arg wa = *(worker_arg *)a;
    free(a);
    milk_pool *p = wa.p;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop) break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        take_tasks(p, wa.id);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

milk_pool *milk_pool_create(int n)
{
    if (n <= 1) return NULL;
    milk_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->workers = calloc((size_t)n, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->n = 1;
    for (int i = 1; i < n; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) break;
        *wa = (worker_arg){p, i};
        if (pthread_create(&p->workers[i], NULL, worker_main, wa) != 0) {
            free(wa);
            break;
        }
        p->n++;
    }
    if (p->n == 1) {
        milk_pool_free(p);
        return NULL;
    }
    return p;
}

void milk_pool_free(milk_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->workers[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->workers);
    free(p);
}

int milk_pool_threads(const milk_pool *p)
{
    return p ? p->n : 1;
}

void milk_pool_run(milk_pool *p, int64_t n, milk_task_fn fn, void *arg)
{
    if (n <= 0) return;
    if (!p || n == 1) {
        for (int64_t t = 0; t < n; t++) fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n;
    atomic_store(&p->next, 0);
    p->busy = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    take_tasks(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
