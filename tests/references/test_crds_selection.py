"""Reference selection through the real crds client over caches written by calwebb."""

import numpy as np
import pytest

from calwebb import datamodels, references
from calwebb.errors import ReferenceFileError
from calwebb.references.cache import write_local_cache


def _set_meta(model, values):
    """Set ``group__item=value`` keyword arguments as ``model.meta.group.item``."""
    for path, value in values.items():
        group, item = path.split("__")
        model.meta.update({group: {item: value}})


def _reference(tmp_path, name, reftype, useafter="2000-01-01T00:00:00", value=1.0, **meta):
    model = datamodels.GainModel(data=np.full((8, 8), value, np.float32))
    model.meta.reftype = reftype.upper()
    model.meta.instrument.name = meta.pop("instrument", "NIRCAM")
    model.meta.instrument.detector = meta.pop("detector", "NRCA1")
    model.meta.useafter = useafter
    model.meta.pedigree = "SIMULATION"
    model.meta.subarray.name = meta.pop("subarray", "FULL")
    _set_meta(model, meta)
    path = tmp_path / "refs" / name
    path.parent.mkdir(exist_ok=True)
    model.save(path)
    return path


def _science(**values):
    model = datamodels.ImageModel((8, 8))
    model.meta.instrument.name = "NIRCAM"
    model.meta.instrument.detector = "NRCA1"
    model.meta.instrument.filter = "F200W"
    model.meta.instrument.pupil = "CLEAR"
    model.meta.exposure.type = "NRC_IMAGE"
    model.meta.exposure.readpatt = "MEDIUM8"
    model.meta.subarray.name = "FULL"
    model.meta.observation.date = "2024-03-01"
    model.meta.observation.time = "12:00:00"
    _set_meta(model, values)
    return model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    files = [
        _reference(tmp_path, "jwst_nircam_gain_9001.fits", "gain", detector="NRCA1"),
        _reference(tmp_path, "jwst_nircam_gain_9002.fits", "gain", detector="NRCA2"),
        _reference(tmp_path, "jwst_miri_gain_9001.fits", "gain", instrument="MIRI",
                   detector="MIRIMAGE"),
        _reference(tmp_path, "jwst_nircam_readnoise_9001.fits", "readnoise",
                   exposure__readpatt="MEDIUM8"),
        _reference(tmp_path, "jwst_nircam_readnoise_9002.fits", "readnoise",
                   exposure__p_readpatt="RAPID | BRIGHT1 |"),
        _reference(tmp_path, "jwst_nircam_mask_9001.fits", "mask"),
        _reference(tmp_path, "jwst_nircam_mask_9002.fits", "mask", subarray="SUB160"),
        _reference(tmp_path, "jwst_nircam_flat_9001.fits", "flat", instrument__filter="F200W",
                   instrument__pupil="CLEAR"),
        _reference(tmp_path, "jwst_nircam_flat_9002.fits", "flat", instrument__filter="F150W",
                   instrument__pupil="CLEAR"),
        _reference(tmp_path, "jwst_nircam_flat_9003.fits", "flat", instrument__filter="F200W",
                   instrument__pupil="MASKBAR"),
        _reference(tmp_path, "jwst_nircam_dark_9001.fits", "dark",
                   exposure__type="NRC_IMAGE"),
        _reference(tmp_path, "jwst_nircam_dark_9002.fits", "dark",
                   exposure__type="NRC_TSIMAGE"),
        _reference(tmp_path, "jwst_nircam_superbias_9001.fits", "superbias"),
        _reference(tmp_path, "jwst_nircam_superbias_9002.fits", "superbias",
                   useafter="2024-01-01T00:00:00"),
        _reference(tmp_path, "jwst_nircam_superbias_9003.fits", "superbias",
                   useafter="2025-01-01T00:00:00"),
    ]
    root = write_local_cache(files, tmp_path / "crds", "jwst_9000.pmap")
    for variable in ("CRDS_SERVER_URL", "CRDS_CONTEXT", "CRDS_MODE", "CALWEBB_REFS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CRDS_PATH", str(root))
    return root


