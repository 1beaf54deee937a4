/*
 * fuzz_ingress.c - libFuzzer target for connector/ingress.c.
 *
 * The input is a config.yml. Its `originRequest:` and `ingress:` sections are parsed as the
 * connector does (connector_config.c); `url:` goes through ingress_from_url. When an ingress is
 * built, a fixed set of requests and one request per rule (its hostname with the wildcard filled
 * in) are matched, and every rule is described. Invariants, each an abort():
 *   - a refusal is CV_ECONFIG, CV_ENOTFOUND or CV_ENOMEM (CV_EINVAL for a url) with a message;
 *   - rules are numbered 1..N, the last one and only the last one is a catch-all;
 *   - ingress_match never returns NULL and returns a rule of this ingress;
 *   - a request for a rule's own hostname and no path matches that rule or an earlier one;
 *   - ingress_rule_describe returns the length it writes when the text fits.
 * Everything allocated is freed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ingress.h"
#include "log.h"
#include "yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void no_warn(const char *msg, void *arg)
{
    (void)arg;
    if (msg == NULL || msg[0] == '\0')
        abort();
}

static const struct {
    const char *host;
    const char *path;
} requests[] = {
    {"app.example.com", "/api/users"},
    {"APP.example.com:8443", "/api/v1?x=/admin"},
    {"a.b.example.com", "/"},
    {"example.com.", "/%61pi/%2e%2E/x"},
    {"www.example.com", "/img/logo.PNG"},
    {"10.0.0.1", "/"},
    {"[::1]:80", "/v12/"},
    {"", ""},
    {"bad host", "/%zz"},
    {"xn--bcher-kva.example", "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"},
};

static void check_rule_host(struct ingress *ing, const struct ingress_rule *r)
{
    char host[HOSTNAME_MAX + 4];
    const struct ingress_rule *m;

    if (r->any_host)
        return;
    if (r->host.wildcard) {
        host[0] = 'x';
        memcpy(host + 1, r->host.text + 1, r->host.len); /* "*.a.b" -> "x.a.b" */
    } else {
        memcpy(host, r->host.text, r->host.len + 1);
    }
    m = ingress_match(ing, host, strlen(host), "", 0);
    if (m == NULL)
        abort();
    /* With an empty path, only a path expression could skip this rule; an earlier rule may win. */
    if (r->path == NULL && m->number > r->number)
        abort();
}

static void check_ingress(struct ingress *ing)
{
    size_t n = ingress_rule_count(ing);
    size_t i;
    char text[512];

    if (n == 0)
        abort();
    for (i = 0; i < n; i++) {
        const struct ingress_rule *r = ingress_rule_at(ing, i);
        bool catch_all = r->any_host && r->path == NULL;
        size_t len;

        if (r == NULL || r->number != i + 1 || r->service.text == NULL)
            abort();
        if (catch_all != (i + 1 == n))
            abort();
        len = ingress_rule_describe(r, text, sizeof(text));
        if (len < sizeof(text) && strlen(text) != len)
            abort();
        if (strncmp(text, "Matched rule #", 14) != 0)
            abort();
        check_rule_host(ing, r);
    }
    if (ingress_rule_at(ing, n) != NULL)
        abort();
    for (i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
        const struct ingress_rule *m = ingress_match(ing, requests[i].host,
                                                     strlen(requests[i].host), requests[i].path,
                                                     strlen(requests[i].path));

        if (m == NULL || m->number < 1 || m->number > n || ingress_rule_at(ing, m->number - 1) != m)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct yaml_doc *doc = NULL;
    struct yaml_error err;
    struct origin_request defaults;
    struct ingress *ing = NULL;
    const struct yaml_node *root;
    const char *url;
    char msg[512];
    int rv;

    log_set_level(LOG_ERROR);
    if (yaml_load_string((const char *)data, size, "fuzz.yml", NULL, &doc, &err) < 0)
        return 0;
    root = yaml_doc_root(doc);
    origin_request_init(&defaults);
    err.msg[0] = '\0';
    rv = origin_request_parse(yaml_map_get(root, "originRequest"), "originRequest", &defaults,
                              no_warn, NULL, &err);
    if (rv < 0 && rv != CV_ENOTFOUND) {
        if ((rv != CV_ECONFIG && rv != CV_ENOMEM) || (rv == CV_ECONFIG && err.msg[0] == '\0'))
            abort();
        goto done;
    }

    rv = ingress_parse(yaml_map_get(root, "ingress"), &defaults, no_warn, NULL, &ing, &err);
    if (rv == 0) {
        check_ingress(ing);
        ingress_free(ing);
        ing = NULL;
    } else if (rv == CV_ECONFIG) {
        if (err.msg[0] == '\0' || ing != NULL)
            abort();
    } else if (rv != CV_ENOTFOUND && rv != CV_ENOMEM) {
        abort();
    }

    if (yaml_as_string(yaml_map_get(root, "url"), "url", &url, &err) == 0) {
        msg[0] = '\0';
        rv = ingress_from_url(url, "url", &defaults, &ing, msg, sizeof(msg));
        if (rv == 0) {
            check_ingress(ing);
            ingress_free(ing);
        } else if ((rv != CV_EINVAL && rv != CV_ENOMEM) || msg[0] == '\0' || ing != NULL) {
            abort();
        }
    }
done:
    origin_request_cleanup(&defaults);
    yaml_doc_free(doc);
    return 0;
}
