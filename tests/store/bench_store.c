/* A micro-benchmark of the write path, the way CreateOrder uses it: per
 * order one RESERVE and, once it completes, one ORDER_CREATE (with an event)
 * (split mode), or one ORDER_PLACE (all-in-one mode), with a window of orders
 * in flight on each of 1 or 2 loops. Prints
 * orders/s, writes/s and the commit figures; asserts only correctness.
 *
 * OMS_STORE_BENCH_ORDERS (default 20000) and OMS_STORE_BENCH_WINDOW
 * (default 2048 per loop) change the load. */
#include <pthread.h>
#include <time.h>

#include "store_test_util.h"

#define NSKUS 100

typedef struct bench_loop bench_loop;

typedef struct slot {
    store_write w;
    store_line line;
    store_order *o;
    bench_loop *bl;
} slot;

struct bench_loop {
    store *st;
    store_loop *sl;
    uv_loop_t loop;
    pthread_t thread;
    long todo, started, finished, failed;
    int window;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void start_order(slot *s);

/* ORDER_PLACE instead of RESERVE + ORDER_CREATE (all-in-one mode). */
static bool place_mode;

static void on_created(store_write *w)
{
    slot *s = (slot *)w;
    store_order_free(w->result); /* ORDER_PLACE's */
    w->result = NULL;
    if (w->rc != STORE_OK)
        s->bl->failed++;
    s->bl->finished++;
    if (s->bl->started < s->bl->todo)
        start_order(s);
}

static void on_reserved(store_write *w)
{
    slot *s = (slot *)w;
    if (w->rc != STORE_OK) {
        s->bl->failed++;
        s->bl->finished++;
        if (s->bl->started < s->bl->todo)
            start_order(s);
        return;
    }
    store_order *o = s->o;
    strcpy(o->customer_id, "c-1");
    o->lines[0] = s->line;
    o->total_cents = s->line.quantity * s->line.unit_price_cents;
    o->created_at = 1700000000000;
    store_write *c = &s->w;
    *c = (store_write){
        .op = STORE_ORDER_CREATE, .order = o, .at = o->created_at, .done = on_created};
    store_submit(s->bl->sl, c);
}

static void start_order(slot *s)
{
    bench_loop *bl = s->bl;
    long n = bl->started++;
    if (store_next_order_id(bl->st, s->o->id) != STORE_OK) {
        bl->failed++; /* no id: counted, never sent with a stale one */
        bl->finished++;
        return;
    }
    snprintf(s->line.sku, sizeof s->line.sku, "SKU-%03ld", n % NSKUS);
    s->line.quantity = 1;
    s->line.unit_price_cents = 0;
    if (place_mode) {
        store_order *o = s->o;
        strcpy(o->customer_id, "c-1");
        o->lines[0] = s->line;
        o->created_at = 1700000000000;
        s->w = (store_write){
            .op = STORE_ORDER_PLACE, .order = o, .at = o->created_at, .done = on_created};
        store_submit(bl->sl, &s->w);
        return;
    }
    s->w = (store_write){.op = STORE_RESERVE,
                         .at = 1700000000000,
                         .lines = &s->line,
                         .nlines = 1,
                         .done = on_reserved};
    strcpy(s->w.order_id, s->o->id);
    store_submit(bl->sl, &s->w);
}

static void *bench_main(void *arg)
{
    bench_loop *bl = arg;
    uv_loop_init(&bl->loop);
    char err[256];
    bl->sl = store_loop_open(bl->st, &bl->loop, err, sizeof err);
    if (!bl->sl) {
        bl->failed = bl->todo;
        return NULL;
    }
    slot *slots = calloc((size_t)bl->window, sizeof *slots);
    for (int i = 0; i < bl->window; i++) {
        slots[i].bl = bl;
        slots[i].o = store_order_new(1);
    }
    for (int i = 0; i < bl->window && bl->started < bl->todo; i++)
        start_order(&slots[i]);
    while (bl->finished < bl->todo)
        uv_run(&bl->loop, UV_RUN_ONCE);
    store_loop_close(bl->sl);
    uv_run(&bl->loop, UV_RUN_DEFAULT);
    uv_loop_close(&bl->loop);
    for (int i = 0; i < bl->window; i++)
        store_order_free(slots[i].o);
    free(slots);
    return NULL;
}

/* CPU seconds the writer thread ("oms-store") used so far, from /proc. */
static double writer_cpu_s(void)
{
    DIR *d = opendir("/proc/self/task");
    double cpu = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[300], comm[64] = "", stat[1024];
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (!fgets(comm, sizeof comm, f))
            comm[0] = '\0';
        fclose(f);
        if (strncmp(comm, "oms-store", 9) != 0)
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", de->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[n] = '\0';
        const char *p = strrchr(stat, ')');
        unsigned long long ut = 0, stt = 0;
        /* after the comm: state, then fields 4..; utime and stime are 14, 15 */
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) == 2)
            cpu += (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
    }
    if (d)
        closedir(d);
    return cpu;
}

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    return v && *v ? atol(v) : def;
}

