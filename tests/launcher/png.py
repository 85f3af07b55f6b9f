"""A tiny PNG decoder (zlib, standard library only) for the browser tests:
enough for what Chromium's --screenshot writes (8-bit RGB or RGBA, also
grey and palette, not interlaced). Raises PngError on anything else."""

import collections
import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Samples per pixel by colour type (grey, RGB, palette, grey+alpha, RGBA).
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


class PngError(ValueError):
    pass


class Image:
    """width, height and rows: one bytes object of RGB triples per row."""

    def __init__(self, width, height, rows):
        self.width = width
        self.height = height
        self.rows = rows
        self._histogram = None

    def pixel(self, x, y):
        i = 3 * x
        return tuple(self.rows[y][i:i + 3])

    def histogram(self):
        """{RGB bytes: pixel count} over the whole image."""
        if self._histogram is None:
            counts = collections.Counter()
            for row in self.rows:
                counts.update(row[i:i + 3] for i in range(0, len(row), 3))
            self._histogram = counts
        return self._histogram

    def count(self, colour, tolerance=0):
        """How many pixels are within `tolerance` (per channel) of colour
        (an (r, g, b) tuple)."""
        return sum(n for rgb, n in self.histogram().items()
                   if all(abs(c - c0) <= tolerance for c, c0 in zip(rgb, colour)))


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode(data):
    """The Image in PNG bytes `data`."""
    if not data.startswith(SIGNATURE):
        raise PngError("not a PNG file")
    pos, idat, palette, header = 8, [], None, None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise PngError("no IHDR chunk")
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 8 or colour_type not in CHANNELS or interlace != 0:
        raise PngError("unsupported PNG: depth %d, colour type %d, interlace %d" %
                       (depth, colour_type, interlace))
    channels = CHANNELS[colour_type]
    stride = width * channels
    raw = zlib.decompress(b"".join(idat))
    if len(raw) != height * (stride + 1):
        raise PngError("image data of %d bytes, expected %d" % (len(raw), height * (stride + 1)))
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            for i in range(stride):
                line[i] = (line[i] + previous[i]) & 0xFF
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                up_left = previous[i - channels] if i >= channels else 0
                line[i] = (line[i] + _paeth(left, previous[i], up_left)) & 0xFF
        elif kind != 0:
            raise PngError("bad filter type %d in row %d" % (kind, y))
        rows.append(_to_rgb(line, colour_type, palette))
        previous = line
    return Image(width, height, rows)


def _to_rgb(line, colour_type, palette):
    if colour_type == 2:
        return bytes(line)
    if colour_type == 6:
        # Chromium's screenshots are opaque; alpha is dropped.
        out = bytearray(len(line) // 4 * 3)
        out[0::3], out[1::3], out[2::3] = line[0::4], line[1::4], line[2::4]
        return bytes(out)
    if colour_type == 3:
        if palette is None:
            raise PngError("palette image without PLTE")
        return b"".join(palette[3 * i:3 * i + 3] for i in line)
    grey = line[::2] if colour_type == 4 else line
    out = bytearray(len(grey) * 3)
    out[0::3], out[1::3], out[2::3] = grey, grey, grey
    return bytes(out)
