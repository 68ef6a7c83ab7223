"""A two-step pipeline defined here proves the framework's contract (framework.md §2-§9)."""


import numpy as np
import pytest
from astropy.io import fits

import calwebb
from calwebb import datamodels, memory, references
from calwebb.errors import ParameterError, ReferenceFileError
from calwebb.stpipe import registry
from toy_steps import AddStep, ScaleStep, SplitStep, ToyPipeline

pytestmark = pytest.mark.usefixtures("no_reference_source")


@pytest.fixture
def rate_file(tmp_path):
    model = datamodels.ImageModel(data=np.ones((5, 6), np.float32))
    model.meta.instrument.name = "NIRCAM"
    path = tmp_path / "jw01_nrca1_rate.fits"
    model.save(path)
    return path


def test_order_and_statuses(rate_file, tmp_path):
    result = ToyPipeline.call(rate_file, steps={"add": {"amount": 3}, "scale": {"factor": 10}})
    np.testing.assert_array_equal(result.data, (1 + 3) * 10)  # add first, then scale
    assert result.meta.cal_step.group_scale == "COMPLETE"
    assert result.meta.cal_step.gain_scale == "COMPLETE"
    assert not list(tmp_path.glob("*_toy*"))  # nothing saved from Python by default


def test_save_results_names_and_keywords(rate_file, tmp_path):
    out = tmp_path / "out"
    ToyPipeline.call(rate_file, output_dir=str(out), save_results=True,
                     steps={"add": {"save_results": True}})
    assert sorted(p.name for p in out.iterdir()) == [
        "jw01_nrca1_add.fits", "jw01_nrca1_toypipeline.fits"]
    header = fits.getheader(out / "jw01_nrca1_toypipeline.fits")
    assert header["S_GRPSCL"] == "COMPLETE" and header["S_GANSCL"] == "COMPLETE"
    assert header["CAL_VER"]
    intermediate = datamodels.open(out / "jw01_nrca1_add.fits")
    np.testing.assert_array_equal(intermediate.data, 2.0)
    assert intermediate.meta.cal_step.gain_scale is None


def test_output_file_implies_saving(rate_file, tmp_path):
    ToyPipeline.call(rate_file, output_file="stage", output_dir=str(tmp_path / "o"))
    assert (tmp_path / "o" / "stage_toypipeline.fits").exists()


def test_skip_in_pipeline(rate_file, tmp_path):
    result = ToyPipeline.call(rate_file, output_dir=str(tmp_path),
                              steps={"scale": {"skip": True, "save_results": True}})
    np.testing.assert_array_equal(result.data, 2.0)
    assert result.meta.cal_step.toy_scale == "SKIPPED"  # recorded under the class alias
    assert result.meta.cal_step.gain_scale is None
    assert not list(tmp_path.glob("*_scale.fits"))  # a skipped step saves nothing


def test_standalone_step_ignores_skip_and_names_by_class(rate_file, tmp_path):
    result = AddStep.call(rate_file, skip=True, save_results=True, output_dir=str(tmp_path))
    np.testing.assert_array_equal(result.data, 2.0)
    assert (tmp_path / "jw01_nrca1_addstep.fits").exists()


def test_tuple_results_get_index_components(rate_file, tmp_path):
    SplitStep.call(rate_file, save_results=True, output_dir=str(tmp_path))
    names = sorted(p.name for p in tmp_path.glob("*splitstep*"))
    assert names == ["jw01_nrca1_0_splitstep.fits", "jw01_nrca1_1_splitstep.fits"]


def test_inputs_are_never_modified(rate_file):
    before = rate_file.read_bytes()
    model = datamodels.ImageModel(rate_file)
    AddStep.call(model, amount=5)
    np.testing.assert_array_equal(model.data, 1.0)
    AddStep.call(rate_file, amount=5)
    assert rate_file.read_bytes() == before


