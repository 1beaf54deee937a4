/*
 * access.h - `culvert-connector access tcp|ssh`: the visitor side of a TCP service.
 *
 * `access tcp --hostname H --url 127.0.0.1:2222` listens on --url (loopback unless a host is given)
 * and carries each accepted connection to H through the edge; `access ssh --hostname H` carries
 * stdin/stdout instead, for `ssh -o ProxyCommand='culvert-connector access ssh --hostname %h'`.
 * Each connection is its own TLS 1.3 connection to the edge (--edge-url, default https://H:443;
 * SNI, Host and the certificate check always use H; trust --edge-ca or the system store) carrying
 * `GET / HTTP/1.1` with `Upgrade: culvert-tcp` and the --header lines. After the edge's 101 the TLS
 * connection is a raw byte pipe: a half-close is a close_notify towards the edge and a FIN (or the
 * end of stdout) towards the local side, each direction on its own. Any other answer is printed
 * with the error page's text, and the local connection is closed.
 *
 * Logs go to stderr (warn level by default): for `access ssh` stdout is the data channel. Exit
 * codes (PRODUCT.md section 2): 0 success, 2 usage, 1 failure with a message saying what failed.
 * Layers: sock.c (TLS to the edge, the local TCP connections), http1.c (the request head and the
 * edge's answer), listener.c; libuv pipes or ttys for stdin/stdout. One loop thread.
 */
#ifndef CV_ACCESS_H
#define CV_ACCESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "config.h"
#include "hostname.h"
#include "log.h"

#define ACCESS_MAX_HEADERS 32
#define ACCESS_MAX_HEADER_BYTES (16 * 1024) /* all --header lines together */
#define ACCESS_HELP 1 /* access_parse_args: --help was asked */

enum access_mode {
    ACCESS_TCP, /* a local listener (--url) */
    ACCESS_SSH, /* stdin/stdout */
};

/* One --header line: borrowed from argv (which lives as long as the process). */
struct access_header {
    const char *name;
    size_t name_len;
    const char *value; /* surrounding whitespace excluded */
    size_t value_len;
};

struct access_opts {
    enum access_mode mode;
    char hostname[HOSTNAME_MAX + 1];  /* --hostname, normalised: SNI, Host, certificate name */
    struct config_addr listen;        /* tcp: --url (127.0.0.1 when no host is given) */
    char edge_host[HOSTNAME_MAX + 1]; /* where to connect: --edge-url's host, else |hostname| */
    uint16_t edge_port;               /* --edge-url's port, else 443 */
    const char *edge_ca;              /* --edge-ca (borrowed), or NULL for the system store */
    struct access_header headers[ACCESS_MAX_HEADERS];
    size_t nheaders;
    enum log_level loglevel;          /* --loglevel, warn by default */
    uint64_t connect_timeout_ms;      /* TCP + TLS to the edge, 30 s */
    uint64_t answer_timeout_ms;       /* from the request to the edge's answer, 120 s */
};

/*
 * Parses the arguments after "access" (|argv[0]| is "tcp" or "ssh"). Flags take "--flag value" or
 * "--flag=value", with one or two dashes. Returns 0 and fills |o|; ACCESS_HELP for --help; or
 * CV_EINVAL with a message naming the flag in |err| (|errlen| bytes): an unknown mode or flag, a
 * missing value, --hostname missing or not a DNS name, --url missing (tcp) or not
 * [tcp://][host:]port, --url given to ssh, --edge-url not https://host[:port][/], a --header that
 * is not "Name: value" (token name, no control characters) or names a field the handshake owns
 * (Host, Upgrade, Connection, Content-Length, Transfer-Encoding), more than ACCESS_MAX_HEADERS
 * headers, a bad --loglevel. Borrows |argv|.
 */
int access_parse_args(int argc, char **argv, struct access_opts *o, char *err, size_t errlen);

/* The usage text. */
void access_usage(FILE *f);

/*
 * Appends the upgrade request for |o| to |b|: GET / HTTP/1.1, Host, Upgrade: culvert-tcp,
 * Connection: Upgrade, User-Agent, the --header lines in order. Returns 0, or http1.h's writer
 * errors (|b| unchanged).
 */
int access_build_request(struct buf *b, const struct access_opts *o);

/*
 * Turns the |n| bytes of an error page |body| into one line of text for the terminal: the HTML
 * head and <h1> are left out, tags removed, the common entities decoded, whitespace collapsed,
 * control characters dropped; a body that is not HTML is kept as it is, on one line. Writes at most
 * |cap| - 1 bytes and a NUL to |out| (|cap| >= 1). Returns the length written.
 */
size_t access_page_text(const char *body, size_t n, char *out, size_t cap);

/* `culvert-connector access ...`: |argc|/|argv| after "access". Returns the exit code. */
int access_main(int argc, char **argv);

#endif
