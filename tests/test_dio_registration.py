"""DIO end to end in the library: the registration module, Eq. 2, test-time inference, evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ext.engines import GradientSurgeryTrainer, RegistrationEvaluator
from monai_ext.inferers import DIOInferer
from monai_ext.networks import DIORegistration, build_feature_network, dio_unet
from monai_ext.objectives import DIOObjective, one_hot_labels
from monai_ext.solvers import MultiScaleSolver
from monai_ext.spatial import sample_moving, warp_moving
from monai_ext.transforms import WarpMovingd


def _disc(shape, centre, radius, spacing=(1.0, 1.0)):
    axes = [torch.arange(n, dtype=torch.float32) * s for n, s in zip(shape, spacing)]
    g = torch.meshgrid(*axes, indexing="ij")
    r2 = sum((g[i] - centre[i]) ** 2 for i in range(2))
    image = torch.exp(-r2 / (2 * radius**2))[None, None]
    label = (r2 < radius**2).long()[None, None] + (r2 < (radius / 2) ** 2).long()[None, None]
    return image, label


def _net(iterations=(5, 5, 5), **solver):
    torch.manual_seed(0)
    features = dio_unet(spatial_dims=2, channels=(4, 4, 8), feature_channels=3)
    return DIORegistration(features, MultiScaleSolver(iterations=iterations, convergence_eps=0, **solver))


def test_forward_is_register_on_one_grid():
    net = _net()
    fixed, _ = _disc((24, 28), (11, 14), 5)
    moving, _ = _disc((24, 28), (13, 12), 5)
    ddf = net(torch.cat([moving, fixed], 1))
    assert ddf.shape == (1, 2, 24, 28)
    again = net.register(fixed, moving)
    assert torch.allclose(ddf, again.full_resolution_ddfs[-1])
    assert [tuple(d.shape[2:]) for d in again.full_resolution_ddfs] == [(24, 28)] * 3
    assert [tuple(d.shape[2:]) for d in again.ddfs] == [(6, 7), (12, 14), (24, 28)]


def test_objective_value_for_identical_images_and_labels():
    # Identical images: identical features, no force, identity warps; LNCC = 1 (loss -1), Dice loss 0.
    net = _net()
    image, label = _disc((24, 28), (11, 14), 6)
    objective = DIOObjective(labels=[1, 2], spatial_dims=2)
    terms = objective(net, image, image, fixed_label=label, moving_label=label)
    # (float rounding of the sampling coordinates leaves forces ~1e-7, below the solver's noise floor)
    assert terms.ddf.abs().max() < 1e-3
    assert float(terms.similarity) == pytest.approx(3 * (0.25 * -1.0 + 1.0 * 0.0), abs=2e-3)
    assert float(terms.regularization) == 0.0


def test_training_gradients_reach_the_feature_network_through_the_solver():
    net = _net()
    fixed, fixed_label = _disc((24, 28), (11, 14), 6)
    moving, moving_label = _disc((24, 28), (14, 11), 6)
    terms = DIOObjective(labels=[1, 2], spatial_dims=2)(
        net, moving, fixed, fixed_label=fixed_label, moving_label=moving_label
    )
    (terms.similarity + terms.regularization).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # the solver itself has no parameters; only the feature network learns
    assert sum(p.numel() for p in net.solver.parameters()) == 0


def test_objective_needs_labels_when_it_has_a_dice_term():
    net = _net()
    image, _ = _disc((24, 28), (11, 14), 6)
    with pytest.raises(ValueError, match="fixed_label"):
        DIOObjective(labels=[1], spatial_dims=2)(net, image, image)


def test_one_hot_labels():
    label = torch.tensor([[[[0, 1], [3, 1]]]])
    onehot = one_hot_labels(label, [1, 3])
    assert torch.equal(onehot, torch.tensor([[[[0.0, 1.0], [0.0, 1.0]], [[0.0, 0.0], [1.0, 0.0]]]]))


def _dio_trainer(net, batch, objective, **kwargs) -> GradientSurgeryTrainer:
    """One epoch of the one pair ``batch``: Adam (lr 1e-3) on the summed Eq. 2 terms."""
    return GradientSurgeryTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=[batch],
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), lr=1e-3),
        objective=objective,
        surgery="weighted_sum",
        regularization_weight=1.0,
        fuse_weighted_sum=True,
        **kwargs,
    )


def test_trainer_passes_labels_and_updates_the_feature_network():
    net = _net(iterations=(3, 3, 3))
    fixed, fixed_label = _disc((24, 28), (11, 14), 6)
    moving, moving_label = _disc((24, 28), (14, 11), 6)
    batch = {"fixed_image": fixed, "moving_image": moving, "fixed_label": fixed_label, "moving_label": moving_label}
    before = [p.detach().clone() for p in net.parameters()]
    trainer = _dio_trainer(net, batch, DIOObjective(labels=[1, 2], spatial_dims=2))
    trainer.run()
    assert math.isfinite(float(trainer.state.output[0]["loss"]))  # decollated
    assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters()))


def _meta(array, spacing):
    affine = torch.diag(torch.tensor([*spacing, 1.0, 1.0], dtype=torch.float64))
    return MetaTensor(array, affine=affine)


def _anisotropic_pair() -> dict:
    """A disc on a 24 x 28 grid of 1 mm, and the same disc shifted by (2, -2) mm sampled at 2 mm
    along axis 0 (12 x 28 voxels), as MetaTensors with their affines."""
    fixed, fixed_label = _disc((24, 28), (11.0, 14.0), 6)
    moving, moving_label = _disc((12, 28), (13.0, 12.0), 6, spacing=(2.0, 1.0))
    return {
        "fixed_image": _meta(fixed, (1.0, 1.0)),
        "moving_image": _meta(moving, (2.0, 1.0)),
        "fixed_label": _meta(fixed_label, (1.0, 1.0)),
        "moving_label": _meta(moving_label, (2.0, 1.0)),
    }


def test_inferer_registers_a_moving_image_of_another_size_and_spacing():
    # the moving image samples the same world object at 2 mm along axis 0 (12 x 28 voxels)
    pair = _anisotropic_pair()
    fixed, fixed_label, moving_label = (pair[k].as_tensor() for k in ("fixed_image", "fixed_label", "moving_label"))
    net = DIORegistration(
        build_feature_network("intensity"),
        MultiScaleSolver(iterations=(40, 40, 80), optimizer="adam", convergence_eps=0),
    )
    output = WarpMovingd("moving_label")({**pair, **DIOInferer().register_pair(pair, net)})
    assert output["pred"].shape == (1, 2, 24, 28)
    assert output["warped_image"].shape == fixed.shape and output["warped_label"].shape == fixed_label.shape
    # world shift (2, -2) mm = fixed voxels
    assert torch.allclose(output["pred"][0, :, 11, 14], torch.tensor([2.0, -2.0]), atol=0.5)
    dice_before = float(
        2
        * (
            (
                warp_moving(
                    moving_label,
                    torch.zeros(1, 2, 24, 28),
                    net.geometry(pair["fixed_image"], pair["moving_image"]),
                    label=True,
                )
                > 0
            )
            & (fixed_label > 0)
        ).sum()
        / ((fixed_label > 0).sum() * 2)
    )
    dice_after = float(
        2
        * ((output["warped_label"] > 0) & (fixed_label > 0)).sum()
        / ((output["warped_label"] > 0).sum() + (fixed_label > 0).sum())
    )
    assert dice_after > 0.9 > dice_before
    # without world geometry the same pair is read as one field of view: a different answer
    plain = DIOInferer(world_geometry=False).register_pair(pair, net)
    assert not torch.allclose(plain["pred"], output["pred"], atol=0.5)


def test_inferer_switches_the_solver_and_builds_prompts():
    fixed, fixed_label = _disc((24, 28), (11, 14), 6)
    moving, moving_label = _disc((24, 28), (14, 11), 6)
    pair = {"fixed_image": fixed, "moving_image": moving, "fixed_label": fixed_label, "moving_label": moving_label}
    net = DIORegistration(build_feature_network("intensity"), MultiScaleSolver(iterations=(2, 2, 2)))
    switched = DIOInferer(
        solver=MultiScaleSolver(iterations=(4, 3, 2), transform="svf", optimizer="adam", convergence_eps=0)
    )
    assert switched.register_pair(pair, net)["solver_iterations"] == [4, 3, 2]
    assert len(DIOInferer(label_prompt_weight=1.0)._prompts(pair, fixed, moving)) == 1
    landmarks = {**pair, "fixed_landmarks": fixed_label, "moving_landmarks": moving_label}
    assert len(DIOInferer(label_prompt_weight=1.0, landmark_prompt_weight=2.0)._prompts(landmarks, fixed, moving)) == 2
    with pytest.raises(ValueError, match="fixed_landmarks"):
        DIOInferer(landmark_prompt_weight=1.0)._prompts(pair, fixed, moving)


def test_evaluator_runs_dio_pairs_on_their_own_grids():
    pair = _anisotropic_pair()
    fixed_label = pair["fixed_label"].as_tensor()
    net = DIORegistration(
        build_feature_network("intensity"), MultiScaleSolver(iterations=(10, 10, 10), optimizer="adam")
    )
    evaluator = RegistrationEvaluator(device="cpu", val_data_loader=[pair], network=net, inferer=DIOInferer())
    evaluator.run()
    output = evaluator.state.output
    assert output["pred"].shape == (1, 2, 24, 28)
    assert output["warped_label"].shape == (1, 1, 24, 28)
    assert set(np.unique(output["warped_label"].numpy())) <= {0, 1, 2}
    # the evaluator registers through the two images' world geometry, as the inferer does alone ...
    torch.testing.assert_close(output["pred"], DIOInferer().register_pair(pair, net)["pred"])
    plain = DIOInferer(world_geometry=False).register_pair(pair, net)
    assert not torch.allclose(plain["pred"], output["pred"], atol=0.5)
    # ... so the moving disc, 2 mm voxels along axis 0, lands on the fixed one
    warped, target = output["warped_label"] > 0, fixed_label > 0
    dice = float(2 * (warped & target).sum() / (warped.sum() + target.sum()))
    assert dice > 0.85, dice


def test_batched_feature_extraction_equals_one_image_at_a_time():
    net = _net()
    fixed, _ = _disc((24, 28), (11, 14), 6)
    moving, _ = _disc((24, 28), (13, 12), 5)
    batched = net._feature_pair(fixed, moving)
    for together, alone in zip(batched, (net.features(fixed), net.features(moving))):
        for a, b in zip(together, alone):
            assert torch.allclose(a, b, atol=1e-5)


def _stored_lps(image: torch.Tensor) -> MetaTensor:
    """``image`` (1, 1, X, Y, Z) on the RAS grid diag(1, 1, 1), stored in LPS order: the same voxels
    in world space, the first two array axes reversed."""
    x, y = image.shape[2] - 1, image.shape[3] - 1
    affine = torch.tensor([[-1.0, 0, 0, x], [0, -1.0, 0, y], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
    return MetaTensor(torch.flip(torch.as_tensor(image), (2, 3)), affine=affine)


def _brain_pair():
    from data_prep.synthetic_brain import brain_subject

    images = [torch.from_numpy(brain_subject((24, 28, 24), seed=2, index=i).image)[None, None] for i in (0, 1)]
    return [MetaTensor(i, affine=torch.eye(4, dtype=torch.float64)) for i in images]


def _stored_lia(image: torch.Tensor) -> MetaTensor:
    """The RAS ``image`` (1, C, X, Y, Z) stored as neurite-OASIS stores volumes (LIA): array axes
    run to L (x reversed), I (z reversed) and A (y)."""
    x, z = image.shape[2] - 1, image.shape[4] - 1
    affine = torch.tensor([[-1.0, 0, 0, x], [0, 0, 1, 0], [0, -1, 0, z], [0, 0, 0, 1]], dtype=torch.float64)
    return MetaTensor(torch.flip(torch.as_tensor(image), (2, 4)).permute(0, 1, 2, 4, 3), affine=affine)


def _net3d(**solver):
    torch.manual_seed(0)
    features = dio_unet(spatial_dims=3, channels=(4, 4, 8), feature_channels=3)
    return DIORegistration(features, MultiScaleSolver(iterations=(10, 10, 10), convergence_eps=0, **solver))


@pytest.mark.parametrize("solver", [{}, {"optimizer": "adam", "transform": "diffeomorphic"}])
def test_storage_order_does_not_change_the_registration(solver):
    """The same pair stored in RAS and in LPS order gives the same field (up to the reordering)
    to 1e-4 voxels: the features are computed in RAS order whatever the storage (dio.md §4.3)."""
    net = _net3d(**solver)
    fixed, moving = _brain_pair()
    with torch.no_grad():
        ras = net.register(fixed, moving).full_resolution_ddfs[-1]
        lps = net.register(_stored_lps(fixed), _stored_lps(moving)).full_resolution_ddfs[-1]
    # back to RAS order: reverse the two axes and the sign of their displacement components
    back = torch.flip(lps, (2, 3)) * torch.tensor([-1.0, -1.0, 1.0]).reshape(1, 3, 1, 1, 1)
    assert ras.abs().max() > 0.1  # it registered something
    assert (back - ras).abs().max() < 1e-4


def test_an_image_registered_to_itself_stored_in_another_order_stays_put():
    net = _net3d()
    fixed, _ = _brain_pair()
    with torch.no_grad():
        ddf = net.register(fixed, _stored_lps(fixed)).full_resolution_ddfs[-1]
    assert ddf.abs().max() < 1e-4


def test_storage_order_with_prompts_and_a_permuted_moving_image():
    """Fixed in RAS, moving stored LIA (axes permuted), a label prompt and a landmark prompt: the
    same field as with both images in RAS, to 1e-4 voxels."""
    from monai_ext.solvers import LabelPrompt, LandmarkPrompt

    net = _net3d(optimizer="adam", transform="diffeomorphic")
    fixed, moving = _brain_pair()
    label_f, label_m = (fixed > 0.5).long(), (moving > 0.5).long()
    points_f, points_m = torch.tensor([[[10.0, 12.0, 9.0]]]), torch.tensor([[[11.0, 13.5, 8.0]]])
    prompts = [
        LabelPrompt(label_f, label_m),
        LandmarkPrompt(points_f, points_m, fixed.shape[2:], moving.shape[2:], weight=0.1),
    ]
    lia = _stored_lia(moving)
    # the landmark in LIA voxels: x reversed, then (x, z reversed, y)
    points_lia = torch.stack([23 - points_m[..., 0], 23 - points_m[..., 2], points_m[..., 1]], dim=-1)
    prompts_lia = [
        LabelPrompt(label_f, _stored_lia(label_m).long()),
        LandmarkPrompt(points_f, points_lia, fixed.shape[2:], lia.shape[2:], weight=0.1),
    ]
    with torch.no_grad():
        ras = net.register(fixed, moving, prompts=prompts).full_resolution_ddfs[-1]
        stored = net.register(fixed, lia, prompts=prompts_lia)
    assert stored.fixed_to_moving is not None  # the moving image is read through its own storage
    assert (stored.full_resolution_ddfs[-1] - ras).abs().max() < 1e-4
    warped = warp_moving(lia[None] if lia.ndim == 4 else lia, stored.full_resolution_ddfs[-1], stored.fixed_to_moving)
    ras_warped = warp_moving(moving, ras, None)
    assert (warped - ras_warped).abs().max() < 1e-4


def test_a_partial_coverage_moving_image_is_not_matched_outside_its_field_of_view():
    """The moving image covers only z >= 14 mm of the fixed brain (same anatomy: the true field is
    the identity). Sampling replicated border values there drags the uncovered part of the field far
    from it, and the covered part a little; masking the dissimilarity outside the moving field of
    view (the default) keeps both closer."""
    from data_prep.synthetic_brain import brain_subject

    image = torch.from_numpy(brain_subject((32, 36, 32), seed=3).image)[None, None]
    fixed = MetaTensor(image, affine=torch.eye(4, dtype=torch.float64))
    affine = torch.eye(4, dtype=torch.float64)
    affine[2, 3] = 14.0
    moving = MetaTensor(image[..., 14:].clone(), affine=affine)

    def covered_motion(outside_moving):
        solver = MultiScaleSolver(
            optimizer="adam",
            transform="diffeomorphic",
            iterations=(100, 50, 25),
            convergence_eps=0,
            outside_moving=outside_moving,
        )
        net = DIORegistration(build_feature_network("intensity", spatial_dims=3), solver)
        with torch.no_grad():
            ddf = net.register(fixed, moving).full_resolution_ddfs[-1]
        return ddf[..., 16:].norm(dim=1).mean(), ddf[..., :14].norm(dim=1).mean()

    masked, border = covered_motion("mask"), covered_motion("border")
    assert masked[0] < min(border[0], 0.35)  # 0.29 vs 0.31 voxels
    assert masked[1] < 0.5 * border[1]  # outside the coverage: 0.99 vs 4.3 voxels
    with pytest.raises(ValueError, match="outside_moving"):
        MultiScaleSolver(outside_moving="zeros")


def test_trainer_passes_the_affines_of_a_thick_slice_moving_image():
    """A training pair whose moving image has half as many, twice as thick rows (MetaTensors): the
    trainer hands their affines to DIOObjective, which reads the moving image through them; the
    warped moving image lies on the fixed grid."""
    fixed, fixed_label = _disc((24, 28), (11, 14), 6)
    moving, moving_label = _disc((24, 28), (13, 12), 6)
    thin = torch.diag(torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    thick = thin.clone()
    thick[0, 0], thick[0, 3] = 2.0, 0.5  # rows of 2 mm, the field of view kept edge to edge
    thick_moving = torch.nn.functional.avg_pool2d(moving, (2, 1))
    thick_label = moving_label[:, :, ::2]
    seen = {}

    class Recording(DIOObjective):
        def forward(self, network, moving, fixed, **kwargs):
            seen.update(kwargs)
            return super().forward(network, moving, fixed, **kwargs)

    net = _net(iterations=(3, 3, 3))
    batch = {
        "fixed_image": MetaTensor(fixed, affine=thin[None]),
        "moving_image": MetaTensor(thick_moving, affine=thick[None]),
        "fixed_label": fixed_label,
        "moving_label": thick_label,
    }
    trainer = _dio_trainer(net, batch, Recording(labels=[1, 2], spatial_dims=2), decollate=False)
    trainer.run()
    assert torch.equal(seen["moving_affine"][0], thick) and torch.equal(seen["fixed_affine"][0], thin)
    assert trainer.state.output["warped_image"].shape == fixed.shape


def _rotated_pair():
    """A 32^3 synthetic brain and the same brain under a known affine map of normalised coordinates
    (12 degrees about the third axis, scaling 1.06 / 0.95, a shift): returns the images, the mask
    and the true fixed -> moving field."""
    from data_prep.synthetic_brain import brain_subject
    from monai_ext.solvers.transform_models import compose_affine

    subject = brain_subject((32, 32, 32), seed=4)
    fixed = torch.from_numpy(subject.image)[None, None]
    c, s = math.cos(math.radians(12)), math.sin(math.radians(12))
    matrix = torch.eye(4)[None]
    matrix[:, :3, :] = torch.tensor([[1.06 * c, -s, 0, 0.08], [s, 1.06 * c, 0, -0.05], [0, 0, 0.95, 0.04]])
    zero = torch.zeros(1, 3, 32, 32, 32)
    moving = sample_moving(fixed, zero, matrix)  # moving(n) = fixed(M n)
    truth = compose_affine(torch.linalg.inv(matrix)[:, :3, :], zero)
    return fixed, moving, torch.from_numpy(subject.mask), truth


def test_an_affine_stage_before_the_deformable_one():
    """Affine, then diffeomorphic, in one run (as ANTs by default): on a pair related by a 12-degree
    rotation with scaling the endpoint error inside the brain falls well below deformable-only."""
    fixed, moving, mask, truth = _rotated_pair()
    solver = MultiScaleSolver(optimizer="adam", transform="diffeomorphic", iterations=(100, 50, 25), convergence_eps=0)
    net = DIORegistration(build_feature_network("intensity", spatial_dims=3), solver)
    affine = MultiScaleSolver(transform="affine", optimizer="adam", iterations=(100, 50, 25), convergence_eps=0)
    with torch.no_grad():
        alone = net.register(fixed, moving).full_resolution_ddfs[-1]
        chained = net.register(fixed, moving, affine_solver=affine)
    error = {
        name: float((d - truth).norm(dim=1)[0][mask].mean())
        for name, d in (("alone", alone), ("chained", chained.full_resolution_ddfs[-1]))
    }
    assert error["chained"] < 0.7 * error["alone"], error
    assert float(truth.norm(dim=1)[0][mask].mean()) > 2.0  # the pair does need registering
    assert chained.iterations == [100, 50, 25, 100, 50, 25]
    with pytest.raises(ValueError, match="affine_solver must use transform='affine'"):
        net.register(fixed, moving, affine_solver=solver)


class _RecordingFeatures(torch.nn.Module):
    """The intensity pyramid, recording the spatial shape of every image it is given."""

    def __init__(self):
        super().__init__()
        self.pyramid = build_feature_network("intensity")
        self.shapes = []

    def forward(self, image):
        self.shapes.append(tuple(image.shape[2:]))
        return self.pyramid(image)


def test_features_of_a_thick_slice_moving_image_at_the_fixed_voxel_size():
    # the 2 mm moving image (12 x 28) is given to the features as 23 x 28 voxels of 1 mm (first and last
    # centres kept); the registration, warped image and labels still use the moving image's own grid
    pair = _anisotropic_pair()
    solver = MultiScaleSolver(iterations=(40, 40, 80), optimizer="adam", convergence_eps=0)
    for match in (False, True):
        features = _RecordingFeatures()
        output = DIOInferer(match_fixed_spacing=match).register_pair(pair, DIORegistration(features, solver))
        output = WarpMovingd("moving_label")({**pair, **output})
        assert set(features.shapes) == ({(24, 28), (23, 28)} if match else {(24, 28), (12, 28)})
        assert output["warped_label"].shape == (1, 1, 24, 28)
        assert torch.allclose(output["pred"][0, :, 11, 14], torch.tensor([2.0, -2.0]), atol=0.5)
        fixed_label = pair["fixed_label"].as_tensor() > 0
        warped = output["warped_label"] > 0
        assert 2 * (warped & fixed_label).sum() / (warped.sum() + fixed_label.sum()) > 0.9
