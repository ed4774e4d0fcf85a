"""A real MONAI Label server (``apps/registration``) serves label propagation over HTTP on 127.0.0.1.

The server is started with ``python -m monailabel.main start_server`` on a small generated
datastore: two synthetic Learn2Reg-layout OASIS subjects of 40 x 48 x 40 (the demo's), one with a
``final`` label, and the ED and ES frames of one synthetic ACDC-layout slice, ES annotated.
``/infer/dio_brain`` registers the labelled subject to the other one (DIO with intensity features,
which needs no trained weights); ``/infer/gsmorph_cardiac`` (weights from a short training on other
synthetic subjects) propagates the ES annotation to the ED frame. The returned labels must lie on the
image's grid, carry the reference's label names, and agree better with the image's known labels than
the unregistered reference does.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Spacing

from data_prep import make_synthetic_oasis
from monai_ext.data import mni152_tissue_atlas
from monai_ext.spatial import resample_normalized_affine

from helpers import BUNDLES, REPO, cli, run_bundle, training_args

OVERRIDES = {
    "dio_brain": {"feature_network": "intensity", "load_pretrain": False, "iterations": [30, 20, 10]},
    # GradICON in the bundle's 2-D setting (the demo's), on coronal slices
    "gradicon_brain": {"spatial_dims": 2, "image_size": [80, 80], "dataset_name": "oasis", "io_steps": 0},
    # no uniGradICON weights here: the untrained network (zero last layer: the identity) on the smallest grid
    # its five-level U-Net takes, to check the plumbing exactly
    "unigradicon_io": {"load_pretrain": False, "image_size": [72, 72, 72], "io_steps": 0},
}


def _atlas_target(cache: Path, image_path: Path, truth_path: Path) -> None:
    """The MNI152 atlas at 3 mm, turned by 6 degrees and shifted by 2 voxels inside its grid (the
    anatomy moves in world space; the affine stays): an image whose tissue labels are known."""
    image_file, label_file, _ = mni152_tissue_atlas(cache)
    angle = np.deg2rad(6.0)
    matrix = torch.tensor(
        [[np.cos(angle), -np.sin(angle), 0, 0.06], [np.sin(angle), np.cos(angle), 0, 0.0], [0, 0, 1, -0.04]],
        dtype=torch.float32,
    )
    for source, target, mode in ((image_file, image_path, "bilinear"), (label_file, truth_path, "nearest")):
        loaded = nib.load(source)
        data = MetaTensor(torch.as_tensor(np.asarray(loaded.dataobj), dtype=torch.float32)[None], affine=loaded.affine)
        coarse = Spacing(pixdim=(3.0, 3.0, 3.0), mode=mode)(data)
        moved = resample_normalized_affine(coarse.as_tensor(), matrix, mode=mode)[0].numpy()
        dtype = np.float32 if mode == "bilinear" else np.uint8
        nib.save(nib.Nifti1Image(moved.astype(dtype), coarse.affine.numpy()), target)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    labels = [v for v in np.unique(b) if v != 0]
    return float(np.mean([2 * ((a == v) & (b == v)).sum() / ((a == v).sum() + (b == v).sum()) for v in labels]))


def _train_gradicon_2d(dataset_dir: Path, root: Path) -> Path:
    """GradICON's two stages in 2-D at 80 x 80 on coronal slices (the demo's CPU setting, shorter)."""
    configs = BUNDLES / "gradicon_brain" / "configs"
    common = [
        *training_args("gradicon_brain", dataset_dir, root, dataset_name="oasis"),
        *cli(spatial_dims=2, image_size=[80, 80], batch_size=8, learning_rate=5e-4, num_epochs=1, val_interval=1),
    ]
    run_bundle("run", *cli(config_file=configs / "train.json"), *common,
               *cli(output_dir=root / "stage1", iterations_per_epoch=40))  # fmt: skip
    run_bundle("run", "--config_file", f"['{configs / 'train.json'}','{configs / 'stage2.json'}']", *common,
               *cli(output_dir=root / "stage2", iterations_per_epoch=15))  # fmt: skip
    return root / "models" / "model.pt"


@pytest.fixture(scope="module")
def server(tmp_path_factory, acdc_dataset, neurite_slices_dataset):
    root = tmp_path_factory.mktemp("monailabel")
    make_synthetic_oasis(root / "raw", num_subjects=8, num_val=3, size=(40, 48, 40), seed=0)
    # the bundles the app serves: dio_brain as it is, gsmorph_cardiac with briefly trained weights
    bundles = root / "bundles"
    for name in ("dio_brain", "gsmorph_cardiac"):
        shutil.copytree(BUNDLES / name, bundles / name, ignore=shutil.ignore_patterns("models"))
    run_bundle(
        "run",
        *cli(config_file=BUNDLES / "gsmorph_cardiac" / "configs" / "train.json"),
        *training_args("gsmorph_cardiac", acdc_dataset / "data", root / "gsmorph", batch_size=4),
        *cli(output_dir=root / "gsmorph" / "train", num_epochs=30, val_interval=10, learning_rate=6.25e-4),
    )
    (bundles / "gsmorph_cardiac" / "models").mkdir()
    shutil.copy(root / "gsmorph" / "models" / "model.pt", bundles / "gsmorph_cardiac" / "models" / "model.pt")
    shutil.copytree(BUNDLES / "unigradicon_io", bundles / "unigradicon_io", ignore=shutil.ignore_patterns("models"))
    shutil.copytree(BUNDLES / "gradicon_brain", bundles / "gradicon_brain", ignore=shutil.ignore_patterns("models"))
    (bundles / "gradicon_brain" / "models").mkdir()
    gradicon = _train_gradicon_2d(neurite_slices_dataset / "data", root / "gradicon")
    shutil.copy(gradicon, bundles / "gradicon_brain" / "models" / "model.pt")
    studies = root / "studies"
    (studies / "labels" / "final").mkdir(parents=True)
    raw = root / "raw"
    for subject in ("OASIS_0006_0000", "OASIS_0007_0000"):
        shutil.copy(raw / "imagesTr" / f"{subject}.nii.gz", studies / f"{subject}.nii.gz")
    shutil.copy(raw / "labelsTr" / "OASIS_0007_0000.nii.gz", studies / "labels" / "final" / "OASIS_0007_0000.nii.gz")
    _atlas_target(root / "atlas_cache", studies / "MNI_moved.nii.gz", root / "MNI_moved_truth.nii.gz")
    cardiac = json.loads((acdc_dataset / "data" / "datalist.json").read_text())["testing"][0]
    for key in ("fixed_image", "moving_image"):
        shutil.copy(acdc_dataset / "data" / cardiac[key], studies)
    shutil.copy(acdc_dataset / "data" / cardiac["moving_label"], studies / "labels" / "final")
    # annotated ED and ES frames of other slices: what /train/gsmorph_cardiac pairs and trains on
    for pair in json.loads((acdc_dataset / "data" / "datalist.json").read_text())["training"]:
        for role in ("fixed", "moving"):
            shutil.copy(acdc_dataset / "data" / pair[f"{role}_image"], studies)
            shutil.copy(acdc_dataset / "data" / pair[f"{role}_label"], studies / "labels" / "final")
    # two coronal slices of different subjects, the second annotated: GradICON's pair
    slices = json.loads((neurite_slices_dataset / "data" / "datalist.json").read_text())["validation"][0]
    brain_2d = {}
    for role in ("fixed", "moving"):
        name = f"slice_{role}.nii.gz"
        shutil.copy(neurite_slices_dataset / "data" / slices[f"{role}_image"], studies / name)
        brain_2d[role] = (studies / name, neurite_slices_dataset / "data" / slices[f"{role}_label"])
    shutil.copy(brain_2d["moving"][1], studies / "labels" / "final" / "slice_moving.nii.gz")
    app = root / "app"
    shutil.copytree(REPO / "apps" / "registration", app)
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(app), "--studies", str(studies),
         "--host", "127.0.0.1", "--port", str(port), "--conf", "bundles", str(bundles),
         "--conf", "overrides", json.dumps(OVERRIDES, separators=(",", ":"))],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    info = None
    try:
        for _ in range(240):
            if process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{url}/info/", timeout=5) as response:
                    info = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.5)
        assert info is not None and process.poll() is None, (root / "server.log").read_text()[-4000:]
        paths = {k: acdc_dataset / "data" / v for k, v in cardiac.items() if k.endswith(("image", "label"))}
        yield {"url": url, "info": info, "raw": raw, "app": app, "log": root / "server.log", "cardiac": paths,
               "atlas_target": (studies / "MNI_moved.nii.gz", root / "MNI_moved_truth.nii.gz"),
               "bundles": bundles, "brain_2d": brain_2d}  # fmt: skip
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.slow  # a MONAI Label server and a 3-D registration
def test_infer_propagates_the_reference_labels(server, tmp_path):
    import requests

    assert "dio_brain" in server["info"]["models"]
    assert server["info"]["models"]["dio_brain"]["config"]["feature_network"] == "intensity"
    response = requests.post(
        f"{server['url']}/infer/dio_brain",
        params={"image": "OASIS_0006_0000", "output": "image"},
        data={"params": json.dumps({"reference": "OASIS_0007_0000"})},
        timeout=600,
    )
    assert response.status_code == 200, server["log"].read_text()[-4000:]
    (tmp_path / "label.nii.gz").write_bytes(response.content)
    label = nib.load(tmp_path / "label.nii.gz")
    image = nib.load(server["raw"] / "imagesTr" / "OASIS_0006_0000.nii.gz")
    assert label.shape == image.shape and np.allclose(label.affine, image.affine)
    truth = np.asarray(nib.load(server["raw"] / "labelsTr" / "OASIS_0006_0000.nii.gz").dataobj).astype(int)
    reference = np.asarray(nib.load(server["raw"] / "labelsTr" / "OASIS_0007_0000.nii.gz").dataobj).astype(int)
    propagated = np.asarray(label.dataobj).astype(int)
    assert set(np.unique(propagated)) <= set(np.unique(reference))
    assert _dice(propagated, truth) > _dice(reference, truth) + 0.05
    # the field and the QC picture are kept with the app's results
    (case,) = (server["app"] / "results" / "dio_brain").iterdir()
    assert next(case.rglob("ddf.nii.gz")).is_file() and next(case.rglob("qc.png")).is_file()
    # the label names of the reference come back with the labels
    params = requests.post(
        f"{server['url']}/infer/dio_brain",
        params={"image": "OASIS_0006_0000", "output": "json"},
        data={"params": json.dumps({"reference": "OASIS_0007_0000"})},
        timeout=600,
    ).json()
    names = params.get("params", params)["label_names"]
    assert {int(v) for v in names.values()} == {int(v) for v in np.unique(reference) if v != 0}


def _infer(server: dict, model: str, image: str, reference: str, output: str):
    import requests

    response = requests.post(
        f"{server['url']}/infer/{model}",
        params={"image": image, "output": output},
        data={"params": json.dumps({"reference": reference})},
        timeout=600,
    )
    assert response.status_code == 200, server["log"].read_text()[-4000:]
    return response


@pytest.mark.slow  # a MONAI Label server, a short GSMorph training
def test_gsmorph_propagates_the_es_annotation_to_the_ed_frame(server, tmp_path):
    paths = server["cardiac"]
    fixed_id = paths["fixed_image"].name.replace(".nii.gz", "")
    reference_id = paths["moving_image"].name.replace(".nii.gz", "")
    label_file = tmp_path / "label.nii.gz"
    label_file.write_bytes(_infer(server, "gsmorph_cardiac", fixed_id, reference_id, "image").content)
    label, image = nib.load(label_file), nib.load(paths["fixed_image"])
    assert label.shape == image.shape and np.allclose(label.affine, image.affine)
    truth = np.asarray(nib.load(paths["fixed_label"]).dataobj).astype(int)
    reference = np.asarray(nib.load(paths["moving_label"]).dataobj).astype(int)
    propagated = np.asarray(label.dataobj).astype(int)
    assert _dice(propagated, truth) > _dice(reference, truth)
    params = _infer(server, "gsmorph_cardiac", fixed_id, reference_id, "json").json()
    assert params.get("params", params)["label_names"] == {"LV": 1, "Myo": 2, "RV": 3}


@pytest.mark.slow  # a MONAI Label server and a 3-D registration
def test_without_a_reference_the_brain_bundles_propagate_the_mni152_atlas(server, tmp_path):
    image_path, truth_path = server["atlas_target"]
    label_file = tmp_path / "label.nii.gz"
    label_file.write_bytes(_infer(server, "dio_brain", "MNI_moved", "", "image").content)
    label, image = nib.load(label_file), nib.load(image_path)
    assert label.shape == image.shape and np.allclose(label.affine, image.affine)
    truth = np.asarray(nib.load(truth_path).dataobj).astype(int)
    propagated = np.asarray(label.dataobj).astype(int)
    # the atlas's own labels on this grid without registration: the turn and shift undone by nothing
    atlas = nib.load(server["app"] / "atlas" / "mni152_tissue_labels.nii.gz")
    atlas_tensor = MetaTensor(
        torch.as_tensor(np.asarray(atlas.dataobj), dtype=torch.float32)[None], affine=atlas.affine
    )
    atlas_labels = Spacing(pixdim=(3.0, 3.0, 3.0), mode="nearest")(atlas_tensor)[0].numpy().astype(int)
    assert atlas_labels.shape == truth.shape
    assert _dice(propagated, truth) > _dice(atlas_labels, truth) + 0.05
    params = _infer(server, "dio_brain", "MNI_moved", "", "json").json()
    assert params.get("params", params)["label_names"] == {"gray matter": 1, "white matter": 2}


@pytest.mark.slow  # a MONAI Label server and a 3-D network at 72^3
def test_unigradicon_serves_the_reference_labels_through_an_identity_network(server, tmp_path):
    # the untrained network predicts a zero field, so the propagated labels are the reference's, exactly
    label_file = tmp_path / "label.nii.gz"
    label_file.write_bytes(_infer(server, "unigradicon_io", "OASIS_0006_0000", "OASIS_0007_0000", "image").content)
    label, image = nib.load(label_file), nib.load(server["raw"] / "imagesTr" / "OASIS_0006_0000.nii.gz")
    assert label.shape == image.shape and np.allclose(label.affine, image.affine)
    reference = np.asarray(nib.load(server["raw"] / "labelsTr" / "OASIS_0007_0000.nii.gz").dataobj).astype(int)
    np.testing.assert_array_equal(np.asarray(label.dataobj).astype(int), reference)
    (case,) = (server["app"] / "results" / "unigradicon_io").iterdir()
    assert np.abs(np.asarray(nib.load(next(case.rglob("ddf.nii.gz"))).dataobj)).max() == 0


@pytest.mark.slow  # a MONAI Label server, a short 2-D GradICON training
def test_gradicon_propagates_a_labelled_slice_with_and_without_instance_optimisation(server, tmp_path):
    (image_path, truth_path), (_, reference_path) = server["brain_2d"]["fixed"], server["brain_2d"]["moving"]
    truth = np.asarray(nib.load(truth_path).dataobj).astype(int)
    reference = np.asarray(nib.load(reference_path).dataobj).astype(int)
    import requests

    for io_steps in (0, 5):
        response = requests.post(
            f"{server['url']}/infer/gradicon_brain",
            params={"image": "slice_fixed", "output": "image"},
            data={"params": json.dumps({"reference": "slice_moving", "io_steps": io_steps})},
            timeout=600,
        )
        assert response.status_code == 200, server["log"].read_text()[-4000:]
        (tmp_path / "label.nii.gz").write_bytes(response.content)
        label, image = nib.load(tmp_path / "label.nii.gz"), nib.load(image_path)
        assert label.shape == image.shape and np.allclose(label.affine, image.affine)
        propagated = np.asarray(label.dataobj).astype(int)
        assert set(np.unique(propagated)) <= set(np.unique(reference))
        dice, unregistered = _dice(propagated, truth), _dice(reference, truth)
        print(f"gradicon_brain io_steps={io_steps}: Dice {dice:.3f}, unregistered {unregistered:.3f}")
        assert dice > unregistered, io_steps


@pytest.mark.slow  # a MONAI Label server, two GSMorph epochs
def test_train_pairs_the_annotated_frames_and_writes_a_new_model(server, tmp_path):
    import requests

    trainer = server["info"]["trainers"]["gsmorph_cardiac"]
    assert trainer["config"]["learning_rate"] == 0.005 and trainer["config"]["val_interval"] == 5
    models = server["bundles"] / "gsmorph_cardiac" / "models"
    before = torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    started = time.time()
    time.sleep(1.0)
    params = {"max_epochs": 2, "val_interval": 1, "batch_size": 4, "val_split": 0.3, "pretrained": True,
              "device": "cpu", "multi_gpu": False, "learning_rate": 1e-3}  # fmt: skip
    response = requests.post(
        f"{server['url']}/train/gsmorph_cardiac", params={"run_sync": True}, json=params, timeout=1200
    )
    assert response.status_code == 200, server["log"].read_text()[-6000:]
    log = server["log"].read_text()
    # the datastore's brain volumes were left out, the cardiac frames paired within their slice
    assert "are not 2-D and are not used" in log
    assert (models / "model.pt").stat().st_mtime > started
    last = torch.load(models / "checkpoint_last.pt", map_location="cpu", weights_only=True)["model"]
    assert set(last) == set(before)
    assert any(not torch.equal(last[k], before[k]) for k in before)  # two epochs changed the weights
    # the next inference request runs on the new model
    paths = server["cardiac"]
    fixed_id = paths["fixed_image"].name.replace(".nii.gz", "")
    reference_id = paths["moving_image"].name.replace(".nii.gz", "")
    label_file = tmp_path / "label.nii.gz"
    label_file.write_bytes(_infer(server, "gsmorph_cardiac", fixed_id, reference_id, "image").content)
    assert nib.load(label_file).shape == nib.load(paths["fixed_image"]).shape
