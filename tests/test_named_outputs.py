"""named_outputs: the output transform that labels an engine's scalars for the logging handlers."""

from monai_ext.handlers import named_outputs


def test_picks_and_labels_scalars_of_a_decollated_output():
    output = [{"loss": 1.5, "similarity_loss": 1.0, "regularization_loss": 0.25}, {"loss": 1.5}]
    transform = named_outputs({"loss": "loss", "similarity": "similarity_loss", "gradicon": "regularization_loss"})
    assert transform(output) == {"loss": 1.5, "similarity": 1.0, "gradicon": 0.25}


def test_one_name():
    assert named_outputs({"loss": "loss"})([{"loss": 0.5}]) == {"loss": 0.5}
