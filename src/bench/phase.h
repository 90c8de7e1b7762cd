/* phase.h - a run's clock: the warm-up, then the measured window, then the
 * owner's drain; and the CPU time the process spent inside the window. One
 * for the engine (run.c) and the order-watch run (watch_run.c).
 *
 *     bench__phase_init(&r->ph, loop, cfg, on_window_end, r);
 *     ...                              (connections, preflight)
 *     bench__phase_start(&r->ph);      load starts: warm-up, then the window
 *     on_window_end(&r->ph)            the window's time is up: the owner
 *                                      calls bench__phase_stop() and drains
 *     bench__phase_close(&r->ph);      with the owner's other handles
 */
#ifndef OMS_BENCH_PHASE_H
#define OMS_BENCH_PHASE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "bench/bench.h"

typedef struct bench_phase bench_phase;
typedef void (*bench_phase_cb)(bench_phase *p);

struct bench_phase {
    uv_timer_t timer; /* warm-up end, then window end */
    double warmup_s, duration_s;
    bool counted; /* --count: the window ends when the owner says, not on time */
    bench_phase_cb on_window_end;
    void *data; /* the owner's */
    /* uv_hrtime ns; 0 until reached */
    uint64_t t_start;           /* load started (warm-up begins) */
    uint64_t t_measure;         /* warm-up over, window open */
    uint64_t t_end;             /* window over */
    bool measuring;             /* inside the window */
    double cpu_user0, cpu_sys0; /* process CPU time (s) when the window opened */
};

/* Sets p up on loop for cfg's --warmup and --duration. on_window_end runs
 * (from the loop) when the window's time is up, and is expected to call
 * bench__phase_stop(). data is the owner's. */
void bench__phase_init(bench_phase *p, uv_loop_t *loop, const bench_config *cfg,
                       bench_phase_cb on_window_end, void *data);

/* The load starts now: the warm-up, then (or at once, with no warm-up) the
 * window. */
void bench__phase_start(bench_phase *p);

/* Ends the window now (its time is up, or early: SIGINT) and writes the
 * figures of the phases to res: duration_s (the window; empty when stopped
 * during the warm-up), warmup_s, cpu_user_s and cpu_sys_s (inside the
 * window). Returns t_end. Call once, after bench__phase_start(). */
uint64_t bench__phase_stop(bench_phase *p, bench_results *res);

/* A progress line covering [since, now) began in the warm-up. */
bool bench__phase_warm_since(const bench_phase *p, uint64_t since);

/* Closes the timer (part of the owner's teardown; uv_run returns once it is
 * closed). */
void bench__phase_close(bench_phase *p);

#endif
