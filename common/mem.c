/*
 * mem.c - allocation seam over malloc with a failure injector and a live-allocation counter.
 */
#include "mem.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

static unsigned long fail_countdown;
static long live_count;

/* mem_block_alloc already asked should_fail() once: the mem_alloc behind it must not ask again. */
static int fail_paused;

static void fail_countdown_pause(void)
{
    fail_paused = 1;
}

static int should_fail(void)
{
    if (fail_paused) {
        fail_paused = 0;
        return 0;
    }
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

/*
 * A small cache of freed blocks of MEM_BLOCK bytes, the size every buffer starts with (buf.c). glibc
 * serves blocks this large from its main arena (no thread cache), which costs a few hundred
 * instructions per malloc/free pair; a request allocates and frees several of them.
 */
#if defined(__SANITIZE_ADDRESS__)
#define MEM_BLOCK_CACHE 1 /* sanitizer builds: (almost) no reuse, so a use after free stays visible */
#else
#define MEM_BLOCK_CACHE 256
#endif

static void *block_cache[MEM_BLOCK_CACHE];
static unsigned block_cached;

void *mem_block_alloc(void)
{
    if (should_fail())
        return NULL;
    if (block_cached > 0) {
        live_count++;
        return block_cache[--block_cached];
    }
    fail_countdown_pause();
    return mem_alloc(MEM_BLOCK);
}

void mem_block_free(void *p)
{
    if (p == NULL)
        return;
    if (block_cached < MEM_BLOCK_CACHE) {
        block_cache[block_cached++] = p;
        live_count--;
        return;
    }
    mem_free(p);
}
