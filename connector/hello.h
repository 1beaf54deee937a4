/*
 * hello.h - the built-in `hello_world` origin (PRODUCT.md section 5): answers every request on the
 * stream itself, without a socket, with a small page describing the request as the connector saw
 * it; and the `http_status:NNN` service, which answers every request with that status. One loop
 * thread.
 */
#ifndef CV_HELLO_H
#define CV_HELLO_H

struct connector;
struct mux_stream;
struct meta;

/* Answers stream |s| with the hello_world page. Returns 0, or a frame_code to refuse it. */
int hello_start(struct connector *c, struct mux_stream *s, const struct meta *md, int end);
/* Answers stream |s| with |status| and an empty body. Returns 0, or a frame_code. */
int status_start(struct connector *c, struct mux_stream *s, int status, int end);

#endif
