"""The one row reader (`keras_lm.data.rows`), through both of its users: pairs and labels.

Each mistake in a file reads the same for a pair file (`data.read_pairs`)
and a label file (`adaptation.labeled_data.read_rows`): one line naming
the argument, the line and the file.
"""

import json

import pytest

from keras_lm import data
from keras_lm.adaptation import labeled_data
from keras_lm.data import rows
from keras_lm.errors import UsageError

READERS = {
    "pairs": lambda path, argument: data.read_pairs(path, "text", "label", argument),
    "labels": lambda path, argument: labeled_data.read_rows(path, argument=argument),
}


def write_bytes(path, raw):
    path.write_bytes(raw)
    return str(path)


@pytest.mark.parametrize("kind", READERS)
@pytest.mark.parametrize("extension", [".jsonl", ".csv", ".tsv"])
def test_bad_utf8_names_its_line_for_both_kinds(tmp_path, kind, extension):
    good = (b'{"text": "a", "label": "x"}\n' if extension == ".jsonl"
            else b"text,label\n" if extension == ".csv" else b"text\tlabel\n")
    bad = (b'{"text": "caf\xe9", "label": "y"}\n' if extension == ".jsonl"
           else b"caf\xe9,y\n" if extension == ".csv" else b"caf\xe9\ty\n")
    path = write_bytes(tmp_path / f"rows{extension}", good + bad)
    with pytest.raises(UsageError) as error:
        READERS[kind](path, "val_data")
    message = str(error.value)
    assert message == (f"val_data: line 2 of {path!r} is not UTF-8 text (invalid continuation "
                       "byte: byte 0xe9)")
    assert error.value.argument == "val_data"


@pytest.mark.parametrize("kind", READERS)
def test_a_line_that_is_not_an_object_is_refused_for_both_kinds(tmp_path, kind):
    path = write_bytes(tmp_path / "rows.jsonl",
                       b'{"text": "a", "label": "x"}\n\n["purr", "cat"]\n')
    with pytest.raises(UsageError) as error:
        READERS[kind](path, "data")
    assert str(error.value) == f"data: line 3 of {path!r} is not a JSON object, got list"


@pytest.mark.parametrize("kind", READERS)
def test_invalid_json_and_a_malformed_table_name_their_line(tmp_path, kind):
    path = write_bytes(tmp_path / "rows.jsonl", b'{"text": "a", "label": "x"}\n{"text": \n')
    with pytest.raises(UsageError, match=r"^data: line 2 of .* is not valid JSON "
                                         r"\(Expecting value, column 10\)$"):
        READERS[kind](path, "data")
    # A field over the csv module's limit (128 KiB) is its error, on the line it ends.
    table = "text,label\na,x\n" + "b" * 200_000 + ",y\n"
    path = write_bytes(tmp_path / "rows.csv", table.encode())
    with pytest.raises(UsageError, match=r"^data: line 3 of .* is malformed \(field larger"):
        READERS[kind](path, "data")


@pytest.mark.parametrize("kind, what", [("pairs", "a pair file"), ("labels", "a label file")])
def test_other_extensions_and_missing_files_are_refused(tmp_path, kind, what):
    path = write_bytes(tmp_path / "rows.txt", b"text\n")
    with pytest.raises(UsageError) as error:
        READERS[kind](path, "data")
    assert str(error.value) == f"data: {path!r} is not {what}; use one of .jsonl, .csv, .tsv"
    with pytest.raises(UsageError, match="does not exist"):
        READERS[kind](str(tmp_path / "missing.csv"), "data")


def test_the_formats_read_the_same_rows_a_bom_dropped_a_short_row_missing_its_field(tmp_path):
    jsonl = write_bytes(tmp_path / "r.jsonl", b'{"text": "a, b", "label": "1"}\n\n'
                                              b'{"text": "c\\u2028d", "label": "2"}\n')
    csv_path = write_bytes(tmp_path / "r.csv",
                           "\ufefftext,label\n\"a, b\",1\n\"c\u2028d\",2\n".encode())
    tsv = write_bytes(tmp_path / "r.tsv", "text\tlabel\na, b\t1\nc\u2028d\t2\n".encode())
    expected = [{"text": "a, b", "label": "1"}, {"text": "c\u2028d", "label": "2"}]
    assert rows.read_row_file(jsonl) == [(1, expected[0]), (3, expected[1])]
    for path in (csv_path, tsv):
        assert rows.read_row_file(path) == [(2, expected[0]), (3, expected[1])]
    short = write_bytes(tmp_path / "short.csv", b"text,label\nalone\n")
    assert rows.read_row_file(short) == [(2, {"text": "alone"})]
    with pytest.raises(UsageError, match="line 2 has no 'label'"):
        labeled_data.read_rows(short)
    with pytest.raises(UsageError, match="line 2 of .* has no 'label'"):
        data.read_pairs(short, "text", "label")


def test_pairs_and_labels_share_one_validation_fraction_and_one_split(tmp_path):
    assert (data.pairs.VALIDATION_FRACTION is rows.VALIDATION_FRACTION
            is labeled_data.VALIDATION_FRACTION)
    assert rows.VALIDATION_FRACTION == 0.1
    fields = [(f"text {i}", "ab"[i % 2]) for i in range(400)]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in fields))
    _, pair_validation = data.split_pairs(data.read_pairs(path, "text", "label"))
    _, label_validation = labeled_data.split_rows(labeled_data.read_rows(str(path)))
    # Large enough that neither kind's fallback (too few rows) applies: the same rows.
    assert ([(p.prompt, p.response) for p in pair_validation]
            == [(r.text, r.label) for r in label_validation])
    assert 20 < len(pair_validation) < 60
    assert all(rows.holds_out(f) for f in [(p.prompt, p.response) for p in pair_validation])
