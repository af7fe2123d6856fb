"""Data: text files to tf.data windows, built-in corpora, file sets."""

from keras_lm.data.compression import xz_bits_per_byte
from keras_lm.data.corpora import CORPORA, corpus_files, pystdlib_files
from keras_lm.data.files import (
    FileSpan,
    RunFiles,
    can_split_by_file,
    describe_split,
    read_span,
    resolve_files,
    run_files,
    span_of,
    split_files,
    split_within_files,
    total_bytes,
)
from keras_lm.data.text_dataset import (
    sample_windows,
    text_dataset,
    token_windows,
    tokens_per_byte,
)
from keras_lm.data.warmup import (
    WARMUP_FACTOR,
    short_windows_first,
    small_batches_first,
    steps_for_tokens,
    tokens_after,
)
from keras_lm.data.pairs import (
    PAIR_CORPORA,
    PAIR_FORMATS,
    EncodedPairs,
    Pair,
    RunPairs,
    docstring_pairs,
    encode_pairs,
    padded_length,
    pair_windows,
    pairs_dataset,
    read_pairs,
    run_pairs,
    split_pairs,
)
