/*
 * mem.h - the one allocation seam. Every Culvert allocation goes through mem_alloc() and friends so
 * that tests can make the Nth allocation fail (mem_fail_after) and check that each caller fails
 * cleanly, and so that live bytes can be counted (mem_live_bytes) for memory-bound tests and metrics.
 *
 * Single-threaded, like the rest of Culvert: one loop per process.
 */
#ifndef CV_MEM_H
#define CV_MEM_H

#include <stddef.h>

/* Returns |n| bytes of uninitialised memory, or NULL (never aborts). |n| == 0 returns NULL. */
void *mem_alloc(size_t n);
/* Returns |n| zeroed bytes, or NULL. */
void *mem_calloc(size_t n);
/* Resizes |p| (which may be NULL) to |n| bytes. On failure returns NULL and |p| stays valid. */
void *mem_realloc(void *p, size_t n);
/* Frees |p| (NULL is fine). */
void mem_free(void *p);
/* Returns a new copy of |s| (NUL-terminated), or NULL. */
char *mem_strdup(const char *s);
/* Returns a new NUL-terminated copy of the |n| bytes at |p|, or NULL. */
char *mem_strndup(const char *p, size_t n);
/* Wipes |n| bytes at |p| (OPENSSL_cleanse) and frees |p|: for keys, secrets and tokens. */
void mem_free_secret(void *p, size_t n);

/* Blocks of MEM_BLOCK bytes, recycled through a small cache (buffers start at this size). Counted
 * like mem_alloc/mem_free (live count, failure injection). */
#define MEM_BLOCK 4096
void *mem_block_alloc(void);
void mem_block_free(void *p);

/* Test hook: the |n|th allocation from now fails (1 = the next); 0 disables. */
void mem_fail_after(unsigned long n);
/* Number of allocations currently live (allocated and not freed). */
long mem_live_count(void);

#endif
