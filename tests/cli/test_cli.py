"""The calwebb command: strun-style parsing, help, errors and exit codes."""

import gc
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from calwebb import datamodels
from calwebb.cli.main import main
from calwebb.cli.run import parse, split_values
from toy_steps import ToyPipeline  # noqa: F401 - registers the toy steps


@pytest.fixture
def rate_file(tmp_path, no_reference_source):
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
def test_errors_are_one_line_with_exit_code_2(argv, message, rate_file, capsys, monkeypatch):
    monkeypatch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")  # no CRDS log lines first
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
    captured = capsys.readouterr()
    text = captured.out
    assert "pull mean" in text and (tmp_path / "demo" / "demo.png").stat().st_size > 10000
    assert "CRDS - INFO" not in captured.err  # library chatter follows --verbose
    rates = sorted((tmp_path / "demo" / "stage1").glob("*_rate.fits"))
    assert len(rates) == 3
    product = "jw01234-o001_t001_nircam_f200w"
    stage3 = {path.name for path in (tmp_path / "demo" / "stage3").iterdir()}
    assert {f"{product}_i2d.fits", f"{product}_cat.ecsv", f"{product}_segm.fits"} <= stage3
    # the mosaic's stars: every well-covered star found, within a few mas after alignment
    row = next(line for line in text.splitlines() if line.startswith(f"{product}_i2d"))
    found, total = row.split()[3].split("/")
    assert found == total and float(row.split()[4].removesuffix("mas")) < 5


@pytest.mark.slow
@pytest.mark.parametrize("instrument, product", [("niriss", "niriss_f444w"),
                                                 ("miri", "miri_f770w")])
def test_demo_runs_on_the_other_imagers(tmp_path, monkeypatch, capsys, instrument, product):
    """The stage 3 catalog's bright stars keep their true fluxes (MIRI needs an APCORR row
    for its subarray, which the simulator writes)."""
    monkeypatch.setenv("CALWEBB_REFS", str(tmp_path / "refs"))
    for variable in ("CRDS_PATH", "CRDS_SERVER_URL", "CRDS_CONTEXT"):
        monkeypatch.delenv(variable, raising=False)
    assert main(["demo", "--instrument", instrument, "--output-dir", str(tmp_path / "demo"),
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines()
               if line.startswith(f"jw01234-o001_t001_{product}_i2d"))
    found = int(row.split()[3].split("/")[0])
    ratio = float(row.split()[5].split("±")[0])
    assert found >= 5 and ratio == pytest.approx(1.0, abs=0.03)


def test_asn_from_list_writes_a_level3_association(tmp_path, capsys, monkeypatch):
    from calwebb.associations import load_association

    monkeypatch.chdir(tmp_path)
    files = ["jw01_00001_nrca1_cal.fits", "jw01_00002_nrca1_cal.fits"]
    assert main(["asn", "from-list", *files, "--product-name", "mosaic"]) == 0
    association = load_association(tmp_path / "mosaic_asn.json")
    assert association.header["asn_rule"] == "DMS_Level3_Base"
    assert association.header["asn_id"] == "a3001"
    assert association.products[0].name == "mosaic"
    assert [m.expname for m in association.products[0].members] == files
    assert main(["asn", "check", "mosaic_asn.json"]) == 0
    assert "mosaic: 2 member(s) (science)" in capsys.readouterr().out


def test_asn_from_list_level2_names_products_after_members(tmp_path, monkeypatch):
    from calwebb.associations import load_association

    monkeypatch.chdir(tmp_path)
    assert main(["asn", "from-list", "a_rate.fits", "b_rate.fits", "-r", "DMSLevel2bBase",
                 "-o", "l2_asn.json"]) == 0
    association = load_association(tmp_path / "l2_asn.json")
    assert [p.name for p in association.products] == ["a", "b"]
    assert association.header["asn_id"] == "o999"


def test_asn_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["asn", "from-list", "a_cal.fits"]) == 2
    assert "needs a product name" in capsys.readouterr().err
    (tmp_path / "bad_asn.json").write_text('{"products": [{"members": [{"expname": "x"}]}]}')
    assert main(["asn", "check", "bad_asn.json"]) == 2
    assert "exptype" in capsys.readouterr().err


def test_the_console_script_freezes_the_objects_left_and_exits_with_mains_code(monkeypatch):
    from calwebb.cli import main as cli

    monkeypatch.setattr(cli, "main", lambda: 3)
    try:
        with pytest.raises(SystemExit) as exit_:
            cli.entry_point()
        assert exit_.value.code == 3
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_console_script_writes_whole_products(rate_file, tmp_path):
    tests = Path(__file__).parents[1]
    script = (f"import sys; sys.path.insert(0, {str(tests)!r}); import toy_steps; "
              "from calwebb.cli.main import entry_point; entry_point()")
    done = subprocess.run(
        [sys.executable, "-c", script, "run", "calwebb_toy", str(rate_file),
         f"--output_dir={tmp_path / 'out'}", "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = datamodels.open(tmp_path / "out" / "jw01_nrca1_toypipeline.fits")
    np.testing.assert_array_equal(result.data, (1 + 1) * 2)
