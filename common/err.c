/*
 * err.c - names for Culvert's error codes; libuv's codes are passed to uv_strerror().
 */
#include "err.h"

#include <uv.h>

const char *cv_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case CV_ENOMEM:
        return "out of memory";
    case CV_EFULL:
        return "buffer full";
    case CV_EPROTO:
        return "protocol error";
    case CV_EFRAMESIZE:
        return "bad frame size";
    case CV_EFLOW:
        return "flow-control error";
    case CV_ECLOSED:
        return "closed";
    case CV_ELIMIT:
        return "limit reached";
    case CV_EAUTH:
        return "authentication failed";
    case CV_EVERSION:
        return "unsupported protocol version";
    case CV_ECONFIG:
        return "invalid configuration";
    case CV_EPARSE:
        return "malformed input";
    case CV_ETLS:
        return "TLS error";
    case CV_ENOTFOUND:
        return "not found";
    case CV_EEXIST:
        return "already exists";
    case CV_ECALM:
        return "flood limit tripped";
    case CV_ETIMEDOUT:
        return "timed out";
    case CV_EINVAL:
        return "invalid argument";
    case CV_EAGAIN:
        return "try again";
    case CV_EGOAWAY:
        return "connection is going away";
    case CV_EREFUSED:
        return "stream refused";
    default:
        break;
    }
    if (code < 0 && code > -5000)
        return uv_strerror(code);
    return "unknown error";
}
