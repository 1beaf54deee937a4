/*
 * config.c - value parsers for configuration files and flags; see config.h. Pure functions: no
 * allocation, no I/O, no global state.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

static int fail(const char **why, const char *reason)
{
    if (why != NULL)
        *why = reason;
    return CV_EINVAL;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads a run of decimal digits at |*p| into |*v| with overflow check. Returns the number of digits
 * read, or -1 on overflow. */
static int read_digits(const char **p, uint64_t *v)
{
    const char *s = *p;
    uint64_t acc = 0;
    int count = 0;

    while (is_digit(*s)) {
        if (__builtin_mul_overflow(acc, 10, &acc) ||
            __builtin_add_overflow(acc, (uint64_t)(*s - '0'), &acc))
            return -1;
        s++;
        count++;
    }
    *p = s;
    *v = acc;
    return count;
}

static int all_digits(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++) {
        if (!is_digit(*s))
            return 0;
    }
    return 1;
}

/* ---- durations ---------------------------------------------------------------------------- */

struct dur_unit {
    const char *name;
    uint64_t ms;
    int rank; /* units must appear in strictly decreasing rank */
};

/* "ms" before "m" so the longest unit name wins. */
static const struct dur_unit dur_units[] = {
    {"ms", 1, 1},
    {"h", 3600000, 4},
    {"m", 60000, 3},
    {"s", 1000, 2},
};

#define DUR_MAX_FRACTION_DIGITS 9

int config_parse_duration(const char *s, unsigned flags, uint64_t *ms, const char **why)
{
    const char *p = s;
    uint64_t total = 0;
    int last_rank = 5;

    if (*s == '\0')
        return fail(why, "empty duration");
    if (s[0] == '-' || s[0] == '+')
        return fail(why, "a duration must not have a sign");
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    if (all_digits(s)) {
        uint64_t v;

        if (!(flags & CONFIG_DUR_PLAIN_SECONDS))
            return fail(why, "a duration needs a unit (for example 30s, 5m, 1h, 250ms)");
        if (s[0] == '0')
            return fail(why, "leading zeros are not allowed");
        if (read_digits(&p, &v) < 0 || __builtin_mul_overflow(v, 1000, &v))
            return fail(why, "duration too large");
        *ms = v;
        return 0;
    }
    while (*p != '\0') {
        uint64_t whole;
        uint64_t frac = 0;
        uint64_t scale = 1;
        uint64_t part;
        int nd;
        const struct dur_unit *u = NULL;

        nd = read_digits(&p, &whole);
        if (nd < 0)
            return fail(why, "duration too large");
        if (nd == 0)
            return fail(why, "invalid duration (expected a number, as in 30s, 5m, 1h30m, 250ms)");
        if (*p == '.') {
            p++;
            if (!is_digit(*p))
                return fail(why, "invalid duration (expected digits after \".\")");
            nd = 0;
            while (is_digit(*p)) {
                if (++nd > DUR_MAX_FRACTION_DIGITS)
                    return fail(why, "too many decimal places in duration");
                frac = frac * 10 + (uint64_t)(*p - '0');
                scale *= 10;
                p++;
            }
        }
        for (size_t i = 0; i < sizeof(dur_units) / sizeof(dur_units[0]); i++) {
            size_t len = strlen(dur_units[i].name);

            if (strncmp(p, dur_units[i].name, len) == 0) {
                u = &dur_units[i];
                p += len;
                break;
            }
        }
        if (u == NULL) {
            if (*p == '\0')
                return fail(why, "a duration needs a unit (for example 30s, 5m, 1h, 250ms)");
            if (strncmp(p, "us", 2) == 0 || strncmp(p, "ns", 2) == 0 ||
                strncmp(p, "\xc2\xb5s", 3) == 0)
                return fail(why, "durations below a millisecond are not supported");
            return fail(why, "unknown duration unit (use h, m, s or ms)");
        }
        if (u->rank >= last_rank)
            return fail(why, "duration units must go from largest to smallest, each once (1h30m)");
        last_rank = u->rank;
        /* frac * u->ms fits: frac < 10^9 and u->ms <= 3.6e6. */
        if ((frac * u->ms) % scale != 0)
            return fail(why, "duration is not a whole number of milliseconds");
        if (__builtin_mul_overflow(whole, u->ms, &part) ||
            __builtin_add_overflow(part, frac * u->ms / scale, &part) ||
            __builtin_add_overflow(total, part, &total))
            return fail(why, "duration too large");
    }
    *ms = total;
    return 0;
}

