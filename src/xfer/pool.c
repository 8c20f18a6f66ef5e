/*
 * pool.c - the worker threads of a run (xfer.h): started, waited for and
 * joined by the main thread.
 */
#include "log.h"
#include "xfer_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int xfer_pool_start(struct xfer *x, struct xfer_pool *pool, int n)
{
	pool->w = xcalloc((size_t)n, sizeof *pool->w);
	pool->started = 0;
	for (int i = 0; i < n; i++) {
		pool->w[i].x = x;
		pool->w[i].index = i;
		if (pthread_create(&pool->w[i].thread, NULL, xfer_worker_main, &pool->w[i]) != 0) {
			log_error(NULL, "cannot start worker thread %d: %s", i, strerror(errno));
			break;
		}
		pool->started++;
	}
	return pool->started;
}

bool xfer_pool_wait(struct xfer *x, struct xfer_pool *pool, double timeout_s)
{
	pthread_mutex_lock(&x->mu);
	if (x->exited < pool->started) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		long long ns = ts.tv_nsec + (long long)(timeout_s * 1e9);
		ts.tv_sec += (time_t)(ns / 1000000000LL);
		ts.tv_nsec = (long)(ns % 1000000000LL);
		pthread_cond_timedwait(&x->cv, &x->mu, &ts);
	}
	bool all_exited = x->exited >= pool->started;
	pthread_mutex_unlock(&x->mu);
	return all_exited;
}

void xfer_pool_join(struct xfer_pool *pool)
{
	for (int i = 0; i < pool->started; i++)
		pthread_join(pool->w[i].thread, NULL);
	free(pool->w);
	pool->w = NULL;
	pool->started = 0;
}
