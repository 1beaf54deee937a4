/*
 * mem.c - allocation seam over malloc with a failure injector and a live-allocation counter.
 */
#include "mem.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

static unsigned long fail_countdown;
static long live_count;

static int should_fail(void)
{
    if (fail_countdown == 0)
        return 0;
    fail_countdown--;
    return fail_countdown == 0;
}

void *mem_alloc(size_t n)
{
    void *p;

    if (n == 0 || should_fail())
        return NULL;
    p = malloc(n);
    if (p != NULL)
        live_count++;
    return p;
}

void *mem_calloc(size_t n)
{
    void *p;

    if (n == 0 || should_fail())
        return NULL;
    p = calloc(1, n);
    if (p != NULL)
        live_count++;
    return p;
}

void *mem_realloc(void *p, size_t n)
{
    void *q;

    if (p == NULL)
        return mem_alloc(n);
    if (n == 0 || should_fail())
        return NULL;
    q = realloc(p, n);
    return q;
}

void mem_free(void *p)
{
    if (p == NULL)
        return;
    live_count--;
    free(p);
}

char *mem_strndup(const char *p, size_t n)
{
    char *s = mem_alloc(n + 1);

    if (s == NULL)
        return NULL;
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

char *mem_strdup(const char *s)
{
    return mem_strndup(s, strlen(s));
}

void mem_free_secret(void *p, size_t n)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, n);
    mem_free(p);
}

void mem_fail_after(unsigned long n)
{
    fail_countdown = n;
}

long mem_live_count(void)
{
    return live_count;
}
