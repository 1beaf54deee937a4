/*
 * listener.c - listening sockets for configured addresses; see listener.h.
 */
#include "listener.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "mem.h"

struct listener {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    int is_unix;
    listener_cb cb;
    void *arg;
    int port;
    char name[160];
};

static void on_connection(uv_stream_t *server, int status)
{
    struct listener *l = server->data;

    if (status < 0) {
        LOG_W_RL("listen %s: accept failed: %s", l->name, uv_strerror(status));
        return;
    }
    l->cb(l, server, l->arg);
}

static void on_closed(uv_handle_t *h)
{
    mem_free(h->data);
}

static int resolve(const struct config_addr *a, struct sockaddr_storage *ss, char *err, size_t errlen,
                   const char *name)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    char port[8];
    int rv;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (a->host_kind != HOSTNAME_NAME)
        hints.ai_flags |= AI_NUMERICHOST;
    snprintf(port, sizeof(port), "%u", a->port);
    rv = getaddrinfo(a->host, port, &hints, &res);
    if (rv != 0 || res == NULL) {
        snprintf(err, errlen, "listen %s: cannot resolve: %s", name, gai_strerror(rv));
        return CV_ENOTFOUND;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/*
 * Clears the way for binding the unix socket |path|: nothing there, or a stale socket (nobody
 * accepts on it: a crash left it) that is removed. Any other file, or a socket another process
 * listens on, is left alone and refused. Returns 0 or a negative code with |err| set.
 */
static int unix_clear_stale(const char *path, const char *name, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    struct stat sb;
    int fd;
    int rv;

    if (lstat(path, &sb) < 0) {
        if (errno == ENOENT)
            return 0;
        rv = -errno;
        snprintf(err, errlen, "listen %s: %s", name, strerror(errno));
        return rv;
    }
    if (!S_ISSOCK(sb.st_mode)) {
        snprintf(err, errlen, "listen %s: the file exists and is not a socket (move it away)",
                 name);
        return CV_EEXIST;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "listen %s: path too long", name);
        return CV_EINVAL;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    /* Non-blocking: a listener with a full backlog answers EAGAIN at once (in use, too). */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rv = -errno;
        snprintf(err, errlen, "listen %s: %s", name, strerror(errno));
        return rv;
    }
    rv = connect(fd, (const struct sockaddr *)&sun, sizeof(sun)) == 0 ? 0 : -errno;
    close(fd);
    if (rv == 0 || rv == -EAGAIN) {
        snprintf(err, errlen, "listen %s: in use by another process (is another culvert running?)",
                 name);
        return CV_EEXIST;
    }
    if (rv != -ECONNREFUSED) {
        snprintf(err, errlen, "listen %s: cannot tell whether the socket is in use: %s", name,
                 strerror(-rv));
        return rv;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        rv = -errno;
        snprintf(err, errlen, "listen %s: cannot remove the stale socket: %s", name,
                 strerror(errno));
        return rv;
    }
    return 0;
}

struct listener *listener_start(uv_loop_t *loop, const struct config_addr *a, unsigned unix_mode,
                                listener_cb cb, void *arg, char *err, size_t errlen)
{
    struct listener *l = mem_calloc(sizeof(*l));
    struct sockaddr_storage ss;
    int rv;

    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->cb = cb;
    l->arg = arg;
    config_format_addr(a, l->name, sizeof(l->name));
    if (a->kind == CONFIG_ADDR_UNIX) {
        l->is_unix = 1;
        uv_pipe_init(loop, &l->h.pipe, 0);
        l->h.pipe.data = l;
        rv = unix_clear_stale(a->path, l->name, err, errlen);
        if (rv < 0) {
            uv_close((uv_handle_t *)&l->h, on_closed);
            return NULL;
        }
        rv = uv_pipe_bind(&l->h.pipe, a->path);
        if (rv == 0 && unix_mode != 0 && chmod(a->path, unix_mode) != 0)
            rv = -errno;
    } else {
        uv_tcp_init(loop, &l->h.tcp);
        l->h.tcp.data = l;
        rv = resolve(a, &ss, err, errlen, l->name);
        if (rv < 0) {
            uv_close((uv_handle_t *)&l->h, on_closed);
            return NULL;
        }
        rv = uv_tcp_bind(&l->h.tcp, (const struct sockaddr *)&ss,
                         ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    }
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&l->h, 1024, on_connection);
    if (rv < 0) {
        snprintf(err, errlen, "listen %s: %s", l->name, uv_strerror(rv));
        uv_close((uv_handle_t *)&l->h, on_closed);
        return NULL;
    }
    if (!l->is_unix) {
        struct sockaddr_storage bound;
        int len = sizeof(bound);

        if (uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&bound, &len) == 0) {
            if (bound.ss_family == AF_INET)
                l->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
            else
                l->port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
        }
    }
    return l;
}

void listener_stop(struct listener *l)
{
    if (l == NULL)
        return;
    uv_close((uv_handle_t *)&l->h, on_closed);
}

int listener_port(const struct listener *l)
{
    return l->port;
}

const char *listener_name(const struct listener *l)
{
    return l->name;
}
