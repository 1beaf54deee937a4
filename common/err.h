/*
 * err.h - error codes shared by every Culvert module.
 *
 * Functions return 0 (or a count) on success and a negative code on failure. libuv's UV_E* codes
 * (negated errno values) are used as they are; Culvert's own codes live below -5000 so they never
 * collide with an errno. cv_strerror() names either kind.
 */
#ifndef CV_ERR_H
#define CV_ERR_H

enum {
    CV_ENOMEM = -5001,      /* an allocation failed (mem_alloc returned NULL) */
    CV_EFULL = -5002,       /* a bounded buffer or queue has no room left */
    CV_EPROTO = -5003,      /* the peer broke the protocol */
    CV_EFRAMESIZE = -5004,  /* a frame length is wrong for its type or over the limit */
    CV_EFLOW = -5005,       /* a flow-control window was violated */
    CV_ECLOSED = -5006,     /* the stream or connection is closed */
    CV_ELIMIT = -5007,      /* a configured limit was reached */
    CV_EAUTH = -5008,       /* authentication failed */
    CV_EVERSION = -5009,    /* no common protocol version */
    CV_ECONFIG = -5010,     /* invalid configuration */
    CV_EPARSE = -5011,      /* malformed input (HTTP, YAML, token, ...) */
    CV_ETLS = -5012,        /* TLS failure (handshake, verification, record) */
    CV_ENOTFOUND = -5013,   /* no such object (tunnel, route, rule) */
    CV_EEXIST = -5014,      /* the object already exists */
    CV_ECALM = -5015,       /* a flood budget tripped (ENHANCE_YOUR_CALM) */
    CV_ETIMEDOUT = -5016,   /* a deadline expired */
    CV_EINVAL = -5017,      /* invalid argument */
    CV_EAGAIN = -5018,      /* nothing can be done now; retry after an event */
    CV_EGOAWAY = -5019,     /* the connection is draining: no new streams */
    CV_EREFUSED = -5020,    /* the peer refused the stream (safe to retry) */
};

/* Returns a static, human-readable description of |code| (ours or libuv's). */
const char *cv_strerror(int code);

#endif
