"""calwebb.parallel.run_many: identical products in every mode, failures, re-runs, associations."""

import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from calwebb.associations import asn_from_list
from calwebb.errors import DataModelError, ParameterError
from calwebb.parallel import report, run_many
from calwebb.parallel.tasks import plan, run_task

UNCAL = "*_uncal.fits"


def assert_same_arrays(first: Path, second: Path) -> None:
    """Every image extension of two FITS files holds the same bytes."""
    with fits.open(first) as one, fits.open(second) as other:
        names = [hdu.name for hdu in one if hdu.is_image and hdu.data is not None]
        assert names == [hdu.name for hdu in other if hdu.is_image and hdu.data is not None]
        assert "SCI" in names
        for name in names:
            np.testing.assert_array_equal(one[name].data, other[name].data, err_msg=name)
            assert one[name].data.dtype == other[name].data.dtype
            assert one[name].data.tobytes() == other[name].data.tobytes(), name


@pytest.fixture(scope="module")
def serial_rates(crds_env, tmp_path_factory):
    """Detector1 on every exposure, one after the other in this process."""
    output = tmp_path_factory.mktemp("serial")
    results = run_many("calwebb_detector1", [str(crds_env / UNCAL)], output_dir=str(output))
    assert [result.status for result in results] == ["done"] * 3, report(results)
    return output


def test_pool_and_dask_write_the_serial_products(crds_env, serial_rates, tmp_path):
    pool = run_many("calwebb_detector1", [str(crds_env / UNCAL)], jobs=2,
                    output_dir=str(tmp_path / "pool"))
    dask = run_many("calwebb_detector1", [str(crds_env / UNCAL)], jobs=2, scheduler="local",
                    output_dir=str(tmp_path / "dask"))
    for results in (pool, dask):
        assert [result.status for result in results] == ["done"] * 3, report(results)
        assert [Path(result.input).name for result in results] == sorted(
            path.name for path in crds_env.glob(UNCAL))
    serial = sorted(serial_rates.glob("*_rate*.fits"))
    assert len(serial) == 6  # rate and rateints of each exposure
    for path in serial:
        assert_same_arrays(path, tmp_path / "pool" / path.name)
        assert_same_arrays(path, tmp_path / "dask" / path.name)
    assert pool[0].outputs == [str(tmp_path / "pool" / serial[0].name)]


def test_a_failed_input_is_reported_and_the_others_finish(crds_env, tmp_path):
    corrupt = tmp_path / "jw99999001001_01101_00001_nrca1_uncal.fits"
    corrupt.write_bytes(b"SIMPLE  =                    T" + b" " * 100)
    good = sorted(crds_env.glob(UNCAL))[0]
    results = run_many("calwebb_detector1", [str(corrupt), str(good)],
                       output_dir=str(tmp_path / "out"))
    assert [result.status for result in results] == ["failed", "done"]
    assert corrupt.name in results[0].error and results[0].outputs == []
    assert Path(results[1].outputs[0]).is_file()
    text = report(results)
    assert text.startswith("2 input(s): 1 done, 0 skipped, 1 failed")
    assert f"{corrupt}  {corrupt}: " in text


def test_a_rerun_skips_existing_products_unless_overwrite(crds_env, tmp_path):
    exposure = str(sorted(crds_env.glob(UNCAL))[1])
    first = run_many("calwebb_detector1", [exposure], output_dir=str(tmp_path))
    rate = Path(first[0].outputs[0])
    os.utime(rate, ns=(0, 0))
    again = run_many("calwebb_detector1", [exposure], output_dir=str(tmp_path))
    assert again[0].status == "skipped" and again[0].outputs == [str(rate)]
    assert rate.stat().st_mtime_ns == 0
    forced = run_many("calwebb_detector1", [exposure], output_dir=str(tmp_path), overwrite=True)
    assert forced[0].status == "done" and rate.stat().st_mtime_ns > 0


def test_each_level2_product_is_a_task_with_the_whole_association_result(serial_rates,
                                                                        tmp_path):
    from calwebb.pipeline.image2 import Image2Pipeline

    rates = sorted(path.name for path in serial_rates.glob("*_rate.fits"))
    asn = asn_from_list(rates, rule="DMSLevel2bBase").save(serial_rates / "l2_asn.json")
    Image2Pipeline.call(str(asn), save_results=True, output_dir=str(tmp_path / "whole"))
    results = run_many("calwebb_image2", [str(asn)], output_dir=str(tmp_path / "each"))
    roots = [rate.removesuffix("_rate.fits") for rate in rates]
    assert [result.input for result in results] == [f"{asn}[{root}]" for root in roots]
    assert [result.outputs for result in results] == [
        [str(tmp_path / "each" / f"{root}_cal.fits")] for root in roots]
    for root in roots:
        for suffix in ("cal", "i2d"):
            name = f"{root}_{suffix}.fits"
            assert_same_arrays(tmp_path / "whole" / name, tmp_path / "each" / name)
    again = run_many("calwebb_image2", [str(asn)], output_dir=str(tmp_path / "each"))
    assert [result.status for result in again] == ["skipped"] * 3