/* Appends with snprintf semantics: |*len| counts every byte the full text needs. */
static void append(char *out, size_t n, size_t *len, unsigned long long v, const char *unit)
{
    char tmp[48];
    int k = snprintf(tmp, sizeof(tmp), "%llu%s", v, unit);

    if (k < 0)
        return;
    if (*len < n) {
        size_t room = n - *len;
        size_t copy = (size_t)k < room ? (size_t)k : room - 1;

        memcpy(out + *len, tmp, copy);
        out[*len + copy] = '\0';
    }
    *len += (size_t)k;
}

size_t config_format_duration(uint64_t ms, char *out, size_t n)
{
    static const struct {
        uint64_t ms;
        const char *name;
    } parts[] = {{3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
    size_t len = 0;

    out[0] = '\0';
    if (ms == 0) {
        append(out, n, &len, 0, "s");
        return len;
    }
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        uint64_t v = ms / parts[i].ms;

        ms %= parts[i].ms;
        if (v != 0)
            append(out, n, &len, (unsigned long long)v, parts[i].name);
    }
    return len;
}

/* ---- sizes -------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    uint64_t mult;
} size_units[] = {
    {"B", 1},
    {"KiB", 1ULL << 10},
    {"MiB", 1ULL << 20},
    {"GiB", 1ULL << 30},
    {"TiB", 1ULL << 40},
    {"KB", 1000ULL},
    {"kB", 1000ULL},
    {"MB", 1000000ULL},
    {"GB", 1000000000ULL},
    {"TB", 1000000000000ULL},
};

int config_parse_size(const char *s, uint64_t *bytes, const char **why)
{
    const char *p = s;
    uint64_t v;
    uint64_t mult = 0;
    int nd;

    if (*s == '\0')
        return fail(why, "empty size");
    if (s[0] == '-' || s[0] == '+')
        return fail(why, "a size must not have a sign");
    nd = read_digits(&p, &v);
    if (nd < 0)
        return fail(why, "size too large");
    if (nd == 0)
        return fail(why, "invalid size (expected a number, as in 512, 64KiB, 6MiB)");
    if (s[0] == '0' && nd > 1)
        return fail(why, "leading zeros are not allowed");
    if (*p == '\0') {
        *bytes = v;
        return 0;
    }
    if (*p == '.')
        return fail(why, "a size must be a whole number (write 1536KiB, not 1.5MiB)");
    if (*p == ' ')
        return fail(why, "no space is allowed between a size and its unit (64KiB)");
    for (size_t i = 0; i < sizeof(size_units) / sizeof(size_units[0]); i++) {
        if (strcmp(p, size_units[i].name) == 0) {
            mult = size_units[i].mult;
            break;
        }
    }
    if (mult == 0) {
        if (strcmp(p, "K") == 0 || strcmp(p, "k") == 0 || strcmp(p, "M") == 0 ||
            strcmp(p, "m") == 0 || strcmp(p, "G") == 0 || strcmp(p, "g") == 0)
            return fail(why, "ambiguous size unit: write KiB, MiB, GiB (1024) or KB, MB, GB (1000)");
        return fail(why, "unknown size unit (use B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB)");
    }
    if (__builtin_mul_overflow(v, mult, &v))
        return fail(why, "size too large");
    *bytes = v;
    return 0;
}

size_t config_format_size(uint64_t bytes, char *out, size_t n)
{
    static const struct {
        unsigned shift;
        const char *name;
    } units[] = {{40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}};
    size_t len = 0;

    out[0] = '\0';
    if (bytes != 0) {
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            uint64_t mask = (1ULL << units[i].shift) - 1;

            if ((bytes & mask) == 0) {
                append(out, n, &len, (unsigned long long)(bytes >> units[i].shift),
                       units[i].name);
                return len;
            }
        }
    }
    append(out, n, &len, (unsigned long long)bytes, "");
    return len;
}

/* ---- booleans and integers ---------------------------------------------------------------- */

int config_parse_bool(const char *s, bool *out, const char **why)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                      "on",   "On",   "ON",   "y",   "Y"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO",
                                     "off",   "Off",   "OFF",   "n",  "N"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return fail(why, "expected a boolean (true or false)");
}