@pytest.mark.parametrize(
    ("reftype", "science", "expected"),
    [
        ("gain", {}, "jwst_nircam_gain_9001.fits"),
        ("gain", {"instrument__detector": "NRCA2"}, "jwst_nircam_gain_9002.fits"),
        ("gain", {"instrument__name": "MIRI", "instrument__detector": "MIRIMAGE"},
         "jwst_miri_gain_9001.fits"),
        ("readnoise", {}, "jwst_nircam_readnoise_9001.fits"),
        ("readnoise", {"exposure__readpatt": "BRIGHT1"}, "jwst_nircam_readnoise_9002.fits"),
        ("mask", {}, "jwst_nircam_mask_9001.fits"),
        ("mask", {"subarray__name": "SUB160"}, "jwst_nircam_mask_9002.fits"),
        ("mask", {"subarray__name": "SUB320"}, "jwst_nircam_mask_9001.fits"),
        ("flat", {}, "jwst_nircam_flat_9001.fits"),
        ("flat", {"instrument__filter": "F150W"}, "jwst_nircam_flat_9002.fits"),
        ("flat", {"instrument__pupil": "MASKBAR"}, "jwst_nircam_flat_9003.fits"),
        ("dark", {"exposure__type": "NRC_TSIMAGE"}, "jwst_nircam_dark_9002.fits"),
        ("superbias", {"observation__date": "2023-05-01"}, "jwst_nircam_superbias_9001.fits"),
        ("superbias", {"observation__date": "2024-01-01", "observation__time": "00:00:00"},
         "jwst_nircam_superbias_9002.fits"),
        ("superbias", {"observation__date": "2026-01-01"}, "jwst_nircam_superbias_9003.fits"),
    ],
)
def test_selection_by_keyword_and_date(cache, reftype, science, expected):
    path = references.get_reference_file(_science(**science), reftype)
    assert path.endswith(expected)
    assert path.startswith(str(cache))


def test_types_without_files_are_not_applicable(cache):
    assert references.get_reference_file(_science(), "photom") == "N/A"
    assert references.get_parameter_reference(_science(), "JumpStep") is None


def test_no_match_is_a_clear_error(cache):
    with pytest.raises(ReferenceFileError, match="GAIN"):
        references.get_reference_file(_science(instrument__detector="NRCB4"), "gain")
    with pytest.raises(ReferenceFileError, match="SUPERBIAS"):
        references.get_reference_file(_science(observation__date="1990-01-01"), "superbias")


def test_context_pinning(cache, tmp_path, monkeypatch):
    newer = _reference(tmp_path, "jwst_nircam_gain_9101.fits", "gain", value=5.0)
    write_local_cache([newer], cache, "jwst_9100.pmap")
    monkeypatch.setenv("CRDS_CONTEXT", "jwst_9100.pmap")
    assert references.get_reference_file(_science(), "gain").endswith("gain_9101.fits")
    assert references.crds_context() == "jwst_9100.pmap"
    monkeypatch.setenv("CRDS_CONTEXT", "jwst_9000.pmap")
    assert references.get_reference_file(_science(), "gain").endswith("gain_9001.fits")
    monkeypatch.setenv("CRDS_CONTEXT", "jwst_9999.pmap")
    with pytest.raises(ReferenceFileError):
        references.get_reference_file(_science(), "gain")


def test_missing_cache_is_reported(tmp_path, monkeypatch):
    for variable in ("CRDS_PATH", "CRDS_SERVER_URL", "CRDS_CONTEXT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CALWEBB_REFS", str(tmp_path / "nothing"))
    with pytest.raises(ReferenceFileError, match="no reference files"):
        references.get_reference_file(_science(), "gain")


def test_embedded_reference_set_is_used_without_crds_configuration(cache, monkeypatch):
    monkeypatch.delenv("CRDS_PATH")
    monkeypatch.setenv("CALWEBB_REFS", str(cache))
    assert references.get_reference_file(_science(), "gain").endswith("gain_9001.fits")


def test_header_mismatch_is_reported(cache, tmp_path):
    wrong = _reference(tmp_path, "wrong_gain.fits", "gain", detector="NRCB1")
    with pytest.raises(ReferenceFileError, match="DETECTOR is NRCB1 but the data are NRCA1"):
        references.check_reference_matches(wrong, _science())


def test_parameter_reference_is_selected(cache, tmp_path):
    import asdf

    pars = tmp_path / "refs" / "jwst_nircam_pars-jumpstep_9001.asdf"
    asdf.AsdfFile({
        "class": "calwebb.jump.step.JumpStep", "name": "jump",
        "parameters": {"rejection_threshold": 6.0},
        "meta": {"reftype": "pars-jumpstep", "instrument": {"name": "NIRCAM"},
                 "exposure": {"type": "NRC_IMAGE"}, "useafter": "2000-01-01T00:00:00",
                 "pedigree": "SIMULATION"},
    }).write_to(pars)
    write_local_cache([pars], cache, "jwst_9200.pmap")
    import os

    os.environ["CRDS_CONTEXT"] = "jwst_9200.pmap"
    try:
        assert references.get_parameter_reference(_science(), "JumpStep").endswith(pars.name)
        assert references.get_parameter_reference(
            _science(exposure__type="NRC_TSIMAGE"), "JumpStep") is None
    finally:
        del os.environ["CRDS_CONTEXT"]


