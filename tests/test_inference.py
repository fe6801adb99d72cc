"""infer.py's choices before any glyph is generated: which styles, and which are refused."""
import pytest

from inference.options import build_parser
from inference.render import choose_labels, write_interpolation_files
from utils.errors import UserError
from utils.experiment import Experiment


def infer_args(*flags):
    return build_parser("infer").parse_args(["--experiment_dir", "exp", *map(str, flags)])


def test_the_chosen_styles(tiny_config):
    config = tiny_config(embedding_num=4)
    assert choose_labels(infer_args("--labels", "0,3"), config, from_obj=False) == [0, 3]
    assert choose_labels(infer_args("--run_all_label"), config, from_obj=False) == [0, 1, 2, 3]
    assert choose_labels(infer_args(), config, from_obj=False) == [0]        # zi2zi's text-mode default
    assert choose_labels(infer_args(), config, from_obj=True) is None        # each record in its own style


@pytest.mark.parametrize("flags, bad", [(("--label", 4), 4), (("--labels", "0,9"), 9), (("--labels", "-1"), -1)])
def test_a_style_the_checkpoint_lacks_is_refused(tiny_config, flags, bad):
    with pytest.raises(UserError, match=rf"^style label {bad} is outside the checkpoint's labels 0\.\.3 "
                                        rf"\(embedding_num=4\)$"):
        choose_labels(infer_args(*flags), tiny_config(embedding_num=4), from_obj=False)


def test_an_interpolation_through_a_style_the_checkpoint_lacks_is_refused(tiny_config, tmp_path):
    args = infer_args("--interpolate", "0,9", "--src_txt", "永")
    with pytest.raises(UserError, match=r"^--interpolate label 9 is outside the checkpoint's labels 0\.\.3 "):
        write_interpolation_files(args, None, tiny_config(embedding_num=4), 1, "cpu", Experiment.at(tmp_path))
