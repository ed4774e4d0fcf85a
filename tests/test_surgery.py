"""Tests of monai_ext.surgery.GradientSurgery against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_ext.surgery import MODES, GradientSurgery


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


def assert_close(actual, expected):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# GSMorph rule (Algorithm 1)


def test_similarity_projects_conflicting_pair():
    # <[1,0],[-1,1]> = -1, ||r||^2 = 2: g = [1,0] + 0.5 * [-1,1] = [0.5, 0.5]
    grads, rate = GradientSurgery("layer", "similarity")([t(1, 0)], [t(-1, 1)])
    assert_close(grads[0], [0.5, 0.5])
    assert rate == 1.0


def test_similarity_keeps_non_conflicting_pair():
    s = t(1, 2)
    grads, rate = GradientSurgery("layer", "similarity")([s], [t(1, -0.4)])  # <s, r> = 0.2 > 0
    assert_close(grads[0], [1, 2])
    assert rate == 0.0


def test_orthogonal_pair_is_not_a_conflict():
    grads, rate = GradientSurgery("layer", "similarity")([t(1, 0)], [t(0, 1)])
    assert_close(grads[0], [1, 0])
    assert rate == 0.0


def test_projected_similarity_is_orthogonal_to_regularisation():
    gen = torch.Generator().manual_seed(0)
    sims = [torch.randn(4, 3, generator=gen, dtype=torch.float64) for _ in range(20)]
    regs = [torch.randn(4, 3, generator=gen, dtype=torch.float64) for _ in range(20)]
    grads, rate = GradientSurgery("layer", "similarity")(sims, regs)
    n_conflict = 0
    for g, s, r in zip(grads, sims, regs):
        if (s * r).sum() < 0:
            n_conflict += 1
            assert abs(float((g * r).sum())) < 1e-12
            # independent formula in numpy
            sn, rn = s.numpy().ravel(), r.numpy().ravel()
            expected = sn - sn.dot(rn) / rn.dot(rn) * rn
            np.testing.assert_allclose(g.numpy().ravel(), expected, rtol=1e-12)
        else:
            assert torch.equal(g, s)
    assert 0 < n_conflict < 20
    assert rate == pytest.approx(n_conflict / 20)


def test_zero_regularisation_gradient_leaves_similarity_unchanged():
    for granularity in ("layer", "network", "element"):
        for rule in ("similarity", "sum", "random"):
            grads, rate = GradientSurgery(granularity, rule)([t(1, -2)], [t(0, 0)])
            assert_close(grads[0], [1, -2])
            assert rate == 0.0
            assert torch.isfinite(grads[0]).all()


def test_zero_similarity_gradient_gives_no_nan():
    grads, rate = GradientSurgery("layer", "sum")([t(0, 0)], [t(1, -1)])
    assert_close(grads[0], [1, -1])  # nothing to project: plain sum
    assert rate == 0.0
    grads, rate = GradientSurgery("layer", "similarity")([t(0, 0)], [t(0, 0)])
    assert_close(grads[0], [0, 0])
    assert rate == 0.0


# ---------------------------------------------------------------------------------------------
# granularity


def two_tensor_example():
    # tensor 1 conflicts (<s,r> = -1), tensor 2 agrees strongly (<s,r> = 6): network-wide sum 5 > 0
    sims = [t(1, 0), t(2)]
    regs = [t(-1, 1), t(3)]
    return sims, regs


def test_layer_and_network_granularity_differ():
    sims, regs = two_tensor_example()
    layer, layer_rate = GradientSurgery("layer", "similarity")(sims, regs)
    network, network_rate = GradientSurgery("network", "similarity")(sims, regs)
    assert_close(layer[0], [0.5, 0.5])
    assert_close(layer[1], [2])
    assert layer_rate == 0.5
    # the whole-network inner product is positive: no surgery at all
    assert_close(network[0], [1, 0])
    assert_close(network[1], [2])
    assert network_rate == 0.0


def test_network_granularity_projects_the_concatenated_vector():
    sims = [t(1, 0), t(0)]
    regs = [t(-1, 0), t(1)]
    # s = [1,0,0], r = [-1,0,1]: <s,r> = -1, ||r||^2 = 2, g = s + 0.5 r = [0.5, 0, 0.5]
    grads, rate = GradientSurgery("network", "similarity")(sims, regs)
    assert_close(grads[0], [0.5, 0])
    assert_close(grads[1], [0.5])
    assert rate == 1.0


def test_element_granularity_similarity():
    sims, regs = two_tensor_example()
    grads, rate = GradientSurgery("element", "similarity")(sims, regs)
    # entry (1, -1) conflicts: projected to 0; entry (0, 1) has product 0; entry (2, 3) agrees
    assert_close(grads[0], [0, 0])
    assert_close(grads[1], [2])
    assert rate == pytest.approx(1 / 3)


def test_layer_conflict_rate():
    sims = [t(1, 0), t(1), t(-1, -1), t(0.5)]
    regs = [t(-1, 1), t(-2), t(1, 0), t(1)]
    _, rate = GradientSurgery("layer", "similarity")(sims, regs)
    assert rate == 0.75


# ---------------------------------------------------------------------------------------------
# other rules


def test_sum_rule_pcgrad():
    # s' = [0.5, 0.5]; r' = r - <s,r>/||s||^2 s = [-1,1] + [1,0] = [0,1]
    grads, rate = GradientSurgery("layer", "sum")([t(1, 0)], [t(-1, 1)])
    assert_close(grads[0], [0.5, 1.5])
    assert rate == 1.0


def test_sum_rule_applies_weight_to_regularisation():
    # r = 2 * [-1,1]: <s,r> = -2, ||r||^2 = 8: s' = [1,0] + 0.25 [-2,2] = [0.5,0.5]; r' = [-2,2] + 2 [1,0] = [0,2]
    grads, _ = GradientSurgery("layer", "sum", weight=2.0)([t(1, 0)], [t(-1, 1)])
    assert_close(grads[0], [0.5, 2.5])


def test_sum_rule_without_conflict_is_plain_sum():
    grads, rate = GradientSurgery("network", "sum", weight=0.5)([t(1, 0)], [t(1, 1)])
    assert_close(grads[0], [1.5, 0.5])
    assert rate == 0.0


def test_weighted_sum_reports_conflicts_but_does_not_project():
    grads, rate = GradientSurgery("layer", "weighted_sum", weight=0.5)([t(1, 0), t(1)], [t(-1, 1), t(1)])
    assert_close(grads[0], [0.5, 0.5])
    assert_close(grads[1], [1.5])
    assert rate == 0.5


def test_random_rule_projects_one_of_the_two():
    # project s: [0.5,0.5] + [-1,1] = [-0.5,1.5]; project r: [1,0] + [0,1] = [1,1]
    surgery = GradientSurgery("layer", "random", generator=torch.Generator().manual_seed(0))
    seen = set()
    for _ in range(40):
        grads, rate = surgery([t(1, 0)], [t(-1, 1)])
        assert rate == 1.0
        seen.add(tuple(grads[0].tolist()))
    assert seen == {(-0.5, 1.5), (1.0, 1.0)}


def test_random_rule_is_reproducible_with_seed():
    sims = [torch.randn(3, generator=torch.Generator().manual_seed(i)) for i in range(8)]
    regs = [-s + 0.1 for s in sims]
    a, _ = GradientSurgery("layer", "random", generator=torch.Generator().manual_seed(3))(sims, regs)
    b, _ = GradientSurgery("layer", "random", generator=torch.Generator().manual_seed(3))(sims, regs)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_random_rule_without_conflict_is_plain_sum():
    grads, rate = GradientSurgery("layer", "random", weight=2.0)([t(1, 0)], [t(1, 1)])
    assert_close(grads[0], [3, 2])
    assert rate == 0.0


def test_agreement_replaces_exactly_the_conflicting_entries():
    s = t(1, -2, 3, 0.5, 0)
    r = t(1, 2, -3, 0, -1)  # products: 1, -4, -9, 0, 0 -> entries 1 and 2 conflict
    surgery = GradientSurgery("element", "agreement", generator=torch.Generator().manual_seed(7))
    grads, rate = surgery([s], [r])
    g = grads[0]
    assert rate == pytest.approx(2 / 5)
    assert_close(g[[0, 3, 4]], [1, 0.5, 0])
    # automatic std: mean |s| over the kept entries = (1 + 0.5 + 0) / 3 = 0.5
    noise = torch.randn(5, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 0.5
    assert_close(g[[1, 2]], noise[[1, 2]])


def test_agreement_fixed_noise_std():
    s, r = t(1, -2, 3), t(-1, 2, 3)
    grads, _ = GradientSurgery("element", "agreement", noise_std=0.0)([s], [r])
    assert_close(grads[0], [0, 0, 3])
    grads, _ = GradientSurgery("element", "agreement", noise_std=2.0, generator=torch.Generator().manual_seed(1))(
        [s], [r]
    )
    noise = torch.randn(3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2.0
    assert_close(grads[0][:2], noise[:2])
    assert_close(grads[0][2:], [3])


# ---------------------------------------------------------------------------------------------
# None handling, validation, presets


def test_none_gradients():
    grads, rate = GradientSurgery("layer", "similarity")([None, t(1, 0), None], [None, t(-1, 1), t(2, 2)])
    assert grads[0] is None
    assert_close(grads[1], [0.5, 0.5])
    assert_close(grads[2], [0, 0])  # g_sim taken as zeros, no conflict
    assert rate == 0.5
    grads, rate = GradientSurgery("network", "sum")([None], [None])
    assert grads == [None] and rate == 0.0


def test_shape_and_length_mismatch_raise():
    with pytest.raises(ValueError, match="same length"):
        GradientSurgery()([t(1)], [])
    with pytest.raises(ValueError, match="shape"):
        GradientSurgery()([t(1, 2)], [t(1)])


def test_from_mode_presets():
    expected = [
        ("gsmorph", "layer", "similarity"),
        ("pcgrad", "network", "similarity"),
        ("pcgrad_sum", "network", "sum"),
        ("gs_agr", "element", "agreement"),
        ("weighted_sum", "layer", "weighted_sum"),
        ("random", "network", "random"),
    ]
    assert [(mode, *preset) for mode, preset in MODES.items()] == expected
    for mode, granularity, rule in expected:
        surgery = GradientSurgery.from_mode(mode, weight=0.1)
        assert (surgery.granularity, surgery.rule, surgery.weight) == (granularity, rule, 0.1)
    assert GradientSurgery.from_mode("gsmorph", weight=0.1).loss_weight == 1.0
    assert GradientSurgery.from_mode("weighted_sum", weight=0.1).loss_weight == 0.1


@pytest.mark.parametrize(
    "call, valid",
    [
        (
            lambda: GradientSurgery.from_mode("voxelmorph"),
            "'gsmorph', 'pcgrad', 'pcgrad_sum', 'gs_agr', 'weighted_sum', 'random'",
        ),
        (lambda: GradientSurgery(granularity="tensor"), "'layer', 'network', 'element'"),
        (lambda: GradientSurgery(rule="mean"), "'similarity', 'sum', 'agreement', 'random', 'weighted_sum'"),
    ],
)
def test_invalid_strings_list_valid_values(call, valid):
    with pytest.raises(ValueError) as err:
        call()
    assert valid in str(err.value)


def test_invalid_numbers_raise():
    with pytest.raises(ValueError, match="weight"):
        GradientSurgery(weight=-1.0)
    with pytest.raises(ValueError, match="noise_std"):
        GradientSurgery(noise_std=float("nan"))


def test_float32_parameters_keep_dtype_and_shape():
    sims = [torch.ones(2, 3, 3, 3), torch.ones(2)]
    regs = [-torch.ones(2, 3, 3, 3), torch.ones(2)]
    for granularity in ("layer", "network", "element"):
        grads, _ = GradientSurgery(granularity, "similarity")(sims, regs)
        for g, s in zip(grads, sims):
            assert g.shape == s.shape and g.dtype == torch.float32
