"""The calwebb command: strun-style parsing, help, errors and exit codes."""

import numpy as np
import pytest

from calwebb import datamodels
from calwebb.cli.main import main
from calwebb.cli.run import parse, split_values
from toy_steps import ToyPipeline  # noqa: F401 - registers the toy steps


@pytest.fixture
def rate_file(tmp_path):
    model = datamodels.ImageModel(data=np.ones((5, 6), np.float32))
    path = tmp_path / "jw01_nrca1_rate.fits"
    model.save(path)
    return path


def test_parse_strun_spellings():
    positionals, values, options = parse([
        "calwebb_toy", "in.fits", "--steps.add.amount=5", "--output_dir", "out",
        "--save-parameters", "p.asdf", "--verbose", "--steps.scale.skip=true",
    ])
    assert positionals == ["calwebb_toy", "in.fits"]
    assert values == {"steps.add.amount": "5", "output_dir": "out", "steps.scale.skip": "true"}
    assert options == {"save_parameters": "p.asdf", "verbose": True}
    params, steps = split_values(values)
    assert params == {"output_dir": "out"}
    assert steps == {"add": {"amount": "5"}, "scale": {"skip": "true"}}


def test_run_saves_final_product(rate_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    code = main(["run", "calwebb_toy", str(rate_file), f"--output_dir={out}",
                 "--steps.add.amount=2", "--steps.scale.factor", "3", "--quiet",
                 "--save-parameters", str(tmp_path / "used.asdf")])
    assert code == 0
    result = datamodels.open(out / "jw01_nrca1_toypipeline.fits")
    np.testing.assert_array_equal(result.data, (1 + 2) * 3)
    # the saved parameters reproduce the run
    assert main(["run", str(tmp_path / "used.asdf"), str(rate_file), "--output_dir",
                 str(tmp_path / "again"), "--quiet"]) == 0
    again = datamodels.open(tmp_path / "again" / "jw01_nrca1_toypipeline.fits")
    np.testing.assert_array_equal(again.data, result.data)


def test_skip_from_command_line(rate_file, tmp_path):
    assert main(["run", "calwebb_toy", str(rate_file), f"--output_dir={tmp_path}",
                 "--steps.scale.skip=true", "--quiet"]) == 0
    result = datamodels.open(tmp_path / "jw01_nrca1_toypipeline.fits")
    np.testing.assert_array_equal(result.data, 2.0)


def test_help_lists_every_parameter(capsys):
    assert main(["run", "calwebb_toy", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--note", "--save_results", "--steps.add.amount", "--steps.scale.factor",
                   "--steps.scale.override_gain", "multiplier"):
        assert option in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "nosuchstep", "x.fits"], "unknown step or pipeline 'nosuchstep'"),
        (["run", "calwebb_toy", "{rate}", "--bogus=1"], "unknown parameter 'bogus'"),
        (["run", "calwebb_toy", "{rate}", "--steps.add.amount=lots"], "not a valid float"),
        (["run", "calwebb_toy", "{rate}", "--steps.nostep.x=1"], "no step 'nostep'"),
        (["run", "calwebb_toy", "missing_uncal.fits"], "missing_uncal.fits: no such file"),
        (["run", "calwebb_toy"], "no input file"),
        (["info", "missing.fits"], "missing.fits: no such file"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(argv, message, rate_file, capsys):
    argv = [arg.replace("{rate}", str(rate_file)) for arg in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_info_describes_a_file(rate_file, capsys):
    model = datamodels.ImageModel(rate_file)
    model.meta.instrument.name = "NIRCAM"
    model.meta.cal_step.jump = "COMPLETE"
    model.save(rate_file)
    assert main(["info", str(rate_file)]) == 0
    text = capsys.readouterr().out
    assert "ImageModel" in text and "NIRCAM" in text
    assert "SCI" in text and "(5, 6)" in text and "float32" in text
    assert "jump" in text and "COMPLETE" in text


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert "calwebb" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CALWEBB_REFS", str(tmp_path / "refs"))
    for variable in ("CRDS_PATH", "CRDS_SERVER_URL", "CRDS_CONTEXT"):
        monkeypatch.delenv(variable, raising=False)
    assert main(["demo", "--output-dir", str(tmp_path / "demo"), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "pull mean" in text and (tmp_path / "demo" / "demo.png").stat().st_size > 10000
    rates = sorted((tmp_path / "demo" / "stage1").glob("*_rate.fits"))
    assert len(rates) == 2
