/* process_* metrics from Linux /proc, as the Prometheus client libraries
 * name them, and oms_build_info. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "metrics/metrics.h"

/* utime + stime (clock ticks) and rss (pages) from /proc/self/stat. */
static int read_stat(double *cpu_s, double *rss_bytes)
{
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command may hold spaces and parentheses */
    if (!p)
        return -1;
    unsigned long utime, stime;
    long rss;
    /* after ')': state(3) ... utime(14) stime(15) ... rss(24) */
    if (sscanf(p + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
               "%*u %*u %ld",
               &utime, &stime, &rss) != 3)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    *cpu_s = (double)(utime + stime) / (double)(hz > 0 ? hz : 100);
    *rss_bytes = (double)rss * (double)(page > 0 ? page : 4096);
    return 0;
}

static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

void oms_metrics_render_process(oms_mtext *t, double start_time, const char *version,
                                const char *commit)
{
    double cpu, rss;
    if (read_stat(&cpu, &rss) == 0) {
        oms_mtext_family(t, "process_cpu_seconds_total", "counter",
                         "Total user and system CPU time spent in seconds.");
        oms_mtext_sample(t, "process_cpu_seconds_total", NULL, cpu);
        oms_mtext_family(t, "process_resident_memory_bytes", "gauge",
                         "Resident memory size in bytes.");
        oms_mtext_sample(t, "process_resident_memory_bytes", NULL, rss);
    }
    long fds = count_fds();
    if (fds >= 0) {
        oms_mtext_family(t, "process_open_fds", "gauge", "Number of open file descriptors.");
        oms_mtext_sample(t, "process_open_fds", NULL, (double)fds);
    }
    oms_mtext_family(t, "process_start_time_seconds", "gauge",
                     "Start time of the process since unix epoch in seconds.");
    oms_mtext_sample(t, "process_start_time_seconds", NULL, start_time);
    oms_mtext_family(t, "oms_build_info", "gauge",
                     "The oms version and git commit this process was built from.");
    const char *labels[] = {"commit", commit, "version", version, NULL};
    oms_mtext_sample(t, "oms_build_info", labels, 1);
}
