/* A small persistent thread pool: run one task on every thread and wait.
 * The caller is thread 0; workers spin briefly between tasks (a decode step dispatches
 * ~150 tasks, so waking through a condition variable each time would cost milliseconds),
 * then sleep on a condition variable when idle. A pool used in a fork()ed child starts new
 * workers there (the parent's do not exist in the child). */
#ifndef ER_POOL_H
#define ER_POOL_H

typedef void (*er_task_fn)(void *ctx, int ith, int nth);
typedef struct er_pool er_pool;

er_pool *er_pool_create(int n_threads);      /* NULL on failure */
int er_pool_size(const er_pool *p);
void er_pool_run(er_pool *p, er_task_fn fn, void *ctx);
void er_pool_destroy(er_pool *p);

#endif
