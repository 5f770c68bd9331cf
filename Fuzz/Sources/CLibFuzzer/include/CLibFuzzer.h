#ifndef C_LIBFUZZER_H
#define C_LIBFUZZER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver for a program with its own main (compiler-rt's FuzzerInterface.h): parses the
/// libFuzzer flags in argv and runs `callback` on each input. Linked in by `-sanitize=fuzzer`.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
