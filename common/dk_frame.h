/*
 * dk_frame.h - framing of the wire protocol: a 4-byte big-endian length,
 * then that many bytes of a serialized Request or Response.
 */
#ifndef DK_FRAME_H
#define DK_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define DK_FRAME_MAX        (1024u * 1024u) /* larger frames are a protocol error */
#define DK_FRAME_HEADER_LEN 4

static inline void
dk_frame_put_len(uint8_t hdr[DK_FRAME_HEADER_LEN], uint32_t len)
{
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
}

static inline uint32_t
dk_frame_get_len(const uint8_t hdr[DK_FRAME_HEADER_LEN])
{
	return (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
}

#endif /* DK_FRAME_H */
