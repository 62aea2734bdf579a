#ifndef CAIRN_HTJ2K_H
#define CAIRN_HTJ2K_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Encodes `height` rows of `width` unsigned little-endian samples of `bytes_per_sample` (1 or 2)
/// bytes as one lossless (reversible 5/3) HTJ2K codestream with one component. On success returns
/// its size and sets `*out` to a buffer the caller frees with `cairn_htj2k_free`; returns 0 on failure.
size_t cairn_htj2k_encode(const uint8_t *samples, uint32_t width, uint32_t height, uint32_t bytes_per_sample,
                          uint8_t **out);

void cairn_htj2k_free(uint8_t *buffer);

/// Decodes a codestream that must describe exactly `width` x `height` unsigned samples of
/// 8 * `bytes_per_sample` bits, one component, into `samples` (little-endian). Returns 0 on
/// success, -1 when the codestream is malformed or describes anything else. Never prints.
int cairn_htj2k_decode(const uint8_t *data, size_t size, uint32_t width, uint32_t height, uint32_t bytes_per_sample,
                       uint8_t *samples);

#ifdef __cplusplus
}
#endif
#endif
