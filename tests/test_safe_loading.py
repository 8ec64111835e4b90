"""Nothing a user hands over is unpickled: a malicious pickle disguised as weights is refused without running."""

import os
import pickle
import shutil

import pytest

from igpg.errors import IgpgError


class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this would create the marker file
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def planted(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Boom(marker))
    return marker, payload


def test_load_refuses_pickle_disguised_as_safetensors(tmp_path, planted):
    import igpg

    marker, payload = planted
    f = tmp_path / "net.safetensors"
    f.write_bytes(payload)
    with pytest.raises(IgpgError):
        igpg.load(f)
    assert not marker.exists()


def test_checkpoints_refuse_pickle_disguised_as_model(tmp_path, planted, tiny_pipeline):
    from igpg.generator import ParameterGenerator
    from igpg.tokenizer import WeightTokenizer

    marker, payload = planted
    d, _ = tiny_pipeline
    for src, loader in ((d / "tok", WeightTokenizer.load), (d / "gen", ParameterGenerator.from_pretrained)):
        bad = tmp_path / src.name
        shutil.copytree(src, bad)
        (bad / "model.safetensors").write_bytes(payload)
        with pytest.raises(IgpgError):
            loader(bad)
        assert not marker.exists()


def test_absurd_safetensors_header_is_refused(tmp_path):
    import struct

    from igpg.io import read_header

    f = tmp_path / "huge.safetensors"
    f.write_bytes(struct.pack("<Q", 1 << 62) + b"{}")
    with pytest.raises(IgpgError, match="corrupt safetensors header"):
        read_header(f)
