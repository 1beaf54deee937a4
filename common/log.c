/*
 * log.c - line-oriented logger; see log.h. Runs on the loop thread only.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"

enum log_level log_current_level = LOG_INFO;

static const char *program = "culvert";
static FILE *out;

static const char *const short_names[LOG_LEVEL_COUNT] = {"ERR", "WRN", "INF", "DBG", "TRC"};
static const char *const long_names[LOG_LEVEL_COUNT] = {"error", "warn", "info", "debug", "trace"};

void log_set_program(const char *name)
{
    program = name;
}

void log_set_level(enum log_level level)
{
    log_current_level = level;
}

const char *log_level_name(enum log_level level)
{
    return level < LOG_LEVEL_COUNT ? long_names[level] : "?";
}

int log_parse_level(const char *s, enum log_level *o)
{
    int i;

    for (i = 0; i < LOG_LEVEL_COUNT; i++) {
        if (strcmp(s, long_names[i]) == 0) {
            *o = (enum log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "fatal") == 0) {
        *o = LOG_ERROR;
        return 0;
    }
    if (strcmp(s, "warning") == 0) {
        *o = LOG_WARN;
        return 0;
    }
    return CV_EINVAL;
}

int log_open(const char *path)
{
    FILE *f;

    if (path == NULL || strcmp(path, "-") == 0) {
        if (out != NULL && out != stderr)
            fclose(out);
        out = stderr;
        return 0;
    }
    f = fopen(path, "a");
    if (f == NULL)
        return -errno;
    setvbuf(f, NULL, _IOLBF, 0);
    if (out != NULL && out != stderr)
        fclose(out);
    out = f;
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void vlog(enum log_level level, const char *fmt, va_list ap)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int k;

    if (out == NULL)
        out = stderr;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s ", ts.tv_nsec / 1000000,
                 short_names[level], program);
    if (k > 0)
        n += (size_t)k;
    k = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    if (k < 0)
        k = 0;
    n += (size_t)k;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    /* One line per event: a newline inside a message would forge a log entry. */
    for (size_t i = 0; i < n; i++) {
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    }
    line[n++] = '\n';
    fwrite(line, 1, n, out);
    if (out == stderr)
        fflush(out);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    if (!LOG_ENABLED(level))
        return;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void log_ratelimited(struct log_rl *rl, enum log_level level, const char *fmt, ...)
{
    uint64_t now = now_ms();
    va_list ap;

    if (!LOG_ENABLED(level))
        return;
    if (now - rl->window_start_ms >= 1000) {
        if (rl->dropped > 0)
            log_msg(level, "(%u similar lines suppressed)", rl->dropped);
        rl->window_start_ms = now;
        rl->emitted = 0;
        rl->dropped = 0;
    }
    if (rl->emitted >= 10) {
        rl->dropped++;
        return;
    }
    rl->emitted++;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}
