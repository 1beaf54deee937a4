/*
 * support.h - helpers shared by the cmocka unit tests: hex decoding, file reading, a clock.
 */
#ifndef CV_TEST_SUPPORT_H
#define CV_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/* Decodes hex text (whitespace and '#' comments to end of line ignored) into a new malloc'd buffer.
 * Returns the buffer (caller frees with free()) and sets *|n|, or NULL on bad input. */
uint8_t *support_hex_decode(const char *text, size_t *n);
/* Reads a whole file into a new NUL-terminated malloc'd buffer, or NULL. */
char *support_read_file(const char *path, size_t *n);
/* A settable clock for sans-I/O tests. */
extern uint64_t support_clock_us;
uint64_t support_now_us(void *arg);

#endif
