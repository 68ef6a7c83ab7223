"""Remembered parses: a reference file's headers are parsed once per version of the file."""

import os

import numpy as np
import pytest

from calwebb import datamodels
from calwebb.datamodels import remembered as memo
from calwebb.references.cache import reference_metadata


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("CALWEBB_CACHE_DIR", str(directory))
    return directory / "parsed"


def _counting(value):
    calls = []

    def compute():
        calls.append(1)
        return value

    return compute, calls


def test_parsed_once_per_version_of_the_file(cache, tmp_path):
    path = tmp_path / "file.fits"
    path.write_bytes(b"x" * 10)
    compute, calls = _counting({"meta": {"a": 1}})
    assert memo.remembered(path, "kind", compute) == {"meta": {"a": 1}}
    assert memo.remembered(path, "kind", compute) == {"meta": {"a": 1}}
    assert len(calls) == 1 and len(list(cache.glob("*.pickle"))) == 1
    assert not list(cache.glob("*.part"))
    memo.remembered(path, "another kind", compute)  # another parse of the same file
    assert len(calls) == 2
    path.write_bytes(b"y" * 11)  # a new version
    memo.remembered(path, "kind", compute)
    assert len(calls) == 3


def test_damaged_or_unwritable_cache_only_costs_a_parse(cache, tmp_path, monkeypatch):
    path = tmp_path / "file.fits"
    path.write_bytes(b"x")
    compute, calls = _counting([1, 2])
    memo.remembered(path, "kind", compute)
    (entry,) = cache.glob("*.pickle")
    entry.write_bytes(b"not a pickle")
    assert memo.remembered(path, "kind", compute) == [1, 2] and len(calls) == 2
    assert memo.remembered(path, "kind", compute) == [1, 2] and len(calls) == 2  # replaced
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory would be")
    monkeypatch.setenv("CALWEBB_CACHE_DIR", str(blocked))
    assert memo.remembered(path, "kind", compute) == [1, 2] and len(calls) == 3
    assert memo.remembered(tmp_path / "missing.fits", "kind", compute) == [1, 2]


def test_oldest_half_goes_when_full(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(memo, "MAX_ENTRIES", 4)
    for index in range(5):
        path = tmp_path / f"file{index}.fits"
        path.write_bytes(b"x")
        memo.remembered(path, "kind", lambda index=index: index)
    assert len(list(cache.glob("*.pickle"))) == 3


def test_reference_model_read_from_its_remembered_parse(cache, tmp_path):
    dq = np.array([[0, 1], [2, 0]], np.uint32)
    original = datamodels.SaturationModel(data=np.full((2, 2), 5e4, np.float32), dq=dq)
    original.meta.instrument.name, original.meta.instrument.detector = "MIRI", "MIRIMAGE"
    path = tmp_path / "jwst_miri_saturation_0001.fits"
    original.save(path)
    first = datamodels.SaturationModel(path)
    assert len(list(cache.glob("*.pickle"))) == 1
    second = datamodels.SaturationModel(path)
    assert second.tree == first.tree
    np.testing.assert_array_equal(second.data, original.data)
    np.testing.assert_array_equal(second.dq, dq)
    assert reference_metadata(path)["META.INSTRUMENT.DETECTOR"] == "MIRIMAGE"
    assert len(list(cache.glob("*.pickle"))) == 2
    original.meta.instrument.detector = "MIRIFULONG"  # the file changes: parsed again
    original.save(path)
    os.utime(path, ns=(1, 1))
    assert datamodels.SaturationModel(path).meta.instrument.detector == "MIRIFULONG"
    science = datamodels.ImageModel(data=np.zeros((2, 2), np.float32))
    science.save(tmp_path / "science.fits")
    datamodels.ImageModel(tmp_path / "science.fits")  # science files are not remembered
    assert len(list(cache.glob("*.pickle"))) == 3


def test_remembered_arrays_load_from_any_working_directory(cache, tmp_path, monkeypatch):
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    (tmp_path / "refs").mkdir()
    datamodels.GainModel(data=data).save(tmp_path / "refs" / "gain.fits")
    monkeypatch.chdir(tmp_path / "refs")
    datamodels.GainModel("gain.fits")  # parsed from a relative path
    monkeypatch.chdir(tmp_path)
    again = datamodels.GainModel(tmp_path / "refs" / "gain.fits")
    assert len(list(cache.glob("*.pickle"))) == 1
    np.testing.assert_array_equal(again.data, data)


def test_a_change_of_the_parsing_code_parses_again(cache, tmp_path):
    """The code that made a result is part of its key: a parser edited since is run again."""
    path = tmp_path / "file.fits"
    path.write_bytes(b"x")
    parser = tmp_path / "parser.py"
    parser.write_text("def make(calls):\n    return lambda: calls.append(1) or 'parsed'\n")
    namespace = {}
    exec(compile(parser.read_text(), str(parser), "exec"), namespace)
    calls = []
    compute = namespace["make"](calls)
    memo.remembered(path, "kind", compute)
    memo.remembered(path, "kind", compute)
    assert len(calls) == 1
    os.utime(parser, ns=(10**18, 10**18))  # the parser's source is edited
    memo._code_version.cache_clear()  # (as in a new process)
    assert memo.remembered(path, "kind", compute) == "parsed" and len(calls) == 2
