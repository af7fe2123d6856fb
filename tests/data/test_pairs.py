"""Prompt -> response pairs: reading, checks naming the line, the split, packing, built-ins."""

import json

import numpy as np
import pytest

from keras_lm import data
from keras_lm.data.pairs import Pair, holds_out
from keras_lm.errors import UsageError
from keras_lm.prompt_template import PromptTemplate
from keras_lm.tokenizers import ByteTokenizer


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_jsonl_csv_and_tsv_read_the_same_pairs(tmp_path):
    rows = [{"q": "a, b", "a": "1\n2"}, {"q": "c", "a": "3"}]
    jsonl = write(tmp_path / "p.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    csv = write(tmp_path / "p.csv", 'q,a\n"a, b","1\n2"\nc,3\n')
    tsv = write(tmp_path / "p.tsv", 'q\ta\n"a, b"\t"1\n2"\nc\t3\n')
    for path in (jsonl, csv, tsv):
        pairs = data.read_pairs(path, "q", "a")
        assert [(p.prompt, p.response) for p in pairs] == [("a, b", "1\n2"), ("c", "3")]
    assert data.read_pairs(jsonl, "q", "a")[1].source == f"{jsonl}:2"


@pytest.mark.parametrize("text, argument, message", [
    ('{"prompt": "a", "response": "b"}\n{"prompt": "a", "response"\n', "data",
     "line 2 of"),
    ('{"prompt": "a", "response": "b"}\n[1, 2]\n', "data", "line 2 of"),
    ('{"prompt": "a", "answer": "b"}\n', "response_key", "line 1 of"),
    ('{"response": "b"}\n', "prompt_key", "has no 'prompt'"),
    ('{"prompt": "a", "response": ""}\n', "data", "empty response"),
    ('{"prompt": "a", "response": 4}\n', "data", "must be a string"),
    ("\n\n", "data", "holds no pairs"),
])
def test_bad_rows_are_named_by_their_line(tmp_path, text, argument, message):
    path = write(tmp_path / "p.jsonl", text)
    with pytest.raises(UsageError) as error:
        data.read_pairs(path)
    assert error.value.argument == argument and message in str(error.value)
    assert str(error.value).startswith(argument)


def test_other_files_are_refused(tmp_path):
    with pytest.raises(UsageError, match="not a pair file"):
        data.read_pairs(write(tmp_path / "p.txt", "x"))
    with pytest.raises(UsageError, match="does not exist"):
        data.read_pairs(str(tmp_path / "missing.jsonl"))


def test_the_split_is_a_deterministic_tenth_by_row():
    pairs = [Pair(f"p{i}", f"r{i}", f"f:{i}") for i in range(2000)]
    train, validation = data.split_pairs(pairs)
    assert 150 < len(validation) < 250 and len(train) + len(validation) == 2000
    assert data.split_pairs(list(reversed(pairs)))[1] == list(reversed(validation))
    # The same row validates wherever it sits in the file.
    assert holds_out(validation[0]) and holds_out(Pair(validation[0].prompt,
                                                       validation[0].response, "other:9"))
    few_train, few_val = data.split_pairs(pairs[:3])
    assert len(few_val) >= 1 and len(few_train) >= 1


def test_packing_weights_the_response_and_cuts_long_prompts_from_the_left():
    tokenizer = ByteTokenizer()
    pairs = [Pair("abcdefgh", "xy", "f:1"), Pair("ab", "z", "f:2")]
    examples = data.encode_pairs(pairs, tokenizer, PromptTemplate("{prompt}:"), 8)
    assert examples.truncated == 1
    # <bos> + the prompt's last 5 tokens ("efgh:") + "xy" + <eos>: 9 tokens, 8 inputs.
    assert examples.inputs[0].tolist() == [257, *b"efgh:", *b"xy"]
    assert examples.targets[0].tolist() == [*b"efgh:", *b"xy", 258]
    assert examples.weights[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert examples.response_tokens == 3 + 2
    x, y, w = next(iter(data.pairs_dataset(examples, 2, 8, tokenizer.pad_id)))
    assert x.shape == (2, 8) and w.numpy()[1].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]
    assert (y.numpy()[1, 5:] == tokenizer.pad_id).all()


def test_a_response_longer_than_the_context_names_its_line():
    with pytest.raises(UsageError, match=r"^data: the response of line 7 of 'f.jsonl' is 9 "):
        data.encode_pairs([Pair("a", "12345678", "f.jsonl:7")], ByteTokenizer(), None, 8)


def test_pair_windows_lay_the_examples_end_to_end():
    examples = data.encode_pairs([Pair("ab", "cd", "f:1")] * 3, ByteTokenizer(),
                                 PromptTemplate("{prompt}"), 16)
    windows = data.pair_windows(examples, 4, 10)
    stream = [257, *b"abcd", 258] * 3
    assert windows.tolist() == [stream[i:i + 5] for i in range(0, 14, 4)][:len(windows)]


def test_docstring_pairs_split_a_function_at_its_docstring(tmp_path):
    source = ('class A:\n'
              '    def f(self, x):\n'
              '        """Return x twice.\n\n        Really.\n        """\n'
              '        y = 2 * x\n'
              '        return y\n\n'
              'def g():\n    "No body after the docstring."\n\n'
              'def h():\n    return 1\n')
    path = write(tmp_path / "m.py", source)
    pairs = data.docstring_pairs(1000, [path])
    assert len(pairs) == 1
    assert pairs[0].prompt == 'def f(self, x):\n    """Return x twice.\n\n    Really.\n    """'
    assert pairs[0].response == "    y = 2 * x\n    return y\n"
    assert pairs[0].source == f"{path}:2"
    assert data.docstring_pairs(20, [path]) == []


@pytest.mark.slow  # parses the whole standard library (~15 s)
def test_docstring_pairs_of_the_built_in_corpus_are_many_and_fit():
    pairs = data.docstring_pairs(240)
    assert len(pairs) > 1000
    assert all(len(p.prompt.encode()) + len(p.response.encode()) <= 240 for p in pairs)
    assert pairs == data.docstring_pairs(240)  # deterministic


def test_run_pairs_records_how_it_split(tmp_path):
    path = write(tmp_path / "p.jsonl", "".join(
        json.dumps({"prompt": str(i), "response": str(-i)}) + "\n" for i in range(50)))
    hashed = data.run_pairs(path)
    assert hashed.split == "hash" and len(hashed[0]) + len(hashed[1]) == 50
    given = data.run_pairs(path, val_data=path)
    assert given.split == "given" and len(given[1]) == 50
    assert np.isclose(0.1, data.pairs.VALIDATION_FRACTION)
