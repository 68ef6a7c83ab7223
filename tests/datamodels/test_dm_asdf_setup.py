"""asdf's extensions loaded with libyaml are the ones its own loader gives; reads skip
schema validation but keep what they read."""

import subprocess
import sys

import asdf
import numpy as np
import yaml
from asdf.extension import _manifest

from calwebb import datamodels
from calwebb.datamodels import asdf_library
from calwebb.datamodels.asdf_library import load_asdf_extensions, open_asdf


def test_manifests_match_the_pure_python_loader():
    load_asdf_extensions()
    assert _manifest.yaml is yaml  # the loader is swapped only while discovering
    config = asdf.get_config()
    manifests = [getattr(extension.delegate, "_manifest", None)
                 for extension in config.extensions]
    manifests = [manifest for manifest in manifests if manifest]
    assert manifests
    for manifest in manifests:
        assert yaml.safe_load(config.resource_manager[manifest["id"]]) == manifest


def test_open_asdf_reads_without_changing_the_global_config(tmp_path):
    path = tmp_path / "tree.asdf"
    asdf.AsdfFile({"meta": {"model_type": "ImageModel"}, "data": np.ones((2, 3))}).write_to(path)
    with open_asdf(path) as af:
        assert af.tree["meta"]["model_type"] == "ImageModel"
        np.testing.assert_array_equal(af.tree["data"], 1.0)
    assert asdf.get_config().validate_on_read
    model = datamodels.open(path)
    assert isinstance(model, datamodels.ImageModel) and model.data.shape == (2, 3)


def test_core_documents_skip_plugin_discovery(tmp_path):
    path = tmp_path / "x_uncal.fits"
    datamodels.Level1bModel(data=np.zeros((1, 2, 3, 4), np.uint16)).save(path)
    script = ("import sys; from calwebb import datamodels; "
              f"model = datamodels.RampModel({str(path)!r}); model.data; "
              "print('asdf_astropy' in sys.modules, 'gwcs' in sys.modules)")
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True).stdout.split()
    assert found == ["False", "False"]


def test_plugin_tags_still_read(tmp_path):
    from astropy.time import Time

    path = tmp_path / "tree.asdf"
    asdf.AsdfFile({"meta": {"when": Time("2024-01-01T00:00:00", scale="utc")}}).write_to(path)
    assert asdf_library._document_plugins(path) is not asdf_library.core_plugins()
    with open_asdf(path) as af:
        assert isinstance(af.tree["meta"]["when"], Time)


def test_core_tag_check_is_conservative():
    head = b"#ASDF 1.0.0\n%YAML 1.1\n%TAG ! tag:stsci.edu:asdf/\n--- !core/asdf-1.1.0\n"
    assert asdf_library._known_to(head + b"a: !core/ndarray-1.1.0 {source: 0}\n...\n",
                        asdf_library.core_plugins())
    for body in (b"a: !unit/unit-1.0.0 m\n", b"a: !<asdf://x.org/y-1.0.0> 1\n",
                 b"a: 'wow!'\n", b"a: !!str 1\n", b"a: !core/table-1.0.0 {}\n"):
        assert not asdf_library._known_to(head + body + b"...\n", asdf_library.core_plugins())


def test_documents_with_own_plugin_tags_skip_other_plugins(tmp_path):
    """A gwcs/astropy document is read with calwebb's own plugins (gwcs, asdf-astropy and
    their schemas) without importing other installed plugin packages (stdatamodels')."""
    from astropy.modeling import models
    from gwcs import coordinate_frames as cf
    from gwcs import wcs

    path = tmp_path / "wcs.asdf"
    transform = models.Shift(1) & models.Shift(2)
    frames = cf.Frame2D(name="detector"), cf.Frame2D(name="world")
    asdf_library.write_asdf({"wcs": wcs.WCS([(frames[0], transform), (frames[1], None)])}, path)
    assert asdf_library._document_plugins(path) is asdf_library._own_plugins()
    script = ("import sys\nfrom calwebb.datamodels import asdf_library\n"
              f"with asdf_library.open_asdf({str(path)!r}) as af:\n"
              "    print(type(af.tree['wcs']).__name__, af.tree['wcs'](0, 0), "
              "'stdatamodels' in sys.modules)")
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True).stdout.split()
    assert found == ["WCS", "(1.0,", "2.0)", "False"]


def test_tags_of_other_plugins_need_every_plugin():
    head = b"#ASDF 1.0.0\n%YAML 1.1\n%TAG ! tag:stsci.edu:asdf/\n--- !core/asdf-1.1.0\n"
    own = asdf_library._own_plugins()
    assert asdf_library._known_to(head + b"a: !<tag:stsci.edu:gwcs/wcs-1.4.0> {}\n...\n", own)
    for body in (b"a: !<asdf://stsci.edu/jwst_pipeline/tags/v23tosky-1.0.0> {}\n",
                 b"history:\n  extensions:\n  - extension_uri: asdf://x.org/ext-1.0.0\n"):
        assert not asdf_library._known_to(head + body + b"...\n", own)
    assert asdf_library._document_plugins(head + b"a: !<asdf://x.org/y-1.0.0> 1\n...\n") is None


def test_a_tree_the_own_plugins_cannot_write_is_written_with_every_plugin(tmp_path,
                                                                           monkeypatch):
    from astropy.time import Time

    # (no astropy converters)
    monkeypatch.setattr(asdf_library, "_own_plugins", asdf_library.core_plugins)
    path = tmp_path / "tree.asdf"
    asdf_library.write_asdf({"when": Time("2024-01-01T00:00:00", scale="utc")}, path)
    with open_asdf(path) as af:
        assert af.tree["when"] == Time("2024-01-01T00:00:00", scale="utc")