def test_steps_record_the_references_they_used(cache):
    from calwebb.stpipe import Step

    class UsesGain(Step):
        reference_file_types = ["gain"]

        def process(self, model):
            gain = self.open_reference(model, "gain")
            if gain is None:
                return self.skip_model(model, "no GAIN reference")
            model.data[...] = gain.data
            self.set_status(model, "COMPLETE")
            return model

    result = UsesGain.call(_science())
    np.testing.assert_array_equal(result.data, 1.0)
    assert result.meta.ref_file.gain.name == "crds://jwst_nircam_gain_9001.fits"
    assert result.meta.ref_file.crds.context_used == "jwst_9000.pmap"
    skipped = UsesGain.call(_science(), override_gain="N/A")
    assert skipped.meta.cal_step.usesgain == "SKIPPED"
    assert skipped.meta.ref_file.gain.name == "N/A"


def test_refs_command_explains_the_choice(cache, tmp_path, capsys):
    from calwebb.cli.main import main

    science = _science()
    path = tmp_path / "jw01_nrca1_rate.fits"
    science.save(path)
    assert main(["refs", str(path), "--pipeline", "jump"]) == 0
    text = capsys.readouterr().out
    assert "jwst_9000.pmap" in text
    assert "jwst_nircam_gain_9001.fits" in text and "instrument.detector=NRCA1" in text
    assert "jwst_nircam_readnoise_9001.fits" in text and "exposure.readpatt=MEDIUM8" in text
    assert "2000-01-01T00:00:00" in text


def test_reference_metadata_is_read_again_when_the_file_changes(tmp_path):
    import os

    from calwebb.references.cache import reference_metadata

    path = _reference(tmp_path, "gain.fits", "gain", detector="NRCA1")
    assert reference_metadata(path)["META.INSTRUMENT.DETECTOR"] == "NRCA1"
    first = os.stat(path)
    path = _reference(tmp_path, "gain.fits", "gain", detector="NRCB4")  # (rewritten)
    os.utime(path, ns=(first.st_atime_ns, first.st_mtime_ns + 1_000_000))
    assert reference_metadata(path)["META.INSTRUMENT.DETECTOR"] == "NRCB4"
    reference_metadata(path)["META.INSTRUMENT.DETECTOR"] = "changed by a caller"
    assert reference_metadata(path)["META.INSTRUMENT.DETECTOR"] == "NRCB4"
    with pytest.raises(ReferenceFileError, match="cannot read the reference header"):
        reference_metadata(tmp_path / "absent.fits")


def _two_step_pipeline():
    """A pipeline whose steps declare GAIN + READNOISE and MASK + FLAT, and note what they
    were given (``ran``)."""
    from calwebb.stpipe import Pipeline, Step

    class UsesGain(Step):
        reference_file_types = ["gain", "readnoise"]

        def process(self, model):
            model.data[...] = self.open_reference(model, "gain").data
            self.get_reference_file(model, "readnoise")
            return model

    class UsesMask(Step):
        reference_file_types = ["mask", "flat"]

        def process(self, model):
            self.get_reference_file(model, "mask")
            return model

    class GainThenMask(Pipeline):
        step_defs = {"gain": UsesGain, "mask": UsesMask}
        ran = False

        def process(self, model):
            type(self).ran = True
            return self.mask.run(self.gain.run(model))

    return GainThenMask


def test_a_pipeline_asks_crds_once_up_front(cache, monkeypatch):
    """Prefetch (framework.md §6.1): one question for every type of the steps that will run,
    overridden ones aside; the steps are answered from it while the parameters CRDS matches
    on are unchanged (others may change), and CRDS is asked again once one of them is."""
    from calwebb.references import helper

    monkeypatch.setattr(helper, "_may_fork", lambda: False)  # the questions are counted here
    monkeypatch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")
    asked = []
    ask = references.ask_crds
    monkeypatch.setattr(references, "ask_crds", lambda filename, parameters, reftypes: (
        asked.append(sorted(reftypes)) or ask(filename, parameters, reftypes)))
    result = _two_step_pipeline().call(_science(), steps={"mask": {"override_flat": "N/A"}})
    assert asked == [["gain", "mask", "readnoise"]]
    assert result.meta.ref_file.gain.name == "crds://jwst_nircam_gain_9001.fits"
    assert result.meta.ref_file.readnoise.name == "crds://jwst_nircam_readnoise_9001.fits"
    assert result.meta.ref_file.crds.context_used == "jwst_9000.pmap"
    np.testing.assert_array_equal(result.data, 1.0)

    model = _science()
    references.prefetch_references(model, ["gain"])
    model.meta.target.proposer_name = "changed"  # not a parameter CRDS matches on
    assert references.get_reference_file(model, "gain").endswith("gain_9001.fits")
    model.meta.instrument.detector = "NRCA2"
    assert references.get_reference_file(model, "gain").endswith("gain_9002.fits")
    assert asked[1:] == [["gain"], ["gain"]]


