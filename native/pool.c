#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Workers do not survive fork(): only the forking thread exists in the child. Each fork bumps
 * this counter in the child, and a pool whose workers predate it starts new ones on first use. */
static atomic_uint fork_count;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void on_fork_child(void) { atomic_fetch_add(&fork_count, 1); }
static void register_atfork(void) { pthread_atfork(NULL, NULL, on_fork_child); }

/* Waiting escalates: spin (a task follows within microseconds while a token is computed),
 * then yield the core (so an oversubscribed machine still makes progress), then sleep. */
#define SPIN_ITERS 4000
#define YIELD_ITERS 200

struct er_pool {
    int n;
    int started;                /* workers 1..started-1 are running */
    int serial;                 /* no workers (a restart after fork failed): run slices here */
    unsigned forks;             /* fork_count when the workers were started */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_uint generation;     /* bumped once per task */
    atomic_int pending;         /* workers still running the current task */
    atomic_int sleeping;
    atomic_int stop;
    er_task_fn fn;
    void *ctx;
};

typedef struct { er_pool *p; int ith; } worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

static void *worker(void *arg) {
    er_pool *p = ((worker_arg *)arg)->p;
    int ith = ((worker_arg *)arg)->ith;
    free(arg);
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->generation, memory_order_acquire) == seen) {
            if (atomic_load(&p->stop)) return NULL;
            if (++spins < SPIN_ITERS) { cpu_relax(); continue; }
            if (spins < SPIN_ITERS + YIELD_ITERS) { sched_yield(); continue; }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleeping, 1);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleeping, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = atomic_load(&p->generation);
        p->fn(p->ctx, ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

/* Stop and join the running workers (threads of this process only). */
static void stop_workers(er_pool *p) {
    atomic_store(&p->stop, 1);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->started; i++) pthread_join(p->threads[i], NULL);
    p->started = 1;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
}

/* Start workers 1..n-1 over fresh synchronization state; on failure none is left running. */
static int start_workers(er_pool *p) {
    p->forks = atomic_load(&fork_count);
    p->started = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    atomic_store(&p->generation, 0);
    atomic_store(&p->pending, 0);
    atomic_store(&p->sleeping, 0);
    atomic_store(&p->stop, 0);
    for (int i = 1; i < p->n; i++, p->started++) {
        worker_arg *a = malloc(sizeof *a);
        if (!a) break;
        a->p = p; a->ith = i;
        if (pthread_create(&p->threads[i], NULL, worker, a) != 0) { free(a); break; }
    }
    if (p->started == p->n) return 0;
    stop_workers(p);
    return -1;
}

er_pool *er_pool_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    pthread_once(&atfork_once, register_atfork);
    er_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads;
    p->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    if (!p->threads || start_workers(p) < 0) { free(p->threads); free(p); return NULL; }
    return p;
}

int er_pool_size(const er_pool *p) { return p->n; }

void er_pool_run(er_pool *p, er_task_fn fn, void *ctx) {
    if (p->n == 1) { fn(ctx, 0, 1); return; }
    if (p->forks != atomic_load(&fork_count) && !p->serial)
        p->serial = start_workers(p) < 0;   /* a forked child: the old workers are gone */
    if (p->serial) {   /* the same slices, one after another: the same results */
        for (int i = 0; i < p->n; i++) fn(ctx, i, p->n);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add(&p->generation, 1);   /* seq_cst: pairs with the sleeping check */
    if (atomic_load(&p->sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);
    for (int spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; spins++) {
        if (spins < SPIN_ITERS) cpu_relax();
        else sched_yield();
    }
}

void er_pool_destroy(er_pool *p) {
    if (!p) return;
    /* In a forked child that never ran a task, the workers (and maybe a holder of the mutex)
     * exist only in the parent: nothing to join. */
    if (p->forks == atomic_load(&fork_count) && !p->serial) stop_workers(p);
    free(p->threads);
    free(p);
}
