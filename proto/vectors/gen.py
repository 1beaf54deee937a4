#!/usr/bin/env python3
"""Generates the protocol test vectors in proto/vectors/ (see README.md there).

Usage (from the repository root or anywhere):
    python3 proto/vectors/gen.py            # rewrites proto/vectors/*.hex and proto/vectors/meta/*.hex
    python3 proto/vectors/gen.py --corpus   # also rewrites tests/fuzz/corpus/{frame,meta}/ from them

Every vector is written out byte by byte with a comment per field, so a reviewer can check it
against PROTOCOL.md without running anything. The corpus step reads the .hex files back (not the
data in this script), so the seeds are exactly what the unit tests decode.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# Frame types and flags (PROTOCOL.md §3.3).
DATA, HEADERS, CONTINUATION, RESET, WINDOW_UPDATE, PING, PONG, GOAWAY, REGISTER, REGISTERED, \
    DISPATCHED = range(11)
TYPE_NAMES = ["DATA", "HEADERS", "CONTINUATION", "RESET", "WINDOW_UPDATE", "PING", "PONG", "GOAWAY",
              "REGISTER", "REGISTERED", "DISPATCHED"]
END_STREAM = 0x1
END_HEADERS = 0x4

# Error codes (PROTOCOL.md §5).
NO_ERROR, PROTOCOL_ERROR, CANCEL, AUTH_FAILED = 0x00, 0x01, 0x08, 0x20

# Metadata block types (PROTOCOL.md §8.1).
REQUEST_HTTP, REQUEST_UPGRADE, REQUEST_TCP, RESPONSE, TRAILERS = 0x01, 0x02, 0x03, 0x10, 0x11
BLOCK_NAMES = {REQUEST_HTTP: "REQUEST_HTTP", REQUEST_UPGRADE: "REQUEST_UPGRADE",
               REQUEST_TCP: "REQUEST_TCP", RESPONSE: "RESPONSE", TRAILERS: "TRAILERS"}

# Settings in wire order (PROTOCOL.md §4.4): the defaults.
DEFAULT_SETTINGS = [262144, 16777216, 16384, 256, 65536]
SETTING_NAMES = ["initial_stream_window", "connection_window", "max_frame_size",
                 "max_concurrent_streams", "max_metadata_size"]

TUNNEL_ID = bytes.fromhex("6f1c2a8e4b3d4f6e9a7b1c2d3e4f5a6b")
SECRET = bytes(range(0xa0, 0xc0))
CONNECTOR_ID = bytes.fromhex("1f2e3d4c5b6a47988796a5b4c3d2e1f0")

# Chunks are (bytes, comment); a vector is a list of chunks.


def u8(v):
    return struct.pack(">B", v)


def u16(v):
    return struct.pack(">H", v)


def u24(v):
    return struct.pack(">I", v)[1:]


def u32(v):
    return struct.pack(">I", v)


def u64(v):
    return struct.pack(">Q", v)


def type_name(t):
    return TYPE_NAMES[t] if t < len(TYPE_NAMES) else "unknown type 0x%02x" % t


def flag_names(flags, t):
    names = []
    if flags & END_STREAM and t in (DATA, HEADERS):
        names.append("END_STREAM")
    if flags & END_HEADERS and t in (HEADERS, CONTINUATION):
        names.append("END_HEADERS")
    known = (END_STREAM if t in (DATA, HEADERS) else 0) | (END_HEADERS if t in (HEADERS, CONTINUATION) else 0)
    if flags & ~known:
        names.append("undefined 0x%02x" % (flags & ~known))
    return "|".join(names) if names else "none"


def hdr(length, t, flags, sid):
    """A 9-octet frame header chunk. |sid| may carry the reserved bit."""
    comment = "header: length %d, %s, flags %s, stream %d" % (
        length, type_name(t), flag_names(flags, t), sid & 0x7fffffff)
    if sid & 0x80000000:
        comment += " (reserved bit set)"
    return [(u24(length) + u8(t) + u8(flags) + u32(sid), comment)]


def frame(t, flags, sid, payload_chunks, length=None):
    """Header plus payload chunks; |length| overrides the computed length."""
    n = sum(len(b) for b, _ in payload_chunks)
    return hdr(n if length is None else length, t, flags, sid) + payload_chunks


def raw(b, comment):
    return [(b, comment)]


def settings_chunks(values):
    return [(u32(v), "%s %d" % (SETTING_NAMES[i], v)) for i, v in enumerate(values)]


def label_chunks(what, s, length=None):
    b = s if isinstance(s, bytes) else s.encode()
    n = len(b) if length is None else length
    out = [(u8(n), "%s length %d" % (what, n))]
    if b:
        out.append((b, "%s %s" % (what, ascii(b.decode("latin-1")))))
    return out


def register_payload(version="culvert-connector/0.1.0", region="eu-west-1", conn_index=2,
                     min_v=1, max_v=1, settings=None, reserved=b"\x00\x00\x00", ver_len=None,
                     reg_len=None, extra=b""):
    c = [(u16(min_v), "min version %d" % min_v), (u16(max_v), "max version %d" % max_v),
         (TUNNEL_ID, "tunnel id"), (SECRET[:16], "secret (32 octets)"), (SECRET[16:], ""),
         (CONNECTOR_ID, "connector id"), (u8(conn_index), "conn index %d" % conn_index),
         (reserved, "reserved (8 + 16 bits)")]
    c += settings_chunks(settings or DEFAULT_SETTINGS)
    c += label_chunks("software version", version, ver_len)
    c += label_chunks("region", region, reg_len)
    if extra:
        c.append((extra, "extra octets"))
    return c


def registered_payload(region="eu-west", name="edge-1", version=1, conn_id=0x0102030405060708,
                       heartbeat=5000, reserved=b"\x00\x00", reg_len=None, name_len=None):
    c = [(u16(version), "version %d" % version), (reserved, "reserved (16 bits)"),
         (u64(conn_id), "connection id 0x%016x" % conn_id)]
    c += settings_chunks(DEFAULT_SETTINGS)
    c.append((u32(heartbeat), "heartbeat interval %d ms" % heartbeat))
    c += label_chunks("edge region", region, reg_len)
    c += label_chunks("edge name", name, name_len)
    return c


def goaway_payload(last, code, retry, reason=b""):
    c = [(u32(last), "last stream id %d%s" % (last & 0x7fffffff,
                                                " (reserved bit set)" if last & 0x80000000 else "")),
         (u32(code), "error code 0x%02x" % code),
         (u32(retry), "retry after %s" % ("never" if retry == 0xffffffff else "%d ms" % retry))]
    if reason:
        c.append((reason, "reason %s" % ascii(reason.decode())))
    return c


def field_chunks(name, value, name_len=None, value_len=None):
    n = name if isinstance(name, bytes) else name.encode()
    v = value if isinstance(value, bytes) else value.encode()
    nl = len(n) if name_len is None else name_len
    vl = len(v) if value_len is None else value_len
    shown_n = n.decode("latin-1")
    shown_v = v.decode("latin-1")
    if len(shown_n) > 40:
        shown_n = "%s... (%d octets)" % (shown_n[:16], len(n))
    if len(shown_v) > 40:
        shown_v = "%s... (%d octets)" % (shown_v[:16], len(v))
    c = [(u16(nl) + u16(vl), "field: name length %d, value length %d" % (nl, vl))]
    if n:
        c.append((n, "name %s" % ascii(shown_n)))
    if v:
        c.append((v, "value %s" % ascii(shown_v)))
    return c


def block(btype, fields, count=None, extra=b""):
    """A metadata block (PROTOCOL.md §8.1) as chunks. |fields| is a list of (name, value)."""
    n = len(fields) if count is None else count
    c = [(u8(btype) + u16(n), "block: type %s, field count %d" % (
        BLOCK_NAMES.get(btype, "unknown 0x%02x" % btype), n))]
    for f in fields:
        c += field_chunks(*f)
    if extra:
        c.append((extra, "trailing octets"))
    return c


def block_bytes(chunks):
    return b"".join(b for b, _ in chunks)


REQUEST_FIELDS = [(":method", "GET"), (":scheme", "https"), (":authority", "example.com"),
                  (":path", "/index.html?q=1"), (":client", "192.0.2.1:51234"),
                  ("user-agent", "curl/7.88.1"), ("accept", "*/*")]
MINIMAL_REQUEST = [(":method", "GET"), (":scheme", "https"), (":authority", "example.com"),
                   (":path", "/")]


def split_chunks(chunks, sizes):
    """Splits the concatenated bytes of |chunks| into pieces of |sizes| (the rest in the last)."""
    data = block_bytes(chunks)
    pieces = []
    off = 0
    for s in sizes:
        pieces.append(data[off:off + s])
        off += s
    pieces.append(data[off:])
    return pieces


# ---- the vectors ------------------------------------------------------------------------------

VECTORS = []  # (subdir, name, headers dict, notes, chunks)


def vec(name, layer, expect, chunks, notes=(), subdir="", **extra):
    h = {"name": name, "layer": layer, "expect": expect}
    for k, v in extra.items():
        h[k.replace("_", "-")] = v
    VECTORS.append((subdir, name, h, list(notes), chunks))


def frame_ok(name, chunks, notes=(), **extra):
    vec(name, "frame", "ok", chunks, notes, **extra)


def frame_err(name, code, chunks, notes=(), **extra):
    vec(name, "frame", "error %s connection" % code, chunks, notes, **extra)


def mux(name, context, expect, chunks, notes=(), **extra):
    vec(name, "mux", expect, chunks, notes, context=context, **extra)


def meta(name, expect, chunks, notes=(), **extra):
    vec(name, "meta", expect, chunks, notes, subdir="meta", **extra)


def canonical(chunks):
    return block_bytes(chunks).hex(" ")


def build():
    pattern16k = bytes(i & 0xff for i in range(16384))

    # -- frame layer: valid frames of every type ----------------------------------------------
    frame_ok("data_end_stream", frame(DATA, END_STREAM, 1, raw(b"hello", "payload 'hello'")),
             ["PROTOCOL.md §7.4: DATA on stream 1 ending the direction."])
    frame_ok("data_no_end_stream", frame(DATA, 0, 1, raw(b"hello, world", "payload 'hello, world'")),
             ["PROTOCOL.md §7.4: DATA without END_STREAM."])
    frame_ok("data_empty_end_stream", frame(DATA, END_STREAM, 3, []),
             ["PROTOCOL.md §7.4: a DATA frame with Length 0 carries END_STREAM."])
    frame_ok("data_at_default_max_frame", frame(DATA, 0, 1, raw(pattern16k, "16384 octets 00 01 .. ff repeated")),
             ["PROTOCOL.md §3.2: Length equal to max_frame_size (16384) is accepted."])
    frame_ok("data_over_default_with_raised_max_frame",
             frame(DATA, 0, 1, raw(pattern16k + b"\x00", "16385 octets 00 01 .. ff repeated")),
             ["PROTOCOL.md §3.2: 16385 octets are fine for a receiver that announced 32768."],
             max_frame="32768")
    c = frame(DATA, END_STREAM, 0x80000001, raw(b"hi", "payload 'hi'"))
    frame_ok("data_reserved_bit_ignored", c,
             ["PROTOCOL.md §3.1: R is ignored on receipt (stream 1) and sent as zero."],
             reencode=canonical(frame(DATA, END_STREAM, 1, raw(b"hi", ""))))
    frame_ok("data_undefined_flags_ignored", frame(DATA, 0x20, 1, raw(b"x", "payload 'x'")),
             ["PROTOCOL.md §3.1: undefined flags are ignored on receipt (not an error)."])
    frame_ok("headers_request",
             frame(HEADERS, END_HEADERS | END_STREAM, 1, block(REQUEST_HTTP, REQUEST_FIELDS)),
             ["PROTOCOL.md §7.2, §8.1, §8.3: the edge opens stream 1 with a GET request block."])
    req = block(REQUEST_HTTP, REQUEST_FIELDS)
    first, second = split_chunks(req, [40])
    frame_ok("headers_continuation_split",
             frame(HEADERS, END_STREAM, 1, raw(first, "request block, octets 0..39")) +
             frame(CONTINUATION, END_HEADERS, 1, raw(second, "request block, octets 40..end")),
             ["PROTOCOL.md §8.2: the request block of headers_request split over HEADERS (no",
              "END_HEADERS) and one CONTINUATION (END_HEADERS). Two frames."])
    frame_ok("headers_response",
             frame(HEADERS, END_HEADERS, 1, block(RESPONSE, [(":status", "200"),
                                                             ("content-type", "text/plain"),
                                                             ("content-length", "5")])),
             ["PROTOCOL.md §8.3: the connector's final response block."])
    frame_ok("reset_cancel", frame(RESET, 0, 1, raw(u32(CANCEL), "error code CANCEL")),
             ["PROTOCOL.md §7.5: RESET, Length 4."])
    frame_ok("window_update_stream", frame(WINDOW_UPDATE, 0, 1, raw(u32(65536), "increment 65536")),
             ["PROTOCOL.md §9.3: WINDOW_UPDATE for stream 1."])
    frame_ok("window_update_connection",
             frame(WINDOW_UPDATE, 0, 0, raw(u32(1048576), "increment 1048576")),
             ["PROTOCOL.md §9.3: WINDOW_UPDATE on stream 0 raises the connection window."])
    frame_ok("window_update_reserved_bit_ignored",
             frame(WINDOW_UPDATE, 0, 0, raw(u32(0x80000400), "R set, increment 1024")),
             ["PROTOCOL.md §9.3: the reserved bit of the increment is ignored (increment 1024)."],
             reencode=canonical(frame(WINDOW_UPDATE, 0, 0, raw(u32(1024), ""))))
    frame_ok("ping", frame(PING, 0, 0, raw(bytes(range(1, 9)), "opaque")),
             ["PROTOCOL.md §10.1: PING, Length 8, stream 0."])
    frame_ok("pong", frame(PONG, 0, 0, raw(bytes(range(1, 9)), "opaque, as in the PING")),
             ["PROTOCOL.md §10.1: PONG echoes the PING's octets."])
    frame_ok("goaway_no_reason", frame(GOAWAY, 0, 0, goaway_payload(0, NO_ERROR, 0)),
             ["PROTOCOL.md §11.1: GOAWAY of the minimum Length 12."])
    frame_ok("goaway_reason",
             frame(GOAWAY, 0, 0, goaway_payload(7, NO_ERROR, 5000, b"edge shutting down")),
             ["PROTOCOL.md §11.1, §11.2: draining GOAWAY with a reason."])
    frame_ok("goaway_auth_failed",
             frame(GOAWAY, 0, 0, goaway_payload(0, AUTH_FAILED, 0xffffffff, b"authentication failed")),
             ["PROTOCOL.md §4.5: registration rejected, retry never."])
    frame_ok("goaway_max_reason",
             frame(GOAWAY, 0, 0, goaway_payload(0, PROTOCOL_ERROR, 0xffffffff, b"r" * 256)),
             ["PROTOCOL.md §11.1: Length 268 (a 256-octet reason) is the maximum."])
    frame_ok("goaway_reserved_bit_ignored",
             frame(GOAWAY, 0, 0, goaway_payload(0x80000003, NO_ERROR, 0)),
             ["PROTOCOL.md §11.1: the reserved bit of Last Stream Id is ignored (3)."],
             reencode=canonical(frame(GOAWAY, 0, 0, goaway_payload(3, NO_ERROR, 0))))
    frame_ok("register", frame(REGISTER, 0, 0, register_payload()),
             ["PROTOCOL.md §4.2: REGISTER, Length 94 + 23 + 9 = 126."])
    frame_ok("register_empty_labels", frame(REGISTER, 0, 0, register_payload(version="", region="")),
             ["PROTOCOL.md §4.2: empty version and region (\"no region\"): Length 94."])
    frame_ok("register_max_labels",
             frame(REGISTER, 0, 0, register_payload(version="v" * 64, region="r" * 64)),
             ["PROTOCOL.md §4.2: 64-octet labels, the maximum: Length 222."])
    frame_ok("register_reserved_ignored",
             frame(REGISTER, 0, 0, register_payload(reserved=b"\xff\xff\xff")),
             ["PROTOCOL.md §4.2: reserved octets are ignored on receipt and sent as zero."],
             reencode=canonical(frame(REGISTER, 0, 0, register_payload())))
    frame_ok("registered", frame(REGISTERED, 0, 0, registered_payload()),
             ["PROTOCOL.md §4.3: REGISTERED, Length 38 + 7 + 6 = 51."])
    frame_ok("registered_empty_labels",
             frame(REGISTERED, 0, 0, registered_payload(region="", name="")),
             ["PROTOCOL.md §4.3: empty edge region and name: Length 38."])
    frame_ok("dispatched", frame(DISPATCHED, 0, 1, []),
             ["PROTOCOL.md §7.7: DISPATCHED, Length 0, stream 1."])
    vec("unknown_type_ignored", "frame", "ignored",
        frame(0x0b, 0, 0, raw(b"future", "opaque payload")),
        ["PROTOCOL.md §3.5: an unknown type decodes and is skipped by the receiver."])
    vec("unknown_type_on_stream_ignored", "frame", "ignored",
        frame(0xff, 0x5a, 3, raw(b"\x00\x01\x02", "opaque payload")),
        ["PROTOCOL.md §3.5: unknown types may use any stream id and flags."])

    # -- frame layer: malformed ----------------------------------------------------------------
    frame_err("data_over_max_frame_header_only", "FRAME_SIZE_ERROR", hdr(16385, DATA, 0, 1),
              ["PROTOCOL.md §3.2: Length 16385 > 16384 fails as soon as the header is in;",
               "the payload is deliberately absent."])
    frame_err("length_field_max_header_only", "FRAME_SIZE_ERROR", hdr(0xffffff, DATA, 0, 1),
              ["PROTOCOL.md §3.2: the largest Length the field can carry, header only."])
    frame_err("data_over_raised_max_frame_header_only", "FRAME_SIZE_ERROR", hdr(32769, DATA, 0, 1),
              ["PROTOCOL.md §3.2: over a raised max_frame_size of 32768, header only."],
              max_frame="32768")
    frame_err("unknown_type_over_max_frame_header_only", "FRAME_SIZE_ERROR", hdr(16385, 0x0b, 0, 0),
              ["PROTOCOL.md §3.5: unknown types are skipped only after the Length check."])
    frame_err("reset_length_3", "FRAME_SIZE_ERROR", frame(RESET, 0, 1, raw(b"\x00\x00\x08", "3 octets")),
              ["PROTOCOL.md §3.4: RESET has Length 4."])
    frame_err("reset_length_5", "FRAME_SIZE_ERROR",
              frame(RESET, 0, 1, raw(b"\x00\x00\x00\x08\x00", "5 octets")),
              ["PROTOCOL.md §3.4: RESET has Length 4."])
    frame_err("ping_length_7", "FRAME_SIZE_ERROR", frame(PING, 0, 0, raw(bytes(range(1, 8)), "7 octets")),
              ["PROTOCOL.md §3.4: PING has Length 8."])
    frame_err("pong_length_9", "FRAME_SIZE_ERROR", frame(PONG, 0, 0, raw(bytes(range(1, 10)), "9 octets")),
              ["PROTOCOL.md §3.4: PONG has Length 8."])
    frame_err("window_update_length_5", "FRAME_SIZE_ERROR",
              frame(WINDOW_UPDATE, 0, 1, raw(b"\x00\x00\x04\x00\x00", "5 octets")),
              ["PROTOCOL.md §3.4: WINDOW_UPDATE has Length 4."])
    frame_err("window_update_length_3", "FRAME_SIZE_ERROR",
              frame(WINDOW_UPDATE, 0, 0, raw(b"\x00\x04\x00", "3 octets")),
              ["PROTOCOL.md §3.4: WINDOW_UPDATE has Length 4."])
    frame_err("dispatched_length_1", "FRAME_SIZE_ERROR", frame(DISPATCHED, 0, 1, raw(b"\x00", "1 octet")),
              ["PROTOCOL.md §3.4: DISPATCHED has Length 0."])
    frame_err("goaway_length_11", "FRAME_SIZE_ERROR",
              frame(GOAWAY, 0, 0, goaway_payload(0, NO_ERROR, 0)[:2] +
                    raw(b"\x00\x00\x00", "3 octets of retry after")),
              ["PROTOCOL.md §11.1: GOAWAY Length below 12."])
    frame_err("goaway_length_269", "FRAME_SIZE_ERROR",
              frame(GOAWAY, 0, 0, goaway_payload(0, NO_ERROR, 0, b"r" * 257)),
              ["PROTOCOL.md §11.1: GOAWAY Length above 268 (a 257-octet reason)."])
    reg = register_payload(version="", region="")
    frame_err("register_too_short", "FRAME_SIZE_ERROR",
              frame(REGISTER, 0, 0, reg[:-1]),
              ["PROTOCOL.md §4.2: Length 93, below the 94 octets of the fixed part."])
    frame_err("register_version_length_past_frame", "FRAME_SIZE_ERROR",
              frame(REGISTER, 0, 0, register_payload(version="v1", region="", ver_len=200)),
              ["PROTOCOL.md §4.2: Ver Len 200 runs past the frame."])
    frame_err("register_lengths_short_by_one", "FRAME_SIZE_ERROR",
              frame(REGISTER, 0, 0, register_payload(version="v1", region="eu", reg_len=3)),
              ["PROTOCOL.md §4.2: Reg Len says 3 but 2 octets follow: Length != 94 + Ver Len + Reg Len."])
    frame_err("register_lengths_trailing_octet", "FRAME_SIZE_ERROR",
              frame(REGISTER, 0, 0, register_payload(version="v1", region="eu", extra=b"\x00")),
              ["PROTOCOL.md §4.2: one octet more than 94 + Ver Len + Reg Len."])
    frame_err("register_version_too_long", "PROTOCOL_ERROR",
              frame(REGISTER, 0, 0, register_payload(version="v" * 65, region="")),
              ["PROTOCOL.md §4.2: a 65-octet software version (lengths consistent)."])
    frame_err("register_version_not_printable", "PROTOCOL_ERROR",
              frame(REGISTER, 0, 0, register_payload(version="culvert 0.1", region="")),
              ["PROTOCOL.md §4.2: software version with a space (0x20 is not in 0x21-0x7e)."])
    frame_err("register_region_bad_char", "PROTOCOL_ERROR",
              frame(REGISTER, 0, 0, register_payload(region="eu/west")),
              ["PROTOCOL.md §4.2: region label with '/', outside [A-Za-z0-9._-]."])
    frame_err("registered_too_short", "FRAME_SIZE_ERROR",
              frame(REGISTERED, 0, 0, registered_payload(region="", name="")[:-1]),
              ["PROTOCOL.md §4.3: Length 37, below the 38 octets of the fixed part."])
    frame_err("registered_lengths_inconsistent", "FRAME_SIZE_ERROR",
              frame(REGISTERED, 0, 0, registered_payload(name_len=7)),
              ["PROTOCOL.md §4.3: Name Len says 7 but 6 octets follow."])
    frame_err("registered_region_bad_char", "PROTOCOL_ERROR",
              frame(REGISTERED, 0, 0, registered_payload(region="eu west")),
              ["PROTOCOL.md §4.2, §4.3: region labels are [A-Za-z0-9._-] (the edge's too)."])
    for t, payload in ((DATA, raw(b"hello", "payload 'hello'")),
                       (HEADERS, block(REQUEST_HTTP, MINIMAL_REQUEST)),
                       (CONTINUATION, raw(b"\x00", "block fragment")),
                       (RESET, raw(u32(CANCEL), "error code CANCEL")),
                       (DISPATCHED, [])):
        flags = END_HEADERS if t in (HEADERS, CONTINUATION) else 0
        frame_err("%s_stream_zero" % TYPE_NAMES[t].lower(), "PROTOCOL_ERROR",
                  frame(t, flags, 0, payload),
                  ["PROTOCOL.md §3.3, §3.4: %s requires a non-zero stream id." % TYPE_NAMES[t]])
    frame_err("data_stream_reserved_bit_only", "PROTOCOL_ERROR",
              frame(DATA, 0, 0x80000000, raw(b"x", "payload 'x'")),
              ["PROTOCOL.md §3.1, §3.4: only R set: the stream id is 0 once R is ignored."])
    for t, payload in ((PING, raw(bytes(8), "opaque")), (PONG, raw(bytes(8), "opaque")),
                       (GOAWAY, goaway_payload(0, NO_ERROR, 0)),
                       (REGISTER, register_payload()), (REGISTERED, registered_payload())):
        frame_err("%s_stream_nonzero" % TYPE_NAMES[t].lower(), "PROTOCOL_ERROR",
                  frame(t, 0, 1, payload),
                  ["PROTOCOL.md §3.3, §3.4: %s requires stream id 0." % TYPE_NAMES[t]])

    # -- mux layer: frames that decode but that the mux must reject -------------------------
    OS, RG, PF = "open-stream", "registered", "preface"
    mux("window_update_stream_zero_increment", OS, "error PROTOCOL_ERROR stream",
        frame(WINDOW_UPDATE, 0, 1, raw(u32(0), "increment 0")),
        ["PROTOCOL.md §9.3: increment 0 on a stream is a stream error."])
    mux("window_update_connection_zero_increment", OS, "error PROTOCOL_ERROR connection",
        frame(WINDOW_UPDATE, 0, 0, raw(u32(0), "increment 0")),
        ["PROTOCOL.md §9.3: increment 0 on stream 0 is a connection error."])
    mux("window_update_stream_overflow", OS, "error FLOW_CONTROL_ERROR stream",
        frame(WINDOW_UPDATE, 0, 1, raw(u32(0x7fffffff), "increment 2^31-1")),
        ["PROTOCOL.md §9.3: the stream send window (>= 1) plus 2^31-1 exceeds 2^31-1."])
    mux("window_update_connection_overflow", OS, "error FLOW_CONTROL_ERROR connection",
        frame(WINDOW_UPDATE, 0, 0, raw(u32(0x7fffffff), "increment 2^31-1")),
        ["PROTOCOL.md §9.3: the connection send window (>= 65535) plus 2^31-1 exceeds 2^31-1."])
    mux("data_within_stream_window", OS, "ok",
        frame(DATA, 0, 1, raw(b"d" * 64, "64 octets 'd'")),
        ["PROTOCOL.md §9.2: exactly the receiver's stream window (64) is allowed."],
        stream_window="64")
    mux("data_over_stream_window", OS, "error FLOW_CONTROL_ERROR stream",
        frame(DATA, 0, 1, raw(b"d" * 65, "65 octets 'd'")),
        ["PROTOCOL.md §9.2: one octet more than the receiver's stream window (64)."],
        stream_window="64")
    mux("data_on_open_stream", OS, "ok",
        frame(DATA, END_STREAM, 1, raw(b"hello", "payload 'hello'")),
        ["PROTOCOL.md §7.4: body and END_STREAM on the open stream."])
    mux("data_after_end_stream", OS, "error STREAM_CLOSED stream",
        frame(DATA, END_STREAM, 1, raw(b"a", "payload 'a'")) + frame(DATA, 0, 1, raw(b"b", "payload 'b'")),
        ["PROTOCOL.md §7.3: DATA on a half-closed (remote) stream."])
    mux("reset_on_open_stream", OS, "ok", frame(RESET, 0, 1, raw(u32(CANCEL), "error code CANCEL")),
        ["PROTOCOL.md §7.5: the peer resets the open stream."])
    mux("unknown_type_on_open_stream", OS, "ignored",
        frame(0x0b, 0, 1, raw(b"future", "opaque payload")),
        ["PROTOCOL.md §3.5: unknown types are skipped."])
    mux("goaway_repeated_same_last_id", RG, "ok",
        frame(GOAWAY, 0, 0, goaway_payload(0, 0, 0, b"draining")) +
        frame(GOAWAY, 0, 0, goaway_payload(0, 0, 0, b"still draining")),
        ["PROTOCOL.md §11.3: a side may send several GOAWAYs with the same Last Stream Id."])
    mux("goaway_last_id_increases", RG, "error PROTOCOL_ERROR connection",
        frame(GOAWAY, 0, 0, goaway_payload(0, 0, 0, b"draining")) +
        frame(GOAWAY, 0, 0, goaway_payload(2, 0, 0, b"draining")),
        ["PROTOCOL.md §11.3: Last Stream Id must not increase between GOAWAYs."])
    mux("ping_when_registered", RG, "ok", frame(PING, 0, 0, raw(bytes(range(1, 9)), "opaque")),
        ["PROTOCOL.md §10.1: answered with a PONG carrying the same octets."])
    mux("continuation_without_headers", OS, "error PROTOCOL_ERROR connection",
        frame(CONTINUATION, END_HEADERS, 1, block(TRAILERS, [("x-checksum", "abc")])),
        ["PROTOCOL.md §8.1, §8.2: a CONTINUATION only follows a HEADERS without END_HEADERS."])
    first, second = split_chunks(block(REQUEST_HTTP, MINIMAL_REQUEST), [20])
    mux("header_block_interrupted_by_ping", RG, "error PROTOCOL_ERROR connection",
        frame(HEADERS, END_STREAM, 1, raw(first, "request block, first 20 octets")) +
        frame(PING, 0, 0, raw(bytes(8), "opaque")),
        ["PROTOCOL.md §8.2: after a HEADERS without END_HEADERS any frame but its CONTINUATION."])
    mux("header_block_interrupted_by_other_stream", RG, "error PROTOCOL_ERROR connection",
        frame(HEADERS, END_STREAM, 1, raw(first, "request block, first 20 octets")) +
        frame(CONTINUATION, END_HEADERS, 3, raw(second, "rest of the block, on stream 3")),
        ["PROTOCOL.md §8.2: the CONTINUATION must be on the same stream."])
    mux("header_block_interrupted_by_unknown_type", RG, "error PROTOCOL_ERROR connection",
        frame(HEADERS, END_STREAM, 1, raw(first, "request block, first 20 octets")) +
        frame(0x0b, 0, 0, raw(b"x", "opaque payload")),
        ["PROTOCOL.md §3.5, §8.2: unknown types are not skipped while a CONTINUATION is expected."])
    mux("headers_empty_without_end_headers", RG, "error PROTOCOL_ERROR connection",
        frame(HEADERS, 0, 1, []),
        ["PROTOCOL.md §8.2: HEADERS with Length 0 and without END_HEADERS."])
    mux("continuation_empty_without_end_headers", RG, "error PROTOCOL_ERROR connection",
        frame(HEADERS, END_STREAM, 1, raw(first, "request block, first 20 octets")) +
        frame(CONTINUATION, 0, 1, []),
        ["PROTOCOL.md §8.2: CONTINUATION with Length 0 and without END_HEADERS."])
    req = block(REQUEST_HTTP, MINIMAL_REQUEST)
    pieces = split_chunks(req, [8] * 8)  # HEADERS + 8 CONTINUATIONs
    c = frame(HEADERS, END_STREAM, 1, raw(pieces[0], "request block, first %d octets" % len(pieces[0])))
    for i, p in enumerate(pieces[1:]):
        last = i == len(pieces) - 2
        c += frame(CONTINUATION, END_HEADERS if last else 0, 1,
                   raw(p, "request block, continuation %d" % (i + 1)))
    mux("continuation_eight_allowed", RG, "ok", c,
        ["PROTOCOL.md §8.2: a block over HEADERS and 8 CONTINUATIONs, the most allowed."])
    pieces = split_chunks(req, [7] * 9)  # HEADERS + 9 CONTINUATIONs
    c = frame(HEADERS, END_STREAM, 1, raw(pieces[0], "request block, first %d octets" % len(pieces[0])))
    for i, p in enumerate(pieces[1:]):
        last = i == len(pieces) - 2
        c += frame(CONTINUATION, END_HEADERS if last else 0, 1,
                   raw(p, "request block, continuation %d" % (i + 1)))
    mux("continuation_ninth", RG, "error ENHANCE_YOUR_CALM connection", c,
        ["PROTOCOL.md §8.2, §12: a ninth CONTINUATION in one block."])
    mux("data_on_even_stream", OS, "error PROTOCOL_ERROR connection",
        frame(DATA, 0, 2, raw(b"hello", "payload 'hello'")),
        ["PROTOCOL.md §7.1, §7.3: even ids are connector-initiated, which version 1 does not use;",
         "stream 2 was never opened."])
    mux("data_on_idle_odd_stream", OS, "error PROTOCOL_ERROR connection",
        frame(DATA, 0, 5, raw(b"hello", "payload 'hello'")),
        ["PROTOCOL.md §7.3: a frame other than HEADERS for an odd id greater than any opened."])
    mux("headers_new_even_stream", RG, "error PROTOCOL_ERROR connection",
        frame(HEADERS, END_HEADERS | END_STREAM, 2, block(REQUEST_HTTP, MINIMAL_REQUEST)),
        ["PROTOCOL.md §7.1: a HEADERS frame on a new even id."])
    mux("headers_stream_id_decreasing", RG, "error PROTOCOL_ERROR connection",
        frame(HEADERS, END_HEADERS | END_STREAM, 5, block(REQUEST_HTTP, MINIMAL_REQUEST)) +
        frame(HEADERS, END_HEADERS | END_STREAM, 3, block(REQUEST_HTTP, MINIMAL_REQUEST)),
        ["PROTOCOL.md §7.1: stream 5 opens; a new odd id 3 is not greater than 5."])
    mux("metadata_cr_in_value", RG, "error PROTOCOL_ERROR stream",
        frame(HEADERS, END_HEADERS | END_STREAM, 1,
              block(REQUEST_HTTP, MINIMAL_REQUEST + [("x-test", "a\rSet-Cookie: b")])),
        ["PROTOCOL.md §8.3: a value with CR is a stream error (RESET stream 1)."])
    mux("metadata_trailing_octet", RG, "error PROTOCOL_ERROR stream",
        frame(HEADERS, END_HEADERS | END_STREAM, 1,
              block(REQUEST_HTTP, MINIMAL_REQUEST, extra=b"\x00")),
        ["PROTOCOL.md §8.1: an octet after the last field is a stream error."])
    many = MINIMAL_REQUEST + [("x-f", "%d" % i) for i in range(125)]
    mux("metadata_too_many_fields", RG, "error METADATA_TOO_LARGE stream",
        frame(HEADERS, END_HEADERS | END_STREAM, 1, block(REQUEST_HTTP, many)),
        ["PROTOCOL.md §8.1: 129 fields (4 pseudo + 125 regular), over the limit of 128."])
    preface = raw(b"CVTUNNEL", "preface 'CVTUNNEL'")
    mux("preface_register", PF, "ok", preface + frame(REGISTER, 0, 0, register_payload()),
        ["PROTOCOL.md §4.1, §4.2: the preface and a valid REGISTER."])
    mux("preface_bad_magic", PF, "close", raw(b"CVTUNNEX", "not the preface") +
        frame(REGISTER, 0, 0, register_payload()),
        ["PROTOCOL.md §4.1: first 8 octets differ: close without a GOAWAY."])
    mux("preface_first_frame_not_register", PF, "error PROTOCOL_ERROR connection",
        preface + frame(PING, 0, 0, raw(bytes(8), "opaque")),
        ["PROTOCOL.md §4.1: the first frame after the preface must be REGISTER."])
    bad = list(DEFAULT_SETTINGS)
    bad[2] = 1024
    mux("preface_register_settings_out_of_range", PF, "error PROTOCOL_ERROR connection",
        preface + frame(REGISTER, 0, 0, register_payload(settings=bad)),
        ["PROTOCOL.md §4.4, §4.5: max_frame_size 1024 is below 16384."])

    # -- metadata blocks ------------------------------------------------------------------------
    ok = "ok"
    pe = "error PROTOCOL_ERROR stream"
    tl = "error METADATA_TOO_LARGE stream"
    meta("request_http", ok, block(REQUEST_HTTP, REQUEST_FIELDS),
         ["PROTOCOL.md §8.3: the four request pseudo-fields in order, :client, regular fields."])
    meta("request_http_minimal", ok, block(REQUEST_HTTP, MINIMAL_REQUEST),
         ["PROTOCOL.md §8.3: only the required pseudo-fields."])
    meta("request_upgrade", ok, block(REQUEST_UPGRADE, [
        (":method", "GET"), (":scheme", "http"), (":authority", "chat.example.com"), (":path", "/ws"),
        ("upgrade", "websocket"), ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13")]), ["PROTOCOL.md §8.5: a WebSocket upgrade request."])
    meta("request_tcp", ok, block(REQUEST_TCP, [(":authority", "ssh.example.com")]),
         ["PROTOCOL.md §8.3: REQUEST_TCP with :authority only."])
    meta("request_tcp_client_first", ok, block(REQUEST_TCP, [(":client", "[2001:db8::1]:51234"),
                                                            (":authority", "ssh.example.com")]),
         ["PROTOCOL.md §8.3: REQUEST_TCP fixes no order for its two pseudo-fields."])
    meta("response_200", ok, block(RESPONSE, [(":status", "200"), ("content-type", "text/plain"),
                                              ("content-length", "5")]),
         ["PROTOCOL.md §8.3: a final response."])
    meta("response_100_interim", ok, block(RESPONSE, [(":status", "100")]),
         ["PROTOCOL.md §8.1, §8.3: 100, the lowest status."])
    meta("response_599", ok, block(RESPONSE, [(":status", "599")]),
         ["PROTOCOL.md §8.3: 599, the highest status."])
    meta("response_101_upgrade", ok, block(RESPONSE, [
        (":status", "101"), ("upgrade", "websocket"),
        ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")]), ["PROTOCOL.md §8.5."])
    meta("response_repeated_and_empty_fields", ok, block(RESPONSE, [
        (":status", "204"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("x-empty", "")]),
         ["PROTOCOL.md §8.3: names repeat, case is preserved, values may be empty."])
    meta("response_value_tab_and_obs_text", ok, block(RESPONSE, [
        (":status", "200"), ("x-text", b"a\tb \xe2\x9c\x93")]),
         ["PROTOCOL.md §8.3: only CR, LF and NUL are excluded from values."])
    meta("response_pseudo_name_case_insensitive", ok, block(RESPONSE, [(":Status", "200")]),
         ["PROTOCOL.md §8.3: names, pseudo-field names included, compare case-insensitively."])
    meta("trailers", ok, block(TRAILERS, [("x-checksum", "abc")]),
         ["PROTOCOL.md §8.1: trailers carry no pseudo-fields."])
    meta("trailers_empty", ok, block(TRAILERS, []), ["PROTOCOL.md §8.1: Field Count 0."])
    meta("name_tchar_all", ok, block(TRAILERS, [("!#$%&'*+-.^_`|~09AZaz", "v")]),
         ["PROTOCOL.md §8.3: every tchar class in one name."])
    meta("name_256", ok, block(TRAILERS, [("n" * 256, "v")]),
         ["PROTOCOL.md §8.3: a 256-octet name, the maximum."])
    meta("value_16384", ok, block(TRAILERS, [("x", "v" * 16384)]),
         ["PROTOCOL.md §8.3: a 16384-octet value, the maximum."])
    meta("fields_128", ok, block(RESPONSE, [(":status", "200")] +
                                 [("x-f", "%d" % i) for i in range(127)]),
         ["PROTOCOL.md §8.1: 128 fields, the maximum."])
    filler = 4096 - 3 - 4 - len(":status") - 3 - 4 - 1
    meta("size_at_max", ok, block(RESPONSE, [(":status", "200"), ("x", "v" * filler)]),
         ["PROTOCOL.md §8.1: a block of exactly max_metadata_size (4096) octets."], max_size="4096")
    meta("size_over_max", tl, block(RESPONSE, [(":status", "200"), ("x", "v" * (filler + 1))]),
         ["PROTOCOL.md §8.1: 4097 octets against a max_metadata_size of 4096."], max_size="4096")
    meta("fields_129", tl, block(RESPONSE, [(":status", "200")] +
                                 [("x-f", "%d" % i) for i in range(128)]),
         ["PROTOCOL.md §8.1: 129 fields."])
    meta("field_count_over_limit_truncated", tl, raw(u8(RESPONSE) + u16(0xffff),
                                                     "block: type RESPONSE, field count 65535"),
         ["PROTOCOL.md §8.1: the count alone is over the limit; that is reported first."])
    meta("fields_over_lowered_limit", tl, block(RESPONSE, [(":status", "200")] +
                                                [("x-f", "%d" % i) for i in range(4)]),
         ["PROTOCOL.md §8.1: 5 fields against a receiver limit of 4."], max_fields="4")
    meta("empty_block", pe, [], ["PROTOCOL.md §8.1: no block header."])
    meta("block_header_truncated", pe, raw(u8(RESPONSE) + b"\x00", "2 octets of the block header"),
         ["PROTOCOL.md §8.1: the block header has 3 octets."])
    meta("unknown_block_type", pe, block(0x04, [("x", "y")]),
         ["PROTOCOL.md §8.1: block type 0x04 is not defined."])
    meta("field_header_truncated", pe,
         block(TRAILERS, [("x", "y")], count=2) + raw(b"\x00\x01", "2 octets of a field header"),
         ["PROTOCOL.md §8.1: a field header runs past the block."])
    meta("field_value_past_end", pe, block(TRAILERS, [("x", "short")], count=1)[:1] +
         field_chunks("x", "short", value_len=10),
         ["PROTOCOL.md §8.1: Value Len 10 with 5 octets left."])
    meta("count_more_than_fields", pe, block(TRAILERS, [("x", "y")], count=2),
         ["PROTOCOL.md §8.1: Field Count 2 with one field present."])
    meta("count_fewer_than_fields", pe, block(TRAILERS, [("x", "y"), ("z", "w")], count=1),
         ["PROTOCOL.md §8.1: Field Count 1 with two fields: trailing octets."])
    meta("trailing_octet", pe, block(RESPONSE, [(":status", "200")], extra=b"\x00"),
         ["PROTOCOL.md §8.1: one octet after the last field."])
    meta("name_empty", pe, block(TRAILERS, [("", "v")]), ["PROTOCOL.md §8.3: names are 1..256 octets."])
    meta("name_257", pe, block(TRAILERS, [("n" * 257, "v")]), ["PROTOCOL.md §8.3: names are 1..256 octets."])
    meta("name_with_space", pe, block(TRAILERS, [("x y", "v")]), ["PROTOCOL.md §8.3: space is not a tchar."])
    meta("name_with_colon_inside", pe, block(TRAILERS, [("x:y", "v")]),
         ["PROTOCOL.md §8.3: ':' is not a tchar."])
    meta("name_non_ascii", pe, block(TRAILERS, [(b"caf\xc3\xa9", "v")]),
         ["PROTOCOL.md §8.3: names are ASCII tchar."])
    meta("value_16385", pe, block(TRAILERS, [("x", "v" * 16385)]),
         ["PROTOCOL.md §8.3: values are 0..16384 octets."])
    meta("value_with_cr", pe, block(RESPONSE, [(":status", "200"), ("x", "a\rb")]),
         ["PROTOCOL.md §8.3: CR in a value."])
    meta("value_with_lf", pe, block(RESPONSE, [(":status", "200"), ("x", "a\nSet-Cookie: evil")]),
         ["PROTOCOL.md §8.3: LF in a value (response splitting)."])
    meta("value_with_nul", pe, block(RESPONSE, [(":status", "200"), ("x", "a\0b")]),
         ["PROTOCOL.md §8.3: NUL in a value."])
    meta("pseudo_after_regular", pe, block(RESPONSE, [("content-type", "text/plain"), (":status", "200")]),
         ["PROTOCOL.md §8.3: pseudo-fields come before all other fields."])
    meta("pseudo_repeated", pe, block(RESPONSE, [(":status", "200"), (":status", "204")]),
         ["PROTOCOL.md §8.3: each pseudo-field at most once."])
    meta("pseudo_unknown", pe, block(REQUEST_HTTP, MINIMAL_REQUEST + [(":protocol", "websocket")]),
         ["PROTOCOL.md §8.3: only the listed pseudo-fields."])
    meta("pseudo_bare_colon", pe, block(TRAILERS, [(":", "v")]),
         ["PROTOCOL.md §8.3: ':' alone is no pseudo-field."])
    meta("request_missing_path", pe, block(REQUEST_HTTP, MINIMAL_REQUEST[:3]),
         ["PROTOCOL.md §8.3: :path is required."])
    meta("request_order_swapped", pe, block(REQUEST_HTTP, [MINIMAL_REQUEST[1], MINIMAL_REQUEST[0]] +
                                           MINIMAL_REQUEST[2:]),
         ["PROTOCOL.md §8.3: :method :scheme :authority :path, in this order."])
    meta("request_client_before_path", pe, block(REQUEST_HTTP, MINIMAL_REQUEST[:3] +
                                                [(":client", "192.0.2.1:1"), MINIMAL_REQUEST[3]]),
         ["PROTOCOL.md §8.3: the first four fields are the required ones."])
    meta("request_with_status", pe, block(REQUEST_HTTP, MINIMAL_REQUEST + [(":status", "200")]),
         ["PROTOCOL.md §8.3: :status is a response pseudo-field."])
    meta("request_scheme_ftp", pe, block(REQUEST_HTTP, [MINIMAL_REQUEST[0], (":scheme", "ftp")] +
                                        MINIMAL_REQUEST[2:]),
         ["PROTOCOL.md §8.3: :scheme is https or http."])
    meta("request_scheme_uppercase", pe, block(REQUEST_HTTP, [MINIMAL_REQUEST[0], (":scheme", "HTTPS")] +
                                              MINIMAL_REQUEST[2:]),
         ["PROTOCOL.md §8.3: :scheme is exactly `https` or `http`."])
    meta("request_path_relative", pe, block(REQUEST_HTTP, MINIMAL_REQUEST[:3] + [(":path", "index.html")]),
         ["PROTOCOL.md §8.3: :path is origin-form, starting with /."])
    meta("request_path_empty", pe, block(REQUEST_HTTP, MINIMAL_REQUEST[:3] + [(":path", "")]),
         ["PROTOCOL.md §8.3: :path is origin-form, starting with /."])
    meta("request_method_not_token", pe, block(REQUEST_HTTP, [(":method", "GE T")] + MINIMAL_REQUEST[1:]),
         ["PROTOCOL.md §8.3: :method is an RFC 9110 token."])
    meta("request_method_empty", pe, block(REQUEST_HTTP, [(":method", "")] + MINIMAL_REQUEST[1:]),
         ["PROTOCOL.md §8.3: :method is an RFC 9110 token (not empty)."])
    meta("request_authority_empty", pe, block(REQUEST_HTTP, MINIMAL_REQUEST[:2] + [(":authority", "")] +
                                             MINIMAL_REQUEST[3:]),
         ["PROTOCOL.md §8.3: :authority names the host."])
    meta("upgrade_missing_method", pe, block(REQUEST_UPGRADE, MINIMAL_REQUEST[1:]),
         ["PROTOCOL.md §8.3: REQUEST_UPGRADE has the same required pseudo-fields."])
    meta("request_tcp_missing_authority", pe, block(REQUEST_TCP, [(":client", "192.0.2.1:1")]),
         ["PROTOCOL.md §8.3: REQUEST_TCP requires :authority."])
    meta("request_tcp_with_method", pe, block(REQUEST_TCP, [(":authority", "ssh.example.com"),
                                                            (":method", "GET")]),
         ["PROTOCOL.md §8.3: REQUEST_TCP carries :authority and :client only."])
    meta("response_missing_status", pe, block(RESPONSE, [("content-type", "text/plain")]),
         ["PROTOCOL.md §8.3: :status is required."])
    for st, why in (("099", "below 100"), ("600", "above 599"), ("20", "two digits"),
                    ("2000", "four digits"), ("2x0", "not digits"), ("+20", "a sign")):
        meta("response_status_%s" % st.replace("+", "plus"), pe, block(RESPONSE, [(":status", st)]),
             ["PROTOCOL.md §8.3: :status %r: %s." % (st, why)])
    meta("response_with_path", pe, block(RESPONSE, [(":status", "200"), (":path", "/")]),
         ["PROTOCOL.md §8.3: :path is a request pseudo-field."])
    meta("trailers_with_pseudo", pe, block(TRAILERS, [(":status", "200")]),
         ["PROTOCOL.md §8.3: trailers carry no pseudo-fields."])


# ---- output ---------------------------------------------------------------------------------

HEADER_ORDER = ["name", "layer", "expect", "max-frame", "context", "stream-window", "max-size",
                "max-fields", "reencode"]


def render(h, notes, chunks):
    lines = []
    for k in HEADER_ORDER:
        if k in h:
            lines.append("# %s: %s" % (k, h[k]))
    for n in notes:
        lines.append("# note: %s" % n)
    for b, comment in chunks:
        if not b:
            continue
        for i in range(0, len(b), 16):
            text = b[i:i + 16].hex(" ")
            if i == 0 and comment:
                text = "%-48s # %s" % (text, comment)
            lines.append(text.rstrip())
    if not any(b for b, _ in chunks):
        lines.append("# (no octets)")
    return "\n".join(lines) + "\n"


def strip_hex(text):
    out = bytearray()
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        out += bytes.fromhex("".join(line.split()))
    return bytes(out)


def write_vectors():
    for sub in ("", "meta"):
        d = os.path.join(HERE, sub)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.endswith(".hex"):
                os.unlink(os.path.join(d, f))
    names = set()
    for sub, name, h, notes, chunks in VECTORS:
        key = (sub, name)
        if key in names:
            raise SystemExit("duplicate vector %s/%s" % key)
        names.add(key)
        with open(os.path.join(HERE, sub, name + ".hex"), "w") as f:
            f.write(render(h, notes, chunks))
    print("wrote %d vectors" % len(VECTORS))


def write_corpus():
    for sub, target in (("", "frame"), ("meta", "meta")):
        src = os.path.join(HERE, sub)
        dst = os.path.join(ROOT, "tests", "fuzz", "corpus", target)
        os.makedirs(dst, exist_ok=True)
        for f in os.listdir(dst):
            os.unlink(os.path.join(dst, f))
        count = 0
        for f in sorted(os.listdir(src)):
            if not f.endswith(".hex"):
                continue
            with open(os.path.join(src, f)) as fh:
                data = strip_hex(fh.read())
            with open(os.path.join(dst, f[:-4]), "wb") as out:
                out.write(data)
            count += 1
        print("wrote %d seeds to %s" % (count, os.path.relpath(dst, ROOT)))


def main():
    build()
    write_vectors()
    if "--corpus" in sys.argv[1:]:
        write_corpus()


if __name__ == "__main__":
    main()
