"""`calwebb run` over many inputs: globs, --jobs, failures, re-runs, option errors."""

import pytest

from calwebb.background.step import BackgroundStep
from calwebb.cli.main import main
from calwebb.cli.run import runs_many
from calwebb.pipeline.detector1 import Detector1Pipeline


def test_a_glob_on_two_processes_reports_the_failure_and_reruns_skip(crds_env, tmp_path,
                                                                      capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    exposures = sorted(crds_env.glob("*_uncal.fits"))[:2]
    for exposure in exposures:
        (inputs / exposure.name).symlink_to(exposure)
    corrupt = inputs / "jw99999001001_01101_00001_nrca1_uncal.fits"
    corrupt.write_text("not a FITS file")
    argv = ["run", "calwebb_detector1", str(inputs / "*_uncal.fits"), "--jobs", "2",
            "--output_dir", str(tmp_path / "out"), "--quiet", "--log-level", "WARNING"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "3 input(s): 2 done, 0 skipped, 1 failed" in err
    assert f"{corrupt}  {corrupt}: not a readable FITS file" in err
    rates = sorted(path.name for path in (tmp_path / "out").glob("*_rate.fits"))
    assert rates == [path.name.replace("_uncal", "_rate") for path in exposures]
    corrupt.unlink()
    assert main(argv[:3] + argv[5:]) == 0  # serial now: the products exist already
    assert "2 input(s): 0 done, 2 skipped, 0 failed" in capsys.readouterr().err


def test_which_command_lines_run_each_input_on_its_own():
    assert not runs_many(Detector1Pipeline, ["a_uncal.fits"], {})
    assert runs_many(Detector1Pipeline, ["a_uncal.fits"], {"jobs": "2"})
    assert runs_many(Detector1Pipeline, ["a_uncal.fits"], {"overwrite": True})
    assert runs_many(Detector1Pipeline, ["data/*_uncal.fits"], {})
    assert runs_many(Detector1Pipeline, ["a_uncal.fits", "b_uncal.fits"], {})
    # a step taking several inputs still gets them all in one run
    assert not runs_many(BackgroundStep, ["a_rate.fits", "b_rate.fits"], {})


@pytest.mark.parametrize(("options", "message"), [
    (["--jobs", "0"], "--jobs 0: expected a whole number"),
    (["--dask", "remote"], "--dask remote: the only value is 'local'"),
    (["--dask", "local", "--scheduler", "tcp://h:1"], "either --scheduler or --dask local"),
    (["--output_file", "x"], "output_file names a single product"),
])
def test_option_errors_are_one_line(crds_env, capsys, options, message):
    pattern = str(crds_env / "*_uncal.fits")
    assert main(["run", "calwebb_detector1", pattern, "--quiet", *options]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