def test_export_config_reproduces_the_run(rate_file, tmp_path):
    first = ToyPipeline.call(rate_file, note="y", steps={"add": {"amount": 7},
                                                         "scale": {"factor": 0.5}})
    pipeline = ToyPipeline.configured(note="y", steps={"add": {"amount": 7},
                                                      "scale": {"factor": 0.5}})
    path = pipeline.export_config(tmp_path / "toy.asdf")
    again = ToyPipeline.call(rate_file, config_file=path)
    np.testing.assert_array_equal(first.data, again.data)
    assert ToyPipeline.configured(config_file=path).get_pars() == pipeline.get_pars()
    # and the registry resolves the parameter file to its class
    assert registry.resolve(str(path)) == (ToyPipeline, str(path))


def _write_pars(path, cls, parameters, steps=()):
    import asdf

    tree = {"class": f"{cls.__module__}.{cls.__name__}", "name": cls.__name__,
            "parameters": parameters,
            "steps": [{"class": "x", "name": n, "parameters": p} for n, p in steps]}
    asdf.AsdfFile(tree).write_to(path)
    return path


def test_four_levels_of_precedence(rate_file, tmp_path, monkeypatch):
    # level 2: CRDS parameter references for the child and for the pipeline
    child_pars = _write_pars(tmp_path / "pars-addstep.asdf", AddStep, {"amount": 2.0})
    pipe_pars = _write_pars(tmp_path / "pars-toypipeline.asdf", ToyPipeline, {"note": "crds"},
                            [("scale", {"factor": 3.0})])
    chosen = {"AddStep": str(child_pars), "ToyPipeline": str(pipe_pars)}
    monkeypatch.setattr(references, "get_parameter_reference",
                        lambda model, name: chosen.get(name))

    defaults = ToyPipeline().get_pars()
    assert defaults["steps"]["add"]["amount"] == 1.0 and defaults["note"] == "x"

    crds = ToyPipeline.configured(rate_file).get_pars()
    assert crds["steps"]["add"]["amount"] == 2.0
    assert crds["steps"]["scale"]["factor"] == 3.0 and crds["note"] == "crds"
    assert ToyPipeline.configured(rate_file, disable_crds_steppars=True).get_pars() == defaults
    monkeypatch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")
    assert ToyPipeline.configured(rate_file).get_pars() == defaults
    monkeypatch.delenv("STPIPE_DISABLE_CRDS_STEPPARS")

    user = _write_pars(tmp_path / "user.asdf", ToyPipeline, {"note": "user"},
                       [("scale", {"factor": 4.0})])
    from_file = ToyPipeline.configured(rate_file, config_file=user).get_pars()
    assert from_file["note"] == "user" and from_file["steps"]["scale"]["factor"] == 4.0
    assert from_file["steps"]["add"]["amount"] == 2.0  # untouched by the file: CRDS value

    explicit = ToyPipeline.configured(rate_file, config_file=user, note="kw",
                                      steps={"scale": {"factor": 5}}).get_pars()
    assert explicit["note"] == "kw" and explicit["steps"]["scale"]["factor"] == 5.0

    result = ToyPipeline.call(rate_file, config_file=user)
    np.testing.assert_array_equal(result.data, (1 + 2) * 4)
    # Step().run() never consults CRDS parameter references
    np.testing.assert_array_equal(ToyPipeline().run(rate_file).data, (1 + 1) * 2)


def test_unknown_parameters_and_steps(rate_file):
    with pytest.raises(ParameterError, match="unknown parameter 'amont'"):
        AddStep.call(rate_file, amont=3)
    with pytest.raises(ParameterError, match="no step 'jump'"):
        ToyPipeline.call(rate_file, steps={"jump": {"skip": True}})
    with pytest.raises(ParameterError, match="not a valid float"):
        ToyPipeline.call(rate_file, steps={"add": {"amount": "lots"}})


def test_missing_override_fails_before_processing(rate_file, tmp_path):
    with pytest.raises(ReferenceFileError, match="override_gain"):
        ToyPipeline.call(rate_file, steps={"scale": {"override_gain": str(tmp_path / "no.fits")}})


def test_override_parameters_exist_per_reference_type():
    assert "override_gain" in ScaleStep.parameters()
    assert ScaleStep.parameters()["override_gain"].type == "is_string_or_datamodel"


