/*
 * yaml.h - configuration files as an immutable node tree with locations, and getters that turn
 * values into typed results or located errors.
 *
 * The loader runs libyaml's event parser over a whole file (or string) and builds a tree of scalars,
 * sequences and mappings; every node keeps the file name, line and column (1-based) where it starts.
 * It enforces RELIABILITY.md §2.7 and §10: at most config_max_bytes (1 MiB), nesting at most
 * config_max_depth (32) collections, at most config_max_nodes (10 000) nodes, one document, no
 * anchors or aliases (no billion laughs), no tags but the YAML core ones (!!str, !!int, !!float,
 * !!bool, !!null, !!seq, !!map, and "!"), scalar mapping keys only, and no duplicate keys.
 *
 * Every error is one line, "file:line:col: message" (or "file: message" when there is no position),
 * for example `config.yml:14:7: ingress[2].hostname: "*" is only allowed as the first label`. The
 * schema code (edge_config.c, connector_config.c) walks the tree with the getters below and passes
 * the key path text ("ingress[2].hostname") that the message should name.
 *
 * Names avoid libyaml's own symbols (yaml_parser_*, yaml_document_*, yaml_free, ...), which share the
 * yaml_ prefix. Nodes are owned by their yaml_doc and valid until yaml_doc_free(). Single-threaded
 * (one document per call); no global state.
 */
#ifndef CV_YAML_H
#define CV_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hostname.h"
#include "limits.h"

struct yaml_doc;
struct yaml_node;

enum yaml_kind {
    YAML_KIND_SCALAR,
    YAML_KIND_SEQUENCE,
    YAML_KIND_MAPPING,
};

#define YAML_ERROR_MAX 512

/* One error message, "file:line:col: message", always NUL-terminated (truncated if needed). */
struct yaml_error {
    char msg[YAML_ERROR_MAX];
};

/* ---- loading ------------------------------------------------------------------------------ */

/*
 * Reads and parses the file at |path| (the name used in messages). |lim| gives config_max_bytes,
 * config_max_depth and config_max_nodes; NULL means the defaults of limits_init(). On success returns
 * 0 and sets *|out| to a new document (free with yaml_doc_free). On failure returns a negative code,
 * fills |err| and leaves *|out| NULL:
 *   -errno (UV_ENOENT, UV_EACCES, ...)  the file cannot be opened or read;
 *   CV_EPARSE   YAML syntax, a second document, an anchor/alias, a bad tag, a non-scalar key, a
 *               duplicate key (the message names both lines);
 *   CV_ELIMIT   the file is too big, too deep or has too many nodes;
 *   CV_ENOMEM   out of memory.
 */
int yaml_load_file(const char *path, const struct cv_limits *lim, struct yaml_doc **out,
                   struct yaml_error *err);

/* Like yaml_load_file, from the |n| bytes at |p| (borrowed; need not be NUL-terminated), named
 * |name| in messages. Never returns an errno code. */
int yaml_load_string(const char *p, size_t n, const char *name, const struct cv_limits *lim,
                     struct yaml_doc **out, struct yaml_error *err);

/* Frees |d| and every node in it (NULL is fine). */
void yaml_doc_free(struct yaml_doc *d);

/* The root node, or NULL when the file holds no document (empty, or only comments). */
const struct yaml_node *yaml_doc_root(const struct yaml_doc *d);

/* ---- nodes -------------------------------------------------------------------------------- */

enum yaml_kind yaml_node_kind(const struct yaml_node *n);
/* "a string", "a list", "a mapping" (for messages). */
const char *yaml_kind_name(enum yaml_kind kind);
/* Where |n| starts: file name (borrowed from the document), 1-based line and column. */
const char *yaml_node_file(const struct yaml_node *n);
unsigned yaml_node_line(const struct yaml_node *n);
unsigned yaml_node_col(const struct yaml_node *n);

/*
 * A scalar's text (borrowed, NUL-terminated; may contain NUL bytes from "\0" escapes, so *|len| is
 * the true length) or NULL when |n| is NULL or not a scalar. |len| may be NULL.
 */
const char *yaml_scalar(const struct yaml_node *n, size_t *len);
/* True for a plain (unquoted, untagged) scalar: `yes` is plain, `"yes"` and `!!str yes` are not. */
bool yaml_scalar_plain(const struct yaml_node *n);
/* True when |n| is NULL, a plain "", "~", "null", "Null" or "NULL", or tagged !!null. */
bool yaml_is_null(const struct yaml_node *n);

