/* fuzz_check.h - what every fuzz target shares: libFuzzer's entry point and
 * CHECK(), an invariant of the code under test that must hold for any input
 * (abort() makes libFuzzer keep the input). */
#ifndef OMS_FUZZ_CHECK_H
#define OMS_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz: check failed: %s (line %d)\n", #cond, __LINE__);                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
