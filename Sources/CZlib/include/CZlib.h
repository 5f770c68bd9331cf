#ifndef CZLIB_H
#define CZLIB_H

// zlib for ssegate's shared gzip fragments. deflateInit2 and the crc32_combine family are macros (or
// renamed by _LARGEFILE64_SOURCE) in zlib.h, so Swift reaches them through these functions.

#include <zlib.h>

static inline int CZlib_deflateInit2(z_streamp stream, int level, int windowBits, int memLevel) {
    return deflateInit2(stream, level, Z_DEFLATED, windowBits, memLevel, Z_DEFAULT_STRATEGY);
}

static inline int CZlib_deflate(z_streamp stream, int flush) {
    return deflate(stream, flush);
}

static inline int CZlib_deflateReset(z_streamp stream) {
    return deflateReset(stream);
}

static inline int CZlib_deflateEnd(z_streamp stream) {
    return deflateEnd(stream);
}

static inline unsigned long CZlib_deflateBound(z_streamp stream, unsigned long sourceLength) {
    return deflateBound(stream, sourceLength);
}

static inline unsigned int CZlib_crc32(unsigned int crc, const unsigned char *bytes, unsigned int length) {
    return (unsigned int)crc32(crc, bytes, length);
}

static inline unsigned int CZlib_crc32_combine_gen(long length) {
    return (unsigned int)crc32_combine_gen((z_off_t)length);
}

static inline unsigned int CZlib_crc32_combine_op(unsigned int crc1, unsigned int crc2, unsigned int op) {
    return (unsigned int)crc32_combine_op(crc1, crc2, op);
}

#endif