/* Number of items of a sequence (0 for NULL or another kind), and item |i| (NULL past the end). */
size_t yaml_seq_count(const struct yaml_node *n);
const struct yaml_node *yaml_seq_at(const struct yaml_node *n, size_t i);

/* Number of pairs of a mapping (0 for NULL or another kind); pair |i|'s key (a scalar node) and
 * value, in file order (NULL past the end). Iterate these to warn about or reject unknown keys. */
size_t yaml_map_count(const struct yaml_node *n);
const struct yaml_node *yaml_map_key(const struct yaml_node *n, size_t i);
const struct yaml_node *yaml_map_value(const struct yaml_node *n, size_t i);
/* The value under |key| (exact, case-sensitive), or NULL when |n| is NULL, not a mapping, or has no
 * such key. O(log pairs). */
const struct yaml_node *yaml_map_get(const struct yaml_node *n, const char *key);

/* ---- located errors and typed getters ----------------------------------------------------- */

/*
 * Writes "file:line:col: path: message" into |err|, located at |n| ("path: message" when |n| is NULL;
 * the path part is left out when |path| is NULL or empty). Returns CV_ECONFIG, so that schema code
 * can write `return yaml_errorf(err, n, path, "...")`.
 */
int yaml_errorf(struct yaml_error *err, const struct yaml_node *n, const char *path,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Typed getters. Each converts the value node |n| of the key at |path| (text for messages, e.g.
 * "ingress[2].hostname") and returns:
 *   0            *|out| is set;
 *   CV_ENOTFOUND |n| is NULL (key absent) or a YAML null (`key:` or `key: ~`): *|out| and |err| are
 *                untouched, so a default stays in place;
 *   CV_ECONFIG   |err| holds "file:line:col: path: reason"; *|out| untouched.
 * Quoted scalars are accepted wherever plain ones are (`grace_period: "30s"`).
 */

/* 0, CV_ENOTFOUND, or CV_ECONFIG when |n| is not of |kind|. */
int yaml_expect(const struct yaml_node *n, const char *path, enum yaml_kind kind,
                struct yaml_error *err);
/* Any scalar as text (borrowed from the document); text with NUL bytes is rejected. */
int yaml_as_string(const struct yaml_node *n, const char *path, const char **out,
                   struct yaml_error *err);
/* config_parse_bool. */
int yaml_as_bool(const struct yaml_node *n, const char *path, bool *out, struct yaml_error *err);
/* config_parse_int, then min <= value <= max. */
int yaml_as_int(const struct yaml_node *n, const char *path, int64_t min, int64_t max,
                int64_t *out, struct yaml_error *err);
/* config_parse_duration with |flags|, then min_ms <= value <= max_ms. */
int yaml_as_duration(const struct yaml_node *n, const char *path, unsigned flags, uint64_t min_ms,
                     uint64_t max_ms, uint64_t *out, struct yaml_error *err);
/* config_parse_size, then min <= value <= max; a plain YAML integer is bytes. */
int yaml_as_size(const struct yaml_node *n, const char *path, uint64_t min, uint64_t max,
                 uint64_t *out, struct yaml_error *err);
/* config_parse_addr with |flags|. */
int yaml_as_addr(const struct yaml_node *n, const char *path, unsigned flags,
                 struct config_addr *out, struct yaml_error *err);
/* config_check_path with |flags|; *|out| is borrowed from the document. */
int yaml_as_path(const struct yaml_node *n, const char *path, unsigned flags, const char **out,
                 struct yaml_error *err);
/* hostname_normalize into |out| (HOSTNAME_MAX + 1 bytes). */
int yaml_as_hostname(const struct yaml_node *n, const char *path, char *out,
                     struct yaml_error *err);
/* hostname_pattern_parse. */
int yaml_as_pattern(const struct yaml_node *n, const char *path, struct hostname_pattern *out,
                    struct yaml_error *err);

#endif

/*
 * yaml.c, and only yaml.c, defines CV_YAML_WANT_LIBYAML and includes <yaml.h> a second time. With
 * -Icommon that include finds this file again, so it passes the search on to libyaml's header, which
 * has the same name. Everything else never sees libyaml's declarations.
 */
#if defined(CV_YAML_WANT_LIBYAML) && !defined(CV_YAML_LIBYAML_DONE)
#define CV_YAML_LIBYAML_DONE
#include_next <yaml.h>
#endif
