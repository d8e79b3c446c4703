#!/usr/bin/python3
"""gen_images.py - writes the image fixtures of tests/test_image.c.

    /usr/bin/python3 tools/gen_images.py tests/fixtures/images

PNG files come from the small encoder below (Python's zlib + struct, nothing
of libpng), so the C decoder is checked against an independent writer: every
colour type, bit depths 1, 4, 8 and 16, palettes with and without
transparency (tRNS), gray + tRNS, Adam7 interlacing, and all five row
filters (row y uses filter y % 5). JPEG files are written by Pillow
(python3-pil), and Pillow's own decoding of each is stored beside it as
NAME.jpg.png, the exact pixels libjpeg-turbo gives with default settings.

Pixel values follow pat() below, which tests/test_image.c recomputes.
Total size stays in the low kilobytes.
"""
import os
import struct
import sys
import zlib

W, H = 13, 11   # odd sizes: Adam7 passes of unequal and empty widths


def pat(x, y, k):
    """The 8-bit test pattern; the same formula is in tests/test_image.c."""
    return (x * 37 + y * 11 + k * 85 + x * y * 3) & 255


def pat16(x, y, k):
    """16-bit samples that scale (round(v / 257)) back to pat(x, y, k)."""
    v = pat(x, y, k) * 257 + ((x + y) % 5 - 2) * 50
    return min(max(v, 0), 65535)


def chunk(tag, data):
    c = struct.pack(">I", len(data)) + tag + data
    return c + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_rows(rows, bpp):
    """Filters packed rows (lists of bytes), filter type = row index % 5."""
    out = bytearray()
    prev = [0] * (len(rows[0]) if rows else 0)
    for y, row in enumerate(rows):
        ft = y % 5
        out.append(ft)
        for i, v in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][ft]
            out.append((v - pred) & 255)
        prev = row
    return out


def pack_row(samples, depth):
    """Packs a list of samples of one row into bytes at the given depth."""
    if depth == 8:
        return list(samples)
    if depth == 16:
        r = []
        for s in samples:
            r += [s >> 8, s & 255]
        return r
    per = 8 // depth
    r = []
    for i in range(0, len(samples), per):
        byte = 0
        for j in range(per):
            s = samples[i + j] if i + j < len(samples) else 0
            byte |= s << (8 - depth * (j + 1))
        r.append(byte)
    return r


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png(path, w, h, ctype, depth, sample, nch, interlace=False, plte=None, trns=None):
    """sample(x, y) -> tuple of nch raw samples (palette index, gray, ...)."""
    bpp = max(1, nch * depth // 8)
    raw = bytearray()
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            xs, ys = list(range(x0, w, dx)), list(range(y0, h, dy))
            if not xs or not ys:
                continue
            rows = [pack_row([s for x in xs for s in sample(x, y)], depth) for y in ys]
            raw += filter_rows(rows, bpp)
    else:
        rows = [pack_row([s for x in range(w) for s in sample(x, y)], depth) for y in range(h)]
        raw += filter_rows(rows, bpp)
    data = b"\x89PNG\r\n\x1a\n"
    data += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    if plte is not None:
        data += chunk(b"PLTE", bytes(v for rgb in plte for v in rgb))
    if trns is not None:
        data += chunk(b"tRNS", trns)
    data += chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    data += chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def main(out):
    os.makedirs(out, exist_ok=True)
    P = lambda name: os.path.join(out, name)
    png(P("gray8.png"), W, H, 0, 8, lambda x, y: (pat(x, y, 0),), 1)
    png(P("gray1.png"), W, H, 0, 1, lambda x, y: ((x + y) % 2,), 1)
    png(P("gray4.png"), W, H, 0, 4, lambda x, y: ((x * 3 + y) % 16,), 1)
    png(P("gray16.png"), W, H, 0, 16, lambda x, y: (pat16(x, y, 0),), 1)
    png(P("graya8.png"), W, H, 4, 8, lambda x, y: (pat(x, y, 0), pat(x, y, 3)), 2)
    png(P("gray8_trns.png"), W, H, 0, 8, lambda x, y: (pat(x, y, 0),), 1, trns=struct.pack(">H", pat(2, 3, 0)))
    png(P("rgb8.png"), W, H, 2, 8, lambda x, y: tuple(pat(x, y, k) for k in range(3)), 3)
    png(P("rgb16.png"), W, H, 2, 16, lambda x, y: tuple(pat16(x, y, k) for k in range(3)), 3)
    png(P("rgba8.png"), W, H, 6, 8, lambda x, y: tuple(pat(x, y, k) for k in range(4)), 4)
    pal16 = [(i * 16, 255 - i * 16, i * 7) for i in range(16)]
    png(P("palette4_trns.png"), W, H, 3, 4, lambda x, y: ((x + 2 * y) % 16,), 1, plte=pal16,
        trns=bytes(i * 17 for i in range(16)))
    pal200 = [(i, (i * 3) & 255, (i * 7) & 255) for i in range(200)]
    png(P("palette8.png"), W, H, 3, 8, lambda x, y: ((x * y + x) % 200,), 1, plte=pal200)
    png(P("rgb8_adam7.png"), W, H, 2, 8, lambda x, y: tuple(pat(x, y, k) for k in range(3)), 3, interlace=True)
    png(P("rgba16_adam7.png"), W, H, 6, 16, lambda x, y: tuple(pat16(x, y, k) for k in range(4)), 4,
        interlace=True)
    png(P("gray1_adam7.png"), W, H, 0, 1, lambda x, y: ((x + y) % 2,), 1, interlace=True)
    png(P("gray8_1x1_adam7.png"), 1, 1, 0, 8, lambda x, y: (200,), 1, interlace=True)

    from PIL import Image   # JPEG only: Debian's python3-pil, linked to the system libjpeg-turbo
    jw, jh = 32, 24
    smooth = lambda x, y, k: (x * 6 + y * 4 + k * 40) & 255 if k < 3 else 0
    g = Image.new("L", (jw, jh))
    g.putdata([smooth(x, y, 0) for y in range(jh) for x in range(jw)])
    rgb = Image.new("RGB", (jw, jh))
    rgb.putdata([tuple(smooth(x, y, k) for k in range(3)) for y in range(jh) for x in range(jw)])
    for name, im, kw in (("gray.jpg", g, {}), ("rgb.jpg", rgb, {}), ("rgb_progressive.jpg", rgb, {"progressive": True}),
                         ("rgb444.jpg", rgb, {"subsampling": 0})):
        im.save(P(name), quality=90, **kw)
        Image.open(P(name)).save(P(name + ".png"))
    Image.new("CMYK", (8, 8), (10, 20, 30, 40)).save(P("cmyk.jpg"), quality=90)   # refused: unsupported

    # EXIF orientations 2..8 on one 6x4 gray picture; the reference is Pillow's exif_transpose
    from PIL import ImageOps
    o = Image.new("L", (6, 4))
    o.putdata([(x * 40 + y * 60) & 255 for y in range(4) for x in range(6)])
    for k in range(2, 9):
        ex = Image.Exif()
        ex[0x0112] = k
        o.save(P("orient%d.jpg" % k), quality=95, exif=ex.tobytes())
    # a big-endian ("MM") TIFF header, written by hand: one IFD entry, orientation 6
    mm = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0"
    o.save(P("orient6_mm.jpg"), quality=95, exif=mm)
    for name in ["orient%d.jpg" % k for k in range(2, 9)] + ["orient6_mm.jpg"]:
        ImageOps.exif_transpose(Image.open(P(name))).save(P(name + ".png"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/images")
