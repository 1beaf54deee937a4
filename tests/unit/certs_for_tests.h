/*
 * certs_for_tests.h - throw-away PKI for TLS tests, generated at test time with the OpenSSL 3.0 API
 * (no key is checked in). P-256 keys, certificates valid from one hour ago for one day.
 *
 *   root CA "Culvert Test Root" -+- leaf "localhost" (DNS:localhost, IP:127.0.0.1, IP:::1)
 *                               +- intermediate CA "Culvert Test Intermediate" -- leaf2 (same)
 *   other CA "Culvert Other Root" (unrelated, for "wrong CA" tests)
 *
 * The Makefile links a unit test from its own test_*.c and support.o only, so test files include
 * certs_for_tests.c directly (one translation unit per test binary).
 */
#ifndef CV_CERTS_FOR_TESTS_H
#define CV_CERTS_FOR_TESTS_H

#include <stdint.h>

struct test_certs {
    char dir[64];
    char ca_file[128];          /* root CA certificate (PEM) */
    char other_ca_file[128];    /* unrelated CA certificate */
    char chain_file[128];       /* leaf + root CA: the chain a pinned-CA server sends */
    char key_file[128];         /* leaf key */
    char leaf_only_file[128];   /* leaf alone */
    char inter_chain_file[128]; /* leaf2 + intermediate + root */
    char inter_key_file[128];   /* leaf2 key */
    uint8_t ca_sha256[32];      /* SHA-256 of the root CA's DER */
    uint8_t other_ca_sha256[32];
    uint8_t inter_sha256[32];
    uint8_t leaf_sha256[32];
};

/* Generates everything into a new temporary directory. Returns 0 or -1. */
int certs_create(struct test_certs *c);
/* Removes the files and the directory. */
void certs_destroy(struct test_certs *c);

#endif
