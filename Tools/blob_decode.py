#!/usr/bin/env python3
"""Restore the original file from a Cairn blob file, without Cairn.

An independent reading of the blob format (README "On disk"), written from the format's
description with numpy and the codecs' own Python bindings (zstandard, lz4, xxhash, imagecodecs):

    blob_decode.py BLOB [-o OUT] [--digest HEX]

A blob file is raw (the original bytes) or a framed container: frames, then the zstd
seekable-format seek table (skippable frame, magic 0x184D2A5E; one entry per frame:
compressed size u32, original size u32, low 32 bits of XXH64 of the original bytes; footer:
frame count u32, descriptor u8 with bit 7 set, magic 0x8F92EAB1; all little-endian). Each frame
is one of:
  - a zstd frame (magic 0xFD2FB528) or an LZ4 frame (magic 0x184D2204) of the original bytes;
  - a pixel frame: a 16-byte header (magic "CPX1", transform u8, inner codec u8 (1 zstd, 2 lz4),
    bytes per sample u8 (1|2), samples per pixel u8, columns u32, flags u8 (bit 0 signed), three
    zero bytes), then one zstd or LZ4 frame of the transformed samples.

Transforms (samples little-endian; 16-bit transformed samples are stored as a plane of low
bytes then a plane of high bytes; a trailing byte that is not a whole sample is kept as is):
  1 shuffle  the byte planes of the original samples;
  2 delta    residual = sample - previous sample of the same component in the row (the row
             above's for the first pixel of a row, 0 at the top left), zigzag-mapped;
  3 med      residual = sample - LOCO-I median edge prediction from left a, up b, up-left c
             (min(a,b) if c >= max(a,b); max(a,b) if c <= min(a,b); else a+b-c), with the
             first row predicted from the left and the first pixel of a row from above.
  4 htj2k    no inner codec (byte 0): the low 32 bits of XXH64 of the codestream (u32), then the
             frame's rows x columns samples of one component, sign bit flipped when signed, as one
             lossless HTJ2K codestream (decoded here with OpenJPH through imagecodecs).
Signed samples are predicted with the sign bit flipped (two's complement to offset order).
Residuals wrap modulo 2^bits; zigzag maps r to (r << 1) ^ (r >> (bits-1)).

Every frame's checksum and the SHA-256 of the whole are checked; the exit status is 1 on any
mismatch. The file's name is taken as the expected digest when it is 64 hex digits.
"""
import argparse
import hashlib
import re
import struct
import sys
from pathlib import Path

import imagecodecs
import lz4.frame
import numpy as np
import xxhash
import zstandard

SEEKABLE_MAGIC = 0x8F92EAB1
SKIPPABLE_MAGIC = 0x184D2A5E
ZSTD_MAGIC = 0xFD2FB528
LZ4_MAGIC = 0x184D2204
PIXEL_MAGIC = 0x31585043  # "CPX1"


class BlobError(Exception):
    pass


def seek_table(blob: bytes):
    """[(compressed, original, checksum)], or None when the file is not a framed container."""
    if len(blob) < 17:
        return None
    frames, descriptor, magic = struct.unpack_from("<IBI", blob, len(blob) - 9)
    if magic != SEEKABLE_MAGIC or descriptor & 0x7C or not descriptor & 0x80:
        return None
    size = 8 + 12 * frames + 9
    if size > len(blob):
        return None
    start = len(blob) - size
    head, body = struct.unpack_from("<II", blob, start)
    if head != SKIPPABLE_MAGIC or body != size - 8:
        return None
    entries = [struct.unpack_from("<III", blob, start + 8 + 12 * i) for i in range(frames)]
    if sum(e[0] for e in entries) != start:
        return None
    return entries


def decompress(codec_magic: int, data: bytes, size: int) -> bytes:
    magic = struct.unpack_from("<I", data)[0] if len(data) >= 4 else None
    if magic != codec_magic:
        raise BlobError("frame's codec does not match its header")
    if magic == ZSTD_MAGIC:
        out = zstandard.ZstdDecompressor().decompress(data, max_output_size=size, allow_extra_data=False)
    else:
        out, consumed = lz4.frame.decompress(data, return_bytes_read=True)
        if consumed != len(data):
            raise BlobError("bytes after the LZ4 frame")
    if len(out) != size:
        raise BlobError(f"frame decodes to {len(out)} bytes, not {size}")
    return out


def unzigzag(z: np.ndarray, bits: int) -> np.ndarray:
    mask = (1 << bits) - 1
    z = z.astype(np.int64)
    return ((z >> 1) ^ -(z & 1)) & mask


