"""The xz reference: what a general-purpose compressor achieves on the files."""

import lzma


def xz_bits_per_byte(files):
    """Bits per byte of xz (preset 9 extreme), each file compressed on its own.

    Compressing each file alone is the fair reference for a language model
    whose context is bounded: neither sees across files.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> _ = open(path, "w").write("abc " * 1000)
    >>> xz_bits_per_byte([path]) < 1.0
    True
    """
    raw = compressed = 0
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        raw += len(data)
        compressed += len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
    return 8 * compressed / max(raw, 1)
