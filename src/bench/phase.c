/* phase.c - warm-up, window and the window's CPU time (phase.h). */
#include "bench/phase.h"

#include <math.h>
#include <stddef.h>
#include <sys/resource.h>

static void cpu_times(double *user, double *sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* s seconds as a timer timeout: at least 1 ms (0 would fire before the
 * loop polls once). */
static uint64_t timeout_ms(double s)
{
    uint64_t ms = (uint64_t)llround(s * 1000);
    return ms ? ms : 1;
}

static void on_window_end(uv_timer_t *t)
{
    bench_phase *p = (bench_phase *)((char *)t - offsetof(bench_phase, timer));
    p->on_window_end(p);
}

static void begin_window(bench_phase *p)
{
    p->t_measure = uv_hrtime();
    cpu_times(&p->cpu_user0, &p->cpu_sys0);
    p->measuring = true;
    if (p->counted)
        return; /* --count: the owner ends the window at its N-th operation */
    uv_timer_start(&p->timer, on_window_end, timeout_ms(p->duration_s), 0);
}

static void on_warmup_end(uv_timer_t *t)
{
    begin_window((bench_phase *)((char *)t - offsetof(bench_phase, timer)));
}

void bench__phase_init(bench_phase *p, uv_loop_t *loop, const bench_config *cfg, bench_phase_cb cb,
                       void *data)
{
    *p = (bench_phase){.warmup_s = cfg->warmup_s,
                       .duration_s = cfg->duration_s,
                       .counted = cfg->count != 0,
                       .on_window_end = cb,
                       .data = data};
    uv_timer_init(loop, &p->timer);
    p->timer.data = data;
}

void bench__phase_start(bench_phase *p)
{
    p->t_start = uv_hrtime();
    if (p->warmup_s > 0)
        uv_timer_start(&p->timer, on_warmup_end, timeout_ms(p->warmup_s), 0);
    else
        begin_window(p);
}

uint64_t bench__phase_stop(bench_phase *p, bench_results *res)
{
    uint64_t now = uv_hrtime();
    uv_timer_stop(&p->timer);
    if (p->measuring) {
        double u, s;
        cpu_times(&u, &s);
        res->cpu_user_s = u - p->cpu_user0;
        res->cpu_sys_s = s - p->cpu_sys0;
    } else if (!p->t_measure) {
        p->t_measure = now; /* stopped during the warm-up: an empty window */
    }
    p->t_end = now;
    p->measuring = false;
    res->duration_s = (double)(p->t_end - p->t_measure) / 1e9;
    res->warmup_s = (double)(p->t_measure - p->t_start) / 1e9;
    return now;
}

bool bench__phase_warm_since(const bench_phase *p, uint64_t since)
{
    return !p->measuring || p->t_measure > since;
}

void bench__phase_close(bench_phase *p)
{
    uv_close((uv_handle_t *)&p->timer, NULL);
}
