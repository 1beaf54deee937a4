/*
 * origin_tcp.h - streams to TCP services (ingress `tcp://`, `ssh://`, `rdp://`): the connector
 * connects to the rule's target and carries bytes both ways, with flow control and half-close.
 *
 * Two ways in:
 *  - REQUEST_TCP (PROTOCOL.md §8.6; `Upgrade: culvert-tcp` visitors and the edge's public TCP
 *    ports): RESPONSE 200 once connected, then the stream's DATA is the raw byte stream; END_STREAM
 *    in one direction is a shutdown(SHUT_WR) of that direction only.
 *  - REQUEST_UPGRADE (a WebSocket) whose rule is a TCP service: the connector terminates the
 *    WebSocket itself (RFC 6455, server role, common/ws.h): RESPONSE 101 with the accept key once
 *    connected, then binary frames carry the bytes; a Close frame from the visitor ends that
 *    direction, the target's end becomes our Close frame.
 *
 * The destination comes only from the ingress rule (RELIABILITY.md 5.1): nothing in the request
 * picks a host or a port. With originRequest.proxyProtocol v2 the target first receives a PROXY
 * protocol v2 header naming the visitor. A stream has no idle limit unless tcpIdleTimeout is set;
 * a half-closed one is reset after limits.stream_idle_ms without traffic (RELIABILITY.md §5.4,
 * T-23). One loop thread.
 */
#ifndef CV_ORIGIN_TCP_H
#define CV_ORIGIN_TCP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct connector;
struct ingress_ref;
struct ingress_rule;
struct mux_stream;
struct meta;

#define ORIGIN_TCP_WS_MAX_PAYLOAD (1024 * 1024) /* visitor frames larger than this: close 1009 */
#define ORIGIN_TCP_PROXY_V2_MAX (16 + 36)       /* the longest header we write (TCP over IPv6) */

/*
 * Serves stream |s| (request block |md|: REQUEST_TCP, or REQUEST_UPGRADE for a WebSocket; |end|
 * when the edge already ended its direction) with |rule|, whose service must be INGRESS_SVC_TCP.
 * On success (0) takes the caller's reference on |ing| (released when the stream ends) and the
 * stream; the outcome (200/101, or a RESET ORIGIN_UNREACHABLE / ORIGIN_TIMEOUT, or an HTTP error
 * for an invalid WebSocket handshake) follows from the loop. Else returns a frame_code to refuse
 * the stream (CODE_NO_SERVICE for a rule that is not a TCP service or a block type it does not
 * serve, CODE_REFUSED_STREAM when out of memory) and the caller keeps its reference.
 */
int origin_tcp_start(struct connector *c, struct ingress_ref *ing, const struct ingress_rule *rule,
                     struct mux_stream *s, const struct meta *md, int end);

/*
 * Writes a PROXY protocol v2 header (haproxy's proxy-protocol.txt §2.2) into |out| (|cap| bytes,
 * ORIGIN_TCP_PROXY_V2_MAX suffice): the PROXY command for TCP with source |client| (|client_len|
 * bytes of the `:client` pseudo-field, "192.0.2.1:51234" or "[2001:db8::1]:51234") and destination
 * |dst| (the target's address, AF_INET or AF_INET6). When one address is IPv4 and the other IPv6,
 * the IPv4 one is written IPv4-mapped and the family is TCP over IPv6. With |client| NULL, or not a
 * valid address, the LOCAL command without addresses. Returns the header length, or CV_EFULL
 * (|cap| too small) or CV_EINVAL (|dst| neither IPv4 nor IPv6 while a PROXY header was needed).
 */
ssize_t origin_tcp_proxy_v2(uint8_t *out, size_t cap, const char *client, size_t client_len,
                            const struct sockaddr *dst);

/*
 * Parses |text| (|len| bytes: "1.2.3.4:5" or "[v6]:5") into |ss| (AF_INET or AF_INET6 with the
 * port). Returns 0, or CV_EINVAL.
 */
int origin_tcp_parse_client(const char *text, size_t len, struct sockaddr_storage *ss);

#endif
