"""The bottom floor: one atomic write, one list parser, generation that leaves the network as it was."""
import pytest
import torch

from model import build_generator
from model.inference import generate
from utils.cli import parse_int_list
from utils.errors import UserError
from utils.io import atomic_write, atomic_write_text


def test_atomic_write_replaces_whole_files_and_cleans_up_on_failure(tmp_path):
    path = tmp_path / "sub" / "f.json"
    atomic_write_text(path, "first")
    assert path.read_text() == "first"

    def fails_halfway(f):
        f.write(b"half of the second version")
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, fails_halfway)
    assert path.read_text() == "first"              # the earlier version is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.json"]   # no temp file left behind


def test_parse_int_list():
    assert parse_int_list("2, 0,2,5", "--labels") == [2, 0, 5]
    for bad in ("a,1", "", " , "):
        with pytest.raises(UserError, match="--labels"):
            parse_int_list(bad, "--labels")


def test_generate_keeps_the_callers_network_state(tiny_config):
    net = build_generator(tiny_config(input_nc=3)).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fake = generate(net, torch.rand(5, 1, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 3, 0]), batch_size=2,
                    progress=False)
    assert fake.shape == (5, 3, 32, 32) and fake.device.type == "cpu"  # grayscale sources expanded
    assert net.training                              # handed back in train mode
    for k, v in net.state_dict().items():            # eval mode: BN statistics untouched
        assert torch.equal(v, before[k]), k
    assert all(p.is_contiguous() for p in net.parameters())  # memory format untouched
    again = generate(net, torch.rand(5, 1, 32, 32), torch.zeros(5, dtype=torch.long), progress=False)
    assert torch.isfinite(again).all()
