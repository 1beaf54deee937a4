/*
 * config.h - pure parsers for the values found in edge.yml, config.yml and on the command line:
 * durations, sizes, booleans, integers, addresses (host:port, [v6]:port, unix:/path) and paths.
 *
 * Every parser reads a whole NUL-terminated string (no surrounding whitespace is skipped), writes its
 * result only on success, and returns 0 or CV_EINVAL with *|why| set to a static reason naming the
 * problem ("unknown unit \"x\""). |why| may be NULL. The reasons never quote the input, so a caller
 * may log them next to anything. yaml.h builds its located-error getters on these; the CLI uses them
 * for flags. No allocation, no global state: callable from any thread.
 */
#ifndef CV_CONFIG_H
#define CV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hostname.h"

/* ---- durations ---------------------------------------------------------------------------- */

/* Flags for config_parse_duration. */
#define CONFIG_DUR_PLAIN_SECONDS 0x1 /* a plain integer ("30") means seconds */

/*
 * Parses a duration into milliseconds: one or more <number><unit> groups with units h, m, s, ms in
 * strictly decreasing order ("1h30m", "250ms", "1m30s", and "1h30m0s" as Go's Duration.String()
 * writes it). A number may have a decimal fraction ("1.5s") as long as the total is a whole number
 * of milliseconds. "0" alone is 0, as in Go. A plain integer is seconds only with
 * CONFIG_DUR_PLAIN_SECONDS, else rejected ("add a unit"). Signs, spaces and empty strings are
 * rejected. Returns 0 and sets *|ms|, or CV_EINVAL (also on overflow past UINT64_MAX ms).
 */
int config_parse_duration(const char *s, unsigned flags, uint64_t *ms, const char **why);

/*
 * Writes |ms| as the shortest duration text config_parse_duration() reads back to the same value
 * ("1h30m", "250ms", "0s", "1m0.5s" is never produced: sub-second parts use "ms", e.g. "1m500ms").
 * Always NUL-terminates |out| (|n| >= 1); returns the length the full text needs (like snprintf).
 */
size_t config_format_duration(uint64_t ms, char *out, size_t n);

/* ---- sizes -------------------------------------------------------------------------------- */

/*
 * Parses a size in bytes: a decimal integer optionally followed by a unit: B, KiB, MiB, GiB, TiB
 * (powers of 1024) or KB/kB, MB, GB, TB (powers of 1000). "K", "M", "k", "KiB " and fractions are
 * rejected (the reason says which unit to write). Returns 0 and sets *|bytes|, or CV_EINVAL (also on
 * overflow).
 */
int config_parse_size(const char *s, uint64_t *bytes, const char **why);

/* Writes |bytes| as "64KiB", "6MiB", "1000" (the largest binary unit that divides it exactly).
 * Always NUL-terminates |out| (|n| >= 1); returns the length the full text needs. */
size_t config_format_size(uint64_t bytes, char *out, size_t n);

/* ---- booleans and integers ---------------------------------------------------------------- */

/*
 * Parses a boolean as YAML 1.1 and cloudflared's YAML decoder accept: true/false, yes/no, on/off,
 * y/n, each in lower case, Title case or UPPER case. Returns 0 and sets *|out|, or CV_EINVAL.
 */
int config_parse_bool(const char *s, bool *out, const char **why);

/*
 * Parses a decimal integer in [min, max]: optional '-', digits, no leading zeros (except "0"), no
 * '+', spaces, hex or octal. Returns 0 and sets *|out|, or CV_EINVAL (not a number, or out of the
 * range; the reason says which).
 */
int config_parse_int(const char *s, int64_t min, int64_t max, int64_t *out, const char **why);

/* ---- addresses ---------------------------------------------------------------------------- */

enum config_addr_kind {
    CONFIG_ADDR_TCP,  /* host and port */
    CONFIG_ADDR_UNIX, /* unix-domain socket path */
};

#define CONFIG_UNIX_PATH_MAX 107 /* sizeof(sun_path) - 1 on Linux */

struct config_addr {
    enum config_addr_kind kind;
    enum hostname_kind host_kind;      /* CONFIG_ADDR_TCP: name, IPv4 or IPv6 literal */
    char host[HOSTNAME_MAX + 1];       /* CONFIG_ADDR_TCP: as hostname_split writes it */
    uint16_t port;                     /* CONFIG_ADDR_TCP */
    char path[CONFIG_UNIX_PATH_MAX + 1]; /* CONFIG_ADDR_UNIX */
};

/* Flags for config_parse_addr. */
#define CONFIG_ADDR_ALLOW_UNIX 0x1  /* accept "unix:/path" */
#define CONFIG_ADDR_ALLOW_PORT0 0x2 /* accept port 0 (listen on an ephemeral port) */

/*
 * Parses "host:port", "[v6]:port" or, with CONFIG_ADDR_ALLOW_UNIX, "unix:PATH" into |a|. The host is a
 * DNS name (rules of hostname_normalize), an IPv4 dotted quad, or a bracketed IPv6 literal (no zone);
 * the port is decimal 1..65535 without leading zeros (0 too with CONFIG_ADDR_ALLOW_PORT0). A unix
 * path is non-empty and at most CONFIG_UNIX_PATH_MAX bytes. Returns 0 and fills |a|, or CV_EINVAL;
 * |a| is unchanged on failure.
 */
int config_parse_addr(const char *s, unsigned flags, struct config_addr *a, const char **why);

/*
 * Writes |a| as text config_parse_addr() reads back: "host:port", "[v6]:port" or "unix:PATH".
 * Always NUL-terminates |out| (|n| >= 1); returns the length the full text needs.
 */
size_t config_format_addr(const struct config_addr *a, char *out, size_t n);

/* ---- paths -------------------------------------------------------------------------------- */

/* Flags for config_check_path. */
#define CONFIG_PATH_ABSOLUTE 0x1 /* must start with '/' */

/*
 * Checks a file path: non-empty, shorter than PATH_MAX (4096) bytes, no control characters
 * (newline, tab, ...), absolute with CONFIG_PATH_ABSOLUTE. The file need not exist. Returns 0 or
 * CV_EINVAL.
 */
int config_check_path(const char *s, unsigned flags, const char **why);

#endif