def test_a_type_crds_cannot_choose_stops_the_pipeline_before_it_runs(cache):
    pipeline = _two_step_pipeline()
    with pytest.raises(ReferenceFileError, match="GAIN"):
        pipeline.call(_science(instrument__detector="NRCB4"))
    assert not pipeline.ran


@pytest.mark.parametrize("parameter_references", [False, True])
def test_a_helper_process_answers_crds_questions_while_numba_starts(
        cache, tmp_path, parameter_references):
    """Run alone (one thread, crds not imported), the pipeline's process never imports the
    crds client, also when it asks for parameter references first: a forked helper answers,
    the references are the same."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "run.py"
    script.write_text(
        "import sys\n"
        "sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "from test_crds_selection import _science, _two_step_pipeline\n"
        "from calwebb.references import helper\n"
        "assert helper._may_fork()\n"
        "result = _two_step_pipeline().call(_science())\n"
        "print('crds imported:', 'crds' in sys.modules, 'helper:', helper._helper is not None)\n"
        "print(result.meta.ref_file.gain.name, result.meta.ref_file.mask.name,\n"
        "      result.meta.ref_file.crds.context_used, result.meta.ref_file.crds.sw_version)\n")
    here = Path(__file__).parent
    environment = dict(os.environ)
    environment.pop("STPIPE_DISABLE_CRDS_STEPPARS", None)
    if not parameter_references:
        environment["STPIPE_DISABLE_CRDS_STEPPARS"] = "true"
    done = subprocess.run([sys.executable, str(script), str(here), str(here.parent)],
                          capture_output=True, text=True, timeout=300, env=environment)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "crds imported: False helper: True"
    assert lines[1] == ("crds://jwst_nircam_gain_9001.fits crds://jwst_nircam_mask_9001.fits "
                        f"jwst_9000.pmap {references.crds_version()}")


def test_questions_go_to_this_process_when_the_helper_fails(cache, monkeypatch):
    """CRDS's own errors come back from the helper as they are; a helper that died is
    stopped and the question answered here."""
    from calwebb.references import helper

    monkeypatch.setattr(helper, "_may_fork", lambda: True)
    references.forget_crds_state()
    references.start_helper()
    running = helper._helper
    assert running is not None
    try:
        with pytest.raises(ReferenceFileError, match="GAIN"):
            references.get_reference_file(_science(instrument__detector="NRCB4"), "gain")
        assert helper._helper is running
        running.process.kill()
        running.process.join()
        assert references.get_reference_file(_science(), "gain").endswith("gain_9001.fits")
        assert helper._helper is None
    finally:
        helper.stop()


def test_a_forked_process_does_not_ask_over_its_parents_helper(cache, monkeypatch):
    """A process forked after the helper started (a user's worker) has no helper of its own
    (it would share the parent's connection): it asks CRDS itself."""
    import multiprocessing

    from calwebb.references import helper

    monkeypatch.setattr(helper, "_may_fork", lambda: True)
    references.forget_crds_state()
    references.start_helper()
    try:
        assert helper._helper is not None
        with multiprocessing.get_context("fork").Pool(1) as pool:
            assert pool.apply(_helper_in_this_process) is False
        assert helper._helper is not None
        assert references.get_reference_file(_science(), "gain").endswith("gain_9001.fits")
    finally:
        helper.stop()


def _helper_in_this_process() -> bool:
    from calwebb.references import helper

    return helper._helper is not None


def test_threads_may_ask_the_helper_at_once(cache, monkeypatch):
    """Questions from several threads (a threaded scheduler running exposures) go over the
    helper's one connection one at a time, each getting its own answer."""
    from concurrent.futures import ThreadPoolExecutor

    from calwebb.references import helper

    monkeypatch.setattr(helper, "_may_fork", lambda: True)
    references.forget_crds_state()
    references.start_helper()
    try:
        detectors = ["NRCA1", "NRCA2"] * 20
        with ThreadPoolExecutor(4) as pool:
            found = list(pool.map(lambda detector: references.best_references(
                _science(instrument__detector=detector), ["gain"])["gain"], detectors))
        assert helper._helper is not None
        assert [path.rsplit("_", 1)[-1] for path in found] == [
            "9001.fits" if detector == "NRCA1" else "9002.fits" for detector in detectors]
    finally:
        helper.stop()