static void run_bench(int nloops)
{
    tenv e;
    tenv_open(&e);
    for (int i = 0; i < NSKUS; i++) {
        char sku[16];
        snprintf(sku, sizeof sku, "SKU-%03d", i);
        cr_assert_eq(add_product(&e, sku, 100 + i, 1000000000), STORE_OK);
    }
    long orders = env_long("OMS_STORE_BENCH_ORDERS", 20000);
    int window = (int)env_long("OMS_STORE_BENCH_WINDOW", 2048);
    store_stats before;
    store_get_stats(e.st, &before);
    bench_loop bl[2];
    memset(bl, 0, sizeof bl);
    double t0 = now_s(), cpu0 = writer_cpu_s();
    for (int i = 0; i < nloops; i++) {
        bl[i].st = e.st;
        bl[i].todo = orders / nloops;
        bl[i].window = window;
        pthread_create(&bl[i].thread, NULL, bench_main, &bl[i]);
    }
    long done = 0;
    for (int i = 0; i < nloops; i++) {
        pthread_join(bl[i].thread, NULL);
        cr_assert_eq(bl[i].failed, 0);
        done += bl[i].finished;
    }
    double dt = now_s() - t0, cpu = writer_cpu_s() - cpu0;
    store_stats after;
    store_get_stats(e.st, &after);
    uint64_t writes = after.writes - before.writes, commits = after.commits - before.commits;
    fprintf(stderr,
            "store bench (%d loop%s, window %d): %ld orders in %.2f s = %.0f orders/s, "
            "%.0f writes/s; %llu commits, %.1f writes/commit (max %llu), %.0f us/commit; "
            "writer CPU %.2f s = %.2f us/write\n",
            nloops, nloops > 1 ? "s" : "", window, done, dt, (double)done / dt, (double)writes / dt,
            (unsigned long long)commits, commits ? (double)writes / (double)commits : 0.0,
            (unsigned long long)after.max_batch,
            commits ? (double)(after.commit_us - before.commit_us) / (double)commits : 0.0, cpu,
            writes ? cpu * 1e6 / (double)writes : 0.0);
    cr_assert_eq(store_last_seq(e.st), done);
    store_event ev;
    cr_assert_eq(store_read_events(e.sl, done, NULL, &ev, 1), 1);
    tenv_close(&e);
}

Test(store_bench, reserve_and_create_one_loop, .timeout = 300)
{
    run_bench(1);
}

Test(store_bench, reserve_and_create_two_loops, .timeout = 300)
{
    run_bench(2);
}

Test(store_bench, place_one_loop, .timeout = 300)
{
    place_mode = true;
    run_bench(1);
}

Test(store_bench, place_two_loops, .timeout = 300)
{
    place_mode = true;
    run_bench(2);
}
