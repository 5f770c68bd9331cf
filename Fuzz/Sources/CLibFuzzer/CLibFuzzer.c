// Only a header: LLVMFuzzerRunDriver is in the libFuzzer runtime that `-sanitize=fuzzer` links.
#include "CLibFuzzer.h"