def inverse_transform(transform, bps, spp, columns, signed, data: bytes) -> bytes:
    bits = 8 * bps
    mask = (1 << bits) - 1
    n = len(data) // bps
    tail = data[n * bps:]
    raw = np.frombuffer(data, dtype=np.uint8, count=n * bps)
    if bps == 2:
        planes = raw[:n].astype(np.int64) | (raw[n:2 * n].astype(np.int64) << 8)
    else:
        planes = raw.astype(np.int64)
    if transform == 1:
        if bps != 2:
            raise BlobError("byte planes need 16-bit samples")
        values = planes
    else:
        residual = unzigzag(planes, bits)
        width = columns * spp
        bias = (1 << (bits - 1)) if signed else 0
        if transform == 2:
            rows = -(-n // width)
            grid = np.zeros(rows * width, dtype=np.int64)
            grid[:n] = residual
            grid = grid.reshape(rows, width)
            v = np.zeros_like(grid)
            for j in range(spp):
                first = np.cumsum(grid[:, j]) - grid[:, j]  # the row above's first pixel, per row
                v[:, j::spp] = np.cumsum(grid[:, j::spp], axis=1) + first[:, None]
            v = v.reshape(-1)[:n] & mask
        elif transform == 3:
            v = med_inverse(residual.tolist(), n, width, spp, mask)
        else:
            raise BlobError(f"unknown transform {transform}")
        values = np.asarray(v, dtype=np.int64) ^ bias
    out = values.astype(np.uint16 if bps == 2 else np.uint8)
    return out.astype("<u2" if bps == 2 else np.uint8).tobytes() + tail


def med_inverse(residual, n, width, spp, mask):
    v = [0] * n
    for i in range(n):
        column = i % width
        if column >= spp:
            a = v[i - spp]
            if i >= width:
                b, c = v[i - width], v[i - width - spp]
                high, low = (a, b) if a >= b else (b, a)
                pred = low if c >= high else high if c <= low else a + b - c
            else:
                pred = a
        else:
            pred = v[i - width] if i >= width else 0
        v[i] = (pred + residual[i]) & mask
    return v


def htj2k_frame(payload: bytes, bps, spp, columns, signed, codec, size) -> bytes:
    row_bytes = columns * bps
    if codec != 0 or spp != 1 or size == 0 or size % row_bytes or len(payload) < 8:
        raise BlobError("HTJ2K frame of the wrong shape")
    codestream = payload[4:]
    if struct.unpack_from("<I", payload)[0] != xxhash.xxh64_intdigest(codestream) & 0xFFFFFFFF:
        raise BlobError("HTJ2K codestream fails its checksum")
    try:
        samples = imagecodecs.htj2k_decode(codestream)
    except Exception as error:  # imagecodecs raises its own error types per codec
        raise BlobError(f"HTJ2K: {error}") from error
    if samples.shape != (size // row_bytes, columns) or samples.dtype != (np.uint16 if bps == 2 else np.uint8):
        raise BlobError(f"HTJ2K codestream holds {samples.shape} {samples.dtype}")
    if signed:
        samples = samples ^ np.array(1 << (8 * bps - 1), dtype=samples.dtype)
    return samples.astype("<u2" if bps == 2 else np.uint8).tobytes()


def decode_frame(data: bytes, size: int) -> bytes:
    if len(data) < 4:
        raise BlobError("frame shorter than its magic")
    magic = struct.unpack_from("<I", data)[0]
    if magic in (ZSTD_MAGIC, LZ4_MAGIC):
        return decompress(magic, data, size)
    if magic != PIXEL_MAGIC or len(data) < 16:
        raise BlobError(f"unknown frame magic {magic:#010x}")
    transform, codec, bps, spp, columns, flags = struct.unpack_from("<BBBBIB", data, 4)
    if data[13:16] != b"\0\0\0" or flags & 0xFE or bps not in (1, 2) or not 1 <= spp <= 4 or not 1 <= columns <= 65535:
        raise BlobError("damaged pixel frame header")
    if transform == 4:
        return htj2k_frame(data[16:], bps, spp, columns, bool(flags & 1), codec, size)
    inner = {1: ZSTD_MAGIC, 2: LZ4_MAGIC}.get(codec)
    if inner is None:
        raise BlobError(f"unknown inner codec {codec}")
    return inverse_transform(transform, bps, spp, columns, bool(flags & 1), decompress(inner, data[16:], size))


def decode(blob: bytes) -> bytes:
    entries = seek_table(blob)
    if entries is None:
        return blob
    out = bytearray()
    at = 0
    for index, (stored, size, checksum) in enumerate(entries):
        original = decode_frame(blob[at:at + stored], size)
        if xxhash.xxh64_intdigest(original) & 0xFFFFFFFF != checksum:
            raise BlobError(f"frame {index} fails its checksum")
        out += original
        at += stored
    return bytes(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("blob", type=Path)
    parser.add_argument("-o", "--output", type=Path, help="write the original here (default: standard output)")
    parser.add_argument("--digest", help="expected SHA-256 (default: the file's name, when it is one)")
    args = parser.parse_args()
    expected = args.digest or (args.blob.name if re.fullmatch(r"[0-9a-f]{64}", args.blob.name) else None)
    try:
        original = decode(args.blob.read_bytes())
    except (BlobError, zstandard.ZstdError, RuntimeError) as error:
        sys.exit(f"{args.blob}: {error}")
    actual = hashlib.sha256(original).hexdigest()
    if expected and actual != expected.removeprefix("sha256:"):
        sys.exit(f"{args.blob}: restored bytes hash to {actual}, not {expected}")
    if args.output:
        args.output.write_bytes(original)
    else:
        sys.stdout.buffer.write(original)


if __name__ == "__main__":
    main()
