/*
 * certs_for_tests.c - see certs_for_tests.h. Included by the test files that need it.
 */
#include "certs_for_tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static int certs_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return -1;
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

/* Returns a new certificate for |key| named |cn|, signed by |issuer_key| (|issuer| NULL: self). */
static X509 *certs_make(EVP_PKEY *key, const char *cn, int is_ca, long serial, X509 *issuer,
                        EVP_PKEY *issuer_key)
{
    X509 *x = X509_new();
    X509_NAME *name;

    if (x == NULL)
        return NULL;
    if (X509_set_version(x, 2) != 1 || ASN1_INTEGER_set(X509_get_serialNumber(x), serial) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), 86400) == NULL || X509_set_pubkey(x, key) != 1)
        goto fail;
    name = X509_get_subject_name(x);
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                   0) != 1)
        goto fail;
    if (X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name) != 1)
        goto fail;
    if (issuer == NULL)
        issuer = x;
    if (certs_add_ext(x, issuer, NID_subject_key_identifier, "hash") < 0 ||
        certs_add_ext(x, issuer, NID_authority_key_identifier, "keyid:always") < 0)
        goto fail;
    if (is_ca) {
        if (certs_add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
            certs_add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign") < 0)
            goto fail;
    } else {
        if (certs_add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
            certs_add_ext(x, issuer, NID_key_usage, "critical,digitalSignature") < 0 ||
            certs_add_ext(x, issuer, NID_ext_key_usage, "serverAuth") < 0 ||
            certs_add_ext(x, issuer, NID_subject_alt_name,
                          "DNS:localhost,IP:127.0.0.1,IP:::1") < 0)
            goto fail;
    }
    if (X509_sign(x, issuer_key, EVP_sha256()) <= 0)
        goto fail;
    return x;
fail:
    X509_free(x);
    return NULL;
}

static int certs_write(const char *path, X509 *const *certs, int ncerts, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    int ok = f != NULL;
    int i;

    for (i = 0; ok && i < ncerts; i++)
        ok = PEM_write_X509(f, certs[i]) == 1;
    if (ok && key != NULL)
        ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
    if (f != NULL && fclose(f) != 0)
        ok = 0;
    return ok ? 0 : -1;
}

static int certs_digest(X509 *x, uint8_t out[32])
{
    unsigned int len = 0;

    return X509_digest(x, EVP_sha256(), out, &len) == 1 && len == 32 ? 0 : -1;
}

int certs_create(struct test_certs *c)
{
    EVP_PKEY *ca_key = EVP_EC_gen("P-256");
    EVP_PKEY *other_key = EVP_EC_gen("P-256");
    EVP_PKEY *inter_key = EVP_EC_gen("P-256");
    EVP_PKEY *leaf_key = EVP_EC_gen("P-256");
    EVP_PKEY *leaf2_key = EVP_EC_gen("P-256");
    X509 *ca = NULL;
    X509 *other = NULL;
    X509 *inter = NULL;
    X509 *leaf = NULL;
    X509 *leaf2 = NULL;
    int rv = -1;

    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "/tmp/culvert-certs-XXXXXX");
    if (ca_key == NULL || other_key == NULL || inter_key == NULL || leaf_key == NULL ||
        leaf2_key == NULL)
        goto out;
    if (mkdtemp(c->dir) == NULL) {
        c->dir[0] = '\0';
        goto out;
    }
    snprintf(c->ca_file, sizeof(c->ca_file), "%s/ca.pem", c->dir);
    snprintf(c->other_ca_file, sizeof(c->other_ca_file), "%s/other-ca.pem", c->dir);
    snprintf(c->chain_file, sizeof(c->chain_file), "%s/chain.pem", c->dir);
    snprintf(c->key_file, sizeof(c->key_file), "%s/key.pem", c->dir);
    snprintf(c->leaf_only_file, sizeof(c->leaf_only_file), "%s/leaf.pem", c->dir);
    snprintf(c->inter_chain_file, sizeof(c->inter_chain_file), "%s/inter-chain.pem", c->dir);
    snprintf(c->inter_key_file, sizeof(c->inter_key_file), "%s/inter-key.pem", c->dir);
    ca = certs_make(ca_key, "Culvert Test Root", 1, 1, NULL, ca_key);
    other = certs_make(other_key, "Culvert Other Root", 1, 2, NULL, other_key);
    if (ca == NULL || other == NULL)
        goto out;
    inter = certs_make(inter_key, "Culvert Test Intermediate", 1, 3, ca, ca_key);
    leaf = certs_make(leaf_key, "localhost", 0, 4, ca, ca_key);
    if (inter == NULL || leaf == NULL)
        goto out;
    leaf2 = certs_make(leaf2_key, "localhost", 0, 5, inter, inter_key);
    if (leaf2 == NULL)
        goto out;
    {
        X509 *chain[3] = {leaf, ca, NULL};
        X509 *chain2[3] = {leaf2, inter, ca};

        if (certs_write(c->ca_file, &ca, 1, NULL) < 0 ||
            certs_write(c->other_ca_file, &other, 1, NULL) < 0 ||
            certs_write(c->chain_file, chain, 2, NULL) < 0 ||
            certs_write(c->key_file, NULL, 0, leaf_key) < 0 ||
            certs_write(c->leaf_only_file, &leaf, 1, NULL) < 0 ||
            certs_write(c->inter_chain_file, chain2, 3, NULL) < 0 ||
            certs_write(c->inter_key_file, NULL, 0, leaf2_key) < 0)
            goto out;
    }
    if (certs_digest(ca, c->ca_sha256) < 0 || certs_digest(other, c->other_ca_sha256) < 0 ||
        certs_digest(inter, c->inter_sha256) < 0 || certs_digest(leaf, c->leaf_sha256) < 0)
        goto out;
    rv = 0;
out:
    X509_free(ca);
    X509_free(other);
    X509_free(inter);
    X509_free(leaf);
    X509_free(leaf2);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(other_key);
    EVP_PKEY_free(inter_key);
    EVP_PKEY_free(leaf_key);
    EVP_PKEY_free(leaf2_key);
    if (rv < 0 && c->dir[0] != '\0')
        certs_destroy(c);
    return rv;
}

void certs_destroy(struct test_certs *c)
{
    const char *files[] = {c->ca_file,        c->other_ca_file,    c->chain_file,     c->key_file,
                           c->leaf_only_file, c->inter_chain_file, c->inter_key_file};
    size_t i;

    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (files[i][0] != '\0')
            unlink(files[i]);
    }
    if (c->dir[0] != '\0')
        rmdir(c->dir);
}