int config_parse_int(const char *s, int64_t min, int64_t max, int64_t *out, const char **why)
{
    const char *p = s;
    int neg = 0;
    uint64_t mag;
    int64_t v;
    int nd;

    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (!is_digit(*p))
        return fail(why, "expected a whole number");
    if (p[0] == '0' && p[1] != '\0')
        return fail(why, "expected a whole number without leading zeros");
    nd = read_digits(&p, &mag);
    if (*p != '\0')
        return fail(why, "expected a whole number");
    if (nd < 0 || (!neg && mag > (uint64_t)INT64_MAX) ||
        (neg && mag > (uint64_t)INT64_MAX + 1))
        return fail(why, "number out of range");
    if (neg)
        v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    else
        v = (int64_t)mag;
    if (v < min)
        return fail(why, "number too small");
    if (v > max)
        return fail(why, "number too large");
    *out = v;
    return 0;
}

/* ---- addresses ---------------------------------------------------------------------------- */

static int parse_port(const char *p, unsigned flags, uint16_t *port, const char **why)
{
    uint64_t v;
    int nd;

    if (*p == '\0')
        return fail(why, "missing port (write host:port)");
    if (p[0] == '0' && p[1] != '\0')
        return fail(why, "invalid port (leading zeros are not allowed)");
    nd = read_digits(&p, &v);
    if (nd <= 0 || *p != '\0')
        return fail(why, "invalid port (must be a number)");
    if (nd > 5 || v > 65535)
        return fail(why, "port out of range (1-65535)");
    if (v == 0 && !(flags & CONFIG_ADDR_ALLOW_PORT0))
        return fail(why, "port out of range (1-65535)");
    *port = (uint16_t)v;
    return 0;
}

int config_parse_addr(const char *s, unsigned flags, struct config_addr *a, const char **why)
{
    struct hostname_host h;
    const char *sep;
    uint16_t port;
    int rv;

    if (*s == '\0')
        return fail(why, "empty address");
    if (strncmp(s, "unix:", 5) == 0) {
        size_t len = strlen(s + 5);

        if (!(flags & CONFIG_ADDR_ALLOW_UNIX))
            return fail(why, "a unix socket is not allowed here (write host:port)");
        if (len == 0)
            return fail(why, "empty unix socket path");
        if (len > CONFIG_UNIX_PATH_MAX)
            return fail(why, "unix socket path longer than 107 bytes");
        rv = config_check_path(s + 5, 0, why);
        if (rv < 0)
            return rv;
        a->kind = CONFIG_ADDR_UNIX;
        memcpy(a->path, s + 5, len + 1);
        a->host[0] = '\0';
        a->port = 0;
        a->host_kind = HOSTNAME_NAME;
        return 0;
    }
    if (s[0] == '[') {
        sep = strchr(s, ']');
        if (sep == NULL)
            return fail(why, "missing \"]\" after an IPv6 literal");
        sep++;
        if (*sep != ':')
            return fail(why, "missing port (write [address]:port)");
    } else {
        sep = strrchr(s, ':');
        if (sep == NULL)
            return fail(why, "missing port (write host:port)");
    }
    if (sep == s)
        return fail(why, "missing host (write host:port)");
    rv = hostname_split(s, (size_t)(sep - s), &h, why);
    if (rv < 0)
        return rv;
    rv = parse_port(sep + 1, flags, &port, why);
    if (rv < 0)
        return rv;
    a->kind = CONFIG_ADDR_TCP;
    a->host_kind = h.kind;
    memcpy(a->host, h.name, sizeof(a->host));
    a->port = port;
    a->path[0] = '\0';
    return 0;
}

size_t config_format_addr(const struct config_addr *a, char *out, size_t n)
{
    int k;

    if (a->kind == CONFIG_ADDR_UNIX)
        k = snprintf(out, n, "unix:%s", a->path);
    else if (a->host_kind == HOSTNAME_IPV6)
        k = snprintf(out, n, "[%s]:%u", a->host, (unsigned)a->port);
    else
        k = snprintf(out, n, "%s:%u", a->host, (unsigned)a->port);
    return k < 0 ? 0 : (size_t)k;
}

/* ---- paths -------------------------------------------------------------------------------- */

#define CONFIG_PATH_MAX 4096

int config_check_path(const char *s, unsigned flags, const char **why)
{
    size_t len = strlen(s);

    if (len == 0)
        return fail(why, "empty path");
    if (len >= CONFIG_PATH_MAX)
        return fail(why, "path longer than 4095 bytes");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f)
            return fail(why, "control characters are not allowed in a path");
    }
    if ((flags & CONFIG_PATH_ABSOLUTE) && s[0] != '/')
        return fail(why, "the path must be absolute (start with \"/\")");
    return 0;
}
