/*
 * fuzz_yaml.c - libFuzzer target F5 (RELIABILITY.md §8 T-38): the config loader of common/yaml.c.
 *
 * Loads the input as a configuration file with the default limits, walks the whole tree, runs every
 * typed getter on every scalar (as edge_config.c and connector_config.c would), and frees it all.
 * Invariants checked: a failed load leaves no document and a non-empty message that starts with the
 * file name; every node has a 1-based position; nothing leaks (mem_live_count).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void visit(const struct yaml_node *n, unsigned depth)
{
    struct yaml_error err;
    struct config_addr addr;
    struct hostname_pattern pat;
    char name[HOSTNAME_MAX + 1];
    const char *s;
    uint64_t u;
    int64_t i;
    bool b;

    if (yaml_node_line(n) == 0 || yaml_node_col(n) == 0 || depth > 32)
        abort();
    switch (yaml_node_kind(n)) {
    case YAML_KIND_SCALAR:
        (void)yaml_is_null(n);
        (void)yaml_as_string(n, "k", &s, &err);
        (void)yaml_as_bool(n, "k", &b, &err);
        (void)yaml_as_int(n, "k", -5, 5000, &i, &err);
        (void)yaml_as_duration(n, "k", CONFIG_DUR_PLAIN_SECONDS, 1, 3600000, &u, &err);
        (void)yaml_as_size(n, "k", 0, UINT64_MAX, &u, &err);
        (void)yaml_as_addr(n, "k", CONFIG_ADDR_ALLOW_UNIX, &addr, &err);
        (void)yaml_as_path(n, "k", CONFIG_PATH_ABSOLUTE, &s, &err);
        (void)yaml_as_hostname(n, "k", name, &err);
        (void)yaml_as_pattern(n, "k", &pat, &err);
        break;
    case YAML_KIND_SEQUENCE:
        for (size_t k = 0; k < yaml_seq_count(n); k++)
            visit(yaml_seq_at(n, k), depth + 1);
        break;
    case YAML_KIND_MAPPING:
        for (size_t k = 0; k < yaml_map_count(n); k++) {
            const struct yaml_node *key = yaml_map_key(n, k);
            size_t len;
            const char *text = yaml_scalar(key, &len);

            if (text == NULL)
                abort(); /* keys are scalars */
            /* Keys are unique, so looking a key up finds its own value (unless it holds a NUL). */
            if (strlen(text) == len && yaml_map_get(n, text) != yaml_map_value(n, k))
                abort();
            visit(key, depth + 1);
            visit(yaml_map_value(n, k), depth + 1);
        }
        (void)yaml_expect(n, "k", YAML_KIND_SEQUENCE, NULL);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long live = mem_live_count();
    struct yaml_doc *doc = NULL;
    struct yaml_error err;
    int rv;

    rv = yaml_load_string((const char *)data, size, "fuzz.yml", NULL, &doc, &err);
    if (rv < 0) {
        if (doc != NULL || strncmp(err.msg, "fuzz.yml", 8) != 0)
            abort();
    } else {
        if (yaml_doc_root(doc) != NULL)
            visit(yaml_doc_root(doc), 0);
        yaml_doc_free(doc);
    }
    if (mem_live_count() != live)
        abort();
    return 0;
}
