"""JSON-lines results: one row per line, appended, and nothing written for a bad row."""

import json

import pytest

from sensoryneuron.files import append_json_line


def test_rows_are_appended_one_per_line_in_new_folders(tmp_path):
    path = tmp_path / "a" / "b" / "rows.jsonl"
    append_json_line(path, {"x": 1})
    append_json_line(path, {"x": 2, "tag": "y"})
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"x": 1},
        {"x": 2, "tag": "y"},
    ]


def test_a_row_json_cannot_hold_needs_a_default_and_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "rows.jsonl"
    append_json_line(path, {"x": 1})
    with pytest.raises(TypeError):
        append_json_line(path, {"x": object()})
    assert path.read_text() == '{"x": 1}\n'
    append_json_line(path, {"x": {1, 2}}, default=sorted)
    assert path.read_text().splitlines()[1] == '{"x": [1, 2]}'
