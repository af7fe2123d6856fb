"""The xz reference: what a general-purpose compressor achieves on the files."""

import lzma

from keras_lm.data.files import read_span


def xz_bits_per_byte(files, max_bytes=16 << 20):
    """Bits per byte of xz (preset 9 extreme), each file compressed on its own.

    Compressing each file alone is the fair reference for a language model
    whose context is bounded: neither sees across files. `files` are paths
    or `FileSpan`s (each span compressed on its own). At most `max_bytes`
    are compressed (files in order, the last one cut), so a huge validation
    set costs bounded time and memory.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> _ = open(path, "w").write("abc " * 1000)
    >>> xz_bits_per_byte([path]) < 1.0
    True
    """
    raw = compressed = 0
    for path in files:
        if raw >= max_bytes:
            break
        data = read_span(path, max_bytes - raw)
        raw += len(data)
        compressed += len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
    return 8 * compressed / max(raw, 1)