def test_a_task_runs_with_the_crds_environment_of_its_client(crds_env, tmp_path, monkeypatch):
    exposure = str(sorted(crds_env.glob(UNCAL))[2])
    task = plan("calwebb_detector1", [exposure], {"output_dir": str(tmp_path),
                                                  "save_results": True})[0]
    monkeypatch.setenv("CRDS_PATH", str(tmp_path / "no_cache_here"))  # a worker's own set-up
    monkeypatch.setenv("CRDS_CONTEXT", "jwst_9999.pmap")
    result = run_task(task)
    assert result.status == "done", result.error
    assert os.environ["CRDS_PATH"] == str(crds_env / "crds")
    assert "CRDS_CONTEXT" not in os.environ


def test_plan_expands_globs_once_in_order_and_predicts_products(crds_env, tmp_path,
                                                               monkeypatch):
    monkeypatch.chdir(crds_env)
    files = sorted(path.name for path in crds_env.glob(UNCAL))
    tasks = plan("calwebb_detector1", [UNCAL, files[0]], {})
    assert [task.label for task in tasks] == files
    assert [task.input for task in tasks] == [str(crds_env / name) for name in files]
    assert tasks[0].expected == (str(crds_env / files[0].replace("_uncal", "_rate")),)
    jump = plan("jump", [files[0]], {"output_dir": str(tmp_path)})
    assert jump[0].expected == (str(tmp_path / files[0].replace("_uncal", "_jumpstep")),)


def test_plan_refuses_two_inputs_with_one_product(crds_env, tmp_path):
    exposure = sorted(crds_env.glob(UNCAL))[0]
    for directory in ("a", "b"):
        (tmp_path / directory).mkdir()
        (tmp_path / directory / exposure.name).symlink_to(exposure)
    with pytest.raises(ParameterError, match="would both write"):
        plan("calwebb_detector1", [str(tmp_path / "*" / exposure.name)],
             {"output_dir": str(tmp_path)})


@pytest.mark.parametrize(("inputs", "parameters", "error", "message"), [
    (["nothing_*.fits"], {}, DataModelError, "nothing_*.fits: no file matches"),
    (["missing_uncal.fits"], {}, DataModelError, "missing_uncal.fits: no such file"),
    ([UNCAL], {"output_file": "x"}, ParameterError, "output_file names a single product"),
])
def test_plan_rejects_bad_inputs(crds_env, monkeypatch, inputs, parameters, error, message):
    monkeypatch.chdir(crds_env)
    with pytest.raises(error, match=message.replace("*", r"\*")):
        plan("calwebb_detector1", inputs, parameters)


def test_only_a_whole_association_keeps_its_exposures_in_the_client(tmp_path):
    """A step that can spread per-exposure work (resample, calwebb_image3) does so for a
    whole association; on single files each file is an ordinary worker task."""
    from calwebb.parallel.many import spreads_exposures
    from calwebb.parallel.tasks import Task

    def task(step, name, product=None):
        return Task(step=step, input=str(tmp_path / name), label=name, product=product)

    assert spreads_exposures(task("calwebb_image3", "jw_image3_asn.json"))
    assert spreads_exposures(task("resample", "jw_image3_asn.json"))
    assert not spreads_exposures(task("resample", "jw_a_cal.fits"))
    assert not spreads_exposures(task("calwebb_image3", "jw_a_cal.fits"))
    assert not spreads_exposures(task("calwebb_image2", "jw_image2_asn.json", product=0))
    assert not spreads_exposures(task("calwebb_detector1", "jw_level2_asn.json"))


def test_one_pool_of_local_processes_serves_every_task_and_association(tmp_path, monkeypatch):
    """With --jobs, the file tasks and the per-exposure work of every Level 3 association
    share one pool (not a pool per association)."""
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import contextmanager

    from calwebb.parallel import many
    from calwebb.parallel.executor import current
    from calwebb.parallel.tasks import DONE, Task, TaskResult

    opened, executors = [], []

    @contextmanager
    def pool_of_threads(jobs):  # stands in for the process pool
        with ThreadPoolExecutor(jobs) as pool:
            opened.append(pool)
            yield pool

    def fake_run(task):
        executors.append((task.label, current()))
        return TaskResult(task.input, [], DONE)

    monkeypatch.setattr(many, "process_pool", pool_of_threads)
    monkeypatch.setattr(many, "run_task", fake_run)
    tasks = [Task(step=step, input=str(tmp_path / name), label=name, parameters={
        "output_dir": str(tmp_path)}) for step, name in (
        ("calwebb_image3", "a_image3_asn.json"), ("resample", "a_cal.fits"),
        ("resample", "b_cal.fits"), ("calwebb_image3", "b_image3_asn.json"))]
    done = dict(many._execute(tasks, 2, None, None))
    assert sorted(done) == [0, 1, 2, 3] and len(opened) == 1
    spread = {label: executor for label, executor in executors if label.endswith(".json")}
    assert set(spread) == {"a_image3_asn.json", "b_image3_asn.json"}
    assert all(executor is not None and executor.description == "local processes"
               for executor in spread.values())
