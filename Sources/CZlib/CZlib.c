// Everything is in include/CZlib.h; a C target needs one source file.
