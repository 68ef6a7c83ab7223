"""ModelLibrary kept on disk: changed members wait as raw arrays plus their metadata."""

import numpy as np

from calwebb import datamodels
from calwebb.associations.library import ModelLibrary


def _image(tmp_path, name, value):
    model = datamodels.ImageModel(data=np.full((6, 5), value, np.float32),
                                  dq=np.zeros((6, 5), np.uint32))
    model.meta.filename = name
    model.meta.exposure.exposure_time = 10.0 * value
    model.meta.group_id = name
    path = tmp_path / name
    model.save(path)
    return path


def test_changed_members_come_back_as_they_were_shelved(tmp_path):
    paths = [_image(tmp_path, f"m{i}_cal.fits", i + 1.0) for i in range(2)]
    before = [path.read_bytes() for path in paths]
    library = ModelLibrary(paths, on_disk=True, temp_directory=tmp_path)
    with library:
        model = library.writable(0)
        model.data[2, 3] = -7.0
        model.dq[1, 1] = 4
        model.meta.background.level = 0.25
        library.shelve(model, 0)
    with library:
        again = library.borrow(0)
        assert again.data[2, 3] == -7.0 and again.dq[1, 1] == 4
        assert again.meta.background.level == 0.25
        assert again.meta.exposure.exposure_time == 10.0
        assert again.meta.filename == "m0_cal.fits"  # the member keeps its own name
        assert not again.has_array("err")  # only the arrays the member had
        library.shelve(again, 0, modify=False)
    stored = sorted(p.name.split("-")[0] for p in library._temporary_directory().rglob("*.npy"))
    assert stored == ["data", "dq"]
    streamed = library.source(0)  # for readers that stream: a new model, arrays read lazily
    assert streamed is not library.source(0) and streamed.meta.filename == "m0_cal.fits"
    assert streamed.data[2, 3] == -7.0 and streamed.meta.background.level == 0.25
    assert library.source(1) == paths[1]  # an unchanged member is still its file
    library.close()
    assert not any(tmp_path.glob("calwebb_library_*"))
    assert [path.read_bytes() for path in paths] == before  # inputs never modified


def test_reshelving_rewrites_only_the_arrays_read_and_old_loaders_fail(tmp_path):
    import pytest

    path = _image(tmp_path, "m0_cal.fits", 1.0)
    library = ModelLibrary([path], on_disk=True, temp_directory=tmp_path)
    with library:
        library.shelve(library.writable(0), 0)
    files = {p.name.split("-")[0]: p for p in library._temporary_directory().rglob("*.npy")}
    stale = library.source(0)  # holds loaders of this version, nothing read yet
    with library:
        model = library.borrow(0)
        model.data[0, 0] = 5.0  # DQ is never read: its file stays
        model.meta.background.level = 1.5
        library.shelve(model, 0)
    now = {p.name.split("-")[0]: p for p in library._temporary_directory().rglob("*.npy")}
    assert now["dq"] == files["dq"] and now["data"] != files["data"]
    assert not files["data"].exists()  # the replaced version is gone ...
    with pytest.raises(FileNotFoundError):
        stale.data  # noqa: B018 - ... so an old loader fails instead of reading new data
    fresh = library.source(0)
    assert fresh.data[0, 0] == 5.0 and fresh.meta.background.level == 1.5
    library.close()
