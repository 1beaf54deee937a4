/*
 * log.h - levelled, structured logs to stderr (or a file), one line per event:
 *
 *   2026-11-22T01:32:11.123Z INF edge conn=7 stream=3 msg text
 *
 * Callers put the subject first ("conn=7 stream=3 ...") and never pass secrets. The LOG_* macros
 * check the level before any formatting. log_ratelimited() suppresses floods of one call site and
 * reports how many lines it dropped.
 */
#ifndef CV_LOG_H
#define CV_LOG_H

#include <stdint.h>

enum log_level {
    LOG_ERROR = 0,
    LOG_WARN,
    LOG_INFO,
    LOG_DEBUG,
    LOG_TRACE,
    LOG_LEVEL_COUNT
};

extern enum log_level log_current_level;

/* Sets the program name printed on each line ("edge", "connector"). Borrows |name| (static). */
void log_set_program(const char *name);
void log_set_level(enum log_level level);
/* Parses "error", "warn", "info", "debug", "trace" (also cloudflared's "fatal"/"warning"). Returns
 * 0 and sets *|out|, or CV_EINVAL. */
int log_parse_level(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);
/* Redirects logs to |path| (appending), or stderr when |path| is NULL or "-". Returns 0 or -errno. */
int log_open(const char *path);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Per-call-site rate limiter: at most |burst| lines per second, then a count of dropped ones. */
struct log_rl {
    uint64_t window_start_ms;
    unsigned emitted;
    unsigned dropped;
};
void log_ratelimited(struct log_rl *rl, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_ENABLED(lvl) ((lvl) <= log_current_level)
#define LOG_E(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define LOG_W(...)                                                                                 \
    do {                                                                                           \
        if (LOG_ENABLED(LOG_WARN))                                                                 \
            log_msg(LOG_WARN, __VA_ARGS__);                                                        \
    } while (0)
#define LOG_I(...)                                                                                 \
    do {                                                                                           \
        if (LOG_ENABLED(LOG_INFO))                                                                 \
            log_msg(LOG_INFO, __VA_ARGS__);                                                        \
    } while (0)
#define LOG_D(...)                                                                                 \
    do {                                                                                           \
        if (LOG_ENABLED(LOG_DEBUG))                                                                \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)
#define LOG_T(...)                                                                                 \
    do {                                                                                           \
        if (LOG_ENABLED(LOG_TRACE))                                                                \
            log_msg(LOG_TRACE, __VA_ARGS__);                                                       \
    } while (0)
/* Rate-limited warning: one static limiter per call site, 10 lines per second. */
#define LOG_W_RL(...)                                                                              \
    do {                                                                                           \
        static struct log_rl rl_;                                                                  \
        if (LOG_ENABLED(LOG_WARN))                                                                 \
            log_ratelimited(&rl_, LOG_WARN, __VA_ARGS__);                                          \
    } while (0)

#endif
