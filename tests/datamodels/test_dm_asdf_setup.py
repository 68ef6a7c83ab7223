"""asdf's extensions loaded with libyaml are the ones its own loader gives; reads skip
schema validation but keep what they read."""

import asdf
import numpy as np
import yaml
from asdf.extension import _manifest

from calwebb import datamodels
from calwebb.datamodels.io import load_asdf_extensions, open_asdf


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