def test_hooks_replace_input_and_result(rate_file):
    doubled = []

    def double(model):
        doubled.append(True)
        model.data *= 2
        return model

    result = AddStep.call(rate_file, pre_hooks=[double], post_hooks=[ScaleStep])
    np.testing.assert_array_equal(result.data, (1 * 2 + 1) * 2)
    assert doubled


def test_registry_resolves_names():
    assert registry.resolve("calwebb_toy")[0] is ToyPipeline
    assert registry.resolve("ToyPipeline")[0] is ToyPipeline
    assert registry.resolve("calwebb::toy_add")[0] is AddStep
    assert registry.resolve("jwst.toy.AddStep")[0] is AddStep
    assert registry.resolve(f"{AddStep.__module__}.AddStep")[0] is AddStep
    with pytest.raises(ParameterError, match="unknown step"):
        registry.resolve("nosuchstep")


def test_yaml_parameter_files(rate_file, tmp_path):
    path = tmp_path / "pars.yaml"
    path.write_text("class: calwebb_toy\nname: toy\nparameters:\n  note: yaml\nsteps:\n"
                    "- name: add\n  parameters:\n    amount: 4\n")
    result = ToyPipeline.call(rate_file, config_file=path)
    np.testing.assert_array_equal(result.data, (1 + 4) * 2)
    assert ToyPipeline.configured(config_file=path).note == "yaml"


def test_a_run_allocates_without_huge_page_advice_and_restores_it(rate_file, monkeypatch,
                                                                    huge_page_advice_on):
    """numpy's transparent-huge-page advice is off while a pipeline runs (the kernel may
    compact memory on the spot for it), back as it was afterwards; NUMPY_MADVISE_HUGEPAGE
    set by the user wins."""
    seen = []
    monkeypatch.setattr(AddStep, "process", lambda self, model: seen.append(
        memory.huge_page_advice()) or model)
    ToyPipeline.call(rate_file)
    assert seen == [False] and memory.huge_page_advice() is True
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    ToyPipeline.call(rate_file)
    assert seen == [False, True]


class _EarlySaving(ToyPipeline):
    """Saves its result from process, before it returns, as Image2 saves a cal file."""

    def process(self, model):
        model = self.add.run(self.scale.run(model))
        self.save_result_early(model)
        model.meta.filename = "changed after the early save.fits"
        return model


def test_a_result_saved_early_is_saved_once_as_run_would_save_it(rate_file, tmp_path,
                                                                   monkeypatch):
    saved = []
    original = _EarlySaving.save_model

    def counting(self, model, *args, **kwargs):
        path = original(self, model, *args, **kwargs)
        saved.append(path)
        return path

    monkeypatch.setattr(_EarlySaving, "save_model", counting)
    _EarlySaving.call(rate_file, save_results=True, output_dir=str(tmp_path / "early"))
    assert len(saved) == 1 and saved[0].parent.name == "early"
    early = datamodels.open(saved[0])
    np.testing.assert_array_equal(early.data, (1 * 2) + 1)
    assert early.meta.filename == saved[0].name  # as it was when saved
    assert early.meta.calibration_software_version == calwebb.__version__
    saved.clear()  # with a post-hook (it may change the result), run saves it at the end
    _EarlySaving.call(rate_file, save_results=True, output_dir=str(tmp_path / "hooked"),
                      post_hooks=[lambda model: None])
    assert [path.parent.name for path in saved] == ["hooked"]


@pytest.mark.parametrize("step_class, expected", [
    ("ResampleStep", "resample cannot use a int: give an image model"),
    ("SkyMatchStep", "skymatch cannot use a int: give image models"),
    ("OutlierDetectionStep", "outlier_detection cannot use a int: give a model"),
])
def test_library_steps_name_a_missing_member_file_and_a_wrong_input(step_class, expected,
                                                                     tmp_path):
    from calwebb.errors import DataModelError

    step = registry.resolve(step_class)[0]()
    missing = tmp_path / "missing_cal.fits"
    with pytest.raises(DataModelError, match=r"missing_cal\.fits: no such file"):
        step.prepare_input([str(missing)])
    with pytest.raises(DataModelError, match=expected):
        step.prepare_input([3])
    existing = tmp_path / "a_cal.fits"
    existing.write_bytes(b"")
    assert step.prepare_input((existing,)) == [str(existing)]
