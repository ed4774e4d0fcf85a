"""The bundle zoo: package, index, serve over HTTP on 127.0.0.1, list, download (by URL with MONAI, by
name from the index), verify every checksum, refuse tampered files; the model zoo's checks offline."""

from __future__ import annotations

import csv
import functools
import http.server
import json
import threading
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from monai_ext.zoo import ChecksumError, download_bundle, package_bundle, read_index, sha256_file, verify_bundle
from monai_ext.zoo.package import evaluation_from_csv

from helpers import BUNDLES, bundle_config, run_module

FIGURES = {"mean_dice": 0.8402, "mean_hd95": 5.06, "njd_percent": 0.40}


def _summary_csv(path: Path) -> Path:
    rows = [
        ("Initial", "mean", 0.6135, 9.72, 0.0211, "nan", "nan"),
        ("Initial", "std", 0.0928, 1.05, 0.0051, "nan", "nan"),
        ("GSMorph", "mean", 0.8402, 5.06, 0.0087, 0.40, "nan"),
        ("GSMorph", "std", 0.0603, 0.64, 0.0020, 0.18, "nan"),
    ]
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["method", "statistic", "Dice_mean", "HD95_mean", "MSE", "NJD", "TRE"])
        writer.writerows(rows)
    return path


def test_evaluation_from_the_metrics_summary(tmp_path):
    figures = evaluation_from_csv(_summary_csv(tmp_path / "metrics_summary.csv"))
    assert figures == {"mean_dice": 0.8402, "mean_hd95": 5.06, "njd_percent": 0.40, "mse": 0.0087}
    with pytest.raises(ValueError, match="no mean row for method 'VoxelMorph'"):
        evaluation_from_csv(tmp_path / "metrics_summary.csv", "VoxelMorph")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """gsmorph_cardiac v0.2.0 (weights: the inference network's initial state, saved as a training
    run saves model.pt) published into a folder served over HTTP on 127.0.0.1."""
    root = tmp_path_factory.mktemp("zoo")
    torch.manual_seed(0)
    weights = root / "model.pt"
    torch.save(
        bundle_config("gsmorph_cardiac", "inference.json").get_parsed_content("network_def").state_dict(), weights
    )
    served = root / "served"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(served)))
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    zip_path = package_bundle(
        BUNDLES / "gsmorph_cardiac", weights, "0.2.0", "test model", FIGURES, "hand-written figures", served, base_url
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"root": root, "served": served, "zip": zip_path, "weights": weights, "url": base_url}
    server.shutdown()


def test_the_zip_is_laid_out_as_monai_downloads_it(zoo):
    weights_sha = sha256_file(zoo["weights"])
    with zipfile.ZipFile(zoo["zip"]) as archive:
        names = set(archive.namelist())
        metadata = json.loads(archive.read("gsmorph_cardiac/configs/metadata.json"))
        large_files = yaml.safe_load(archive.read("gsmorph_cardiac/large_files.yml"))
    assert {"gsmorph_cardiac/models/model.pt", "gsmorph_cardiac/configs/inference.json",
            "gsmorph_cardiac/docs/README.md", "gsmorph_cardiac/LICENSE"} <= names  # fmt: skip
    assert not any(n.startswith("gsmorph_cardiac/models/.") for n in names)
    assert metadata["version"] == "0.2.0" and metadata["changelog"]["0.2.0"] == "test model"
    assert "0.1.0" in metadata["changelog"]  # the history is kept
    assert metadata["eval_metrics"] == FIGURES and metadata["weights_sha256"] == weights_sha
    (entry,) = large_files["large_files"]
    assert entry == {
        "path": "models/model.pt",
        "url": f"{zoo['url']}/gsmorph_cardiac_v0.2.0_model.pt",
        "hash_val": weights_sha,
        "hash_type": "sha256",
    }
    index = read_index(zoo["served"] / "model_info.json")
    assert index == {
        "gsmorph_cardiac_v0.2.0": {
            "checksum": sha256_file(zoo["zip"]),
            "hash_type": "sha256",
            "source": f"{zoo['url']}/gsmorph_cardiac_v0.2.0.zip",
        }
    }


def test_a_published_version_and_placeholder_figures_are_refused(zoo):
    with pytest.raises(ValueError, match="already published"):
        package_bundle(BUNDLES / "gsmorph_cardiac", zoo["weights"], "0.2.0", "again", FIGURES, "x", zoo["served"])
    with pytest.raises(ValueError, match="measured"):
        package_bundle(
            BUNDLES / "gsmorph_cardiac", zoo["weights"], "0.2.1", "x", {"mean_dice": 0.0}, "x", zoo["root"] / "z"
        )


@pytest.mark.slow  # five subprocesses, two TorchScript exports
def test_list_download_by_url_and_by_name_and_verify(zoo, tmp_path):
    listed = run_module("monai_ext.zoo", "list", "--index", f"{zoo['url']}/model_info.json").stdout
    assert f"gsmorph_cardiac\t0.2.0\t{zoo['url']}/gsmorph_cardiac_v0.2.0.zip" in listed
    # by URL, with MONAI's own command
    run_module(
        "monai.bundle", "download", "--name", "gsmorph_cardiac", "--url", f"{zoo['url']}/gsmorph_cardiac_v0.2.0.zip",
        "--bundle_dir", tmp_path / "by_url",
    )  # fmt: skip
    # by name from the index
    run_module(
        "monai_ext.zoo", "download", "--name", "gsmorph_cardiac", "--index", f"{zoo['url']}/model_info.json",
        "--bundle_dir", tmp_path / "by_name",
    )  # fmt: skip
    for folder in ("by_url", "by_name"):
        bundle = tmp_path / folder / "gsmorph_cardiac"
        assert sha256_file(bundle / "models" / "model.pt") == sha256_file(zoo["weights"])
        checks = run_module("monai_ext.zoo", "verify", bundle).stdout
        for check in ("required files", "large files (sha256)", "metadata schema", "network input / output shapes",
                      "TorchScript export"):  # fmt: skip
            assert f"passed: {check}" in checks


@pytest.mark.slow  # downloads and the model zoo's checks
def test_a_tampered_zip_or_weight_file_is_refused_naming_it(zoo, tmp_path):
    bundle = download_bundle("gsmorph_cardiac", f"{zoo['url']}/model_info.json", tmp_path)
    weights = bundle / "models" / "model.pt"
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(ChecksumError, match=r"models/model\.pt: sha256 .* does not match"):
        verify_bundle(bundle)
    # a changed zip on the server: refused before anything is extracted, the earlier bundle kept
    tampered = zoo["root"] / "tampered"
    tampered.mkdir()
    data = bytearray(zoo["zip"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tampered / zoo["zip"].name).write_bytes(bytes(data))
    index = read_index(zoo["served"] / "model_info.json")
    index["gsmorph_cardiac_v0.2.0"]["source"] = (tampered / zoo["zip"].name).as_uri()
    (tampered / "model_info.json").write_text(json.dumps(index))
    with pytest.raises(ChecksumError, match=r"gsmorph_cardiac_v0\.2\.0\.zip: sha256 .* does not match"):
        download_bundle("gsmorph_cardiac", tampered / "model_info.json", tmp_path)
    assert (bundle / "models" / "model.pt").read_bytes() == weights.read_bytes()


@pytest.mark.parametrize("bundle", ["gsmorph_cardiac", "dio_brain"])
def test_model_zoo_checks_of_the_bundle_folders(bundle):
    assert verify_bundle(BUNDLES / bundle, weights=False) == [
        "required files",
        "version and changelog",
        "metadata schema",
        "network input / output shapes",
    ]


@pytest.mark.slow  # gradicon_brain and unigradicon_io run at their 175^3 grid
@pytest.mark.parametrize("bundle", ["gsmorph_cardiac", "gradicon_brain", "unigradicon_io", "dio_brain"])
def test_model_zoo_checks_of_every_published_bundle(bundle, tmp_path):
    """Each bundle published (initial weights of its inference network) into a file:// zoo, downloaded
    by name and checked with its weights: large file against its sha256, shapes, TorchScript where declared."""
    torch.manual_seed(0)
    weights = tmp_path / "model.pt"
    torch.save(bundle_config(bundle, "inference.json").get_parsed_content("network_def").state_dict(), weights)
    package_bundle(BUNDLES / bundle, weights, "0.2.0", "test model", FIGURES, "hand-written figures", tmp_path / "zoo")
    downloaded = download_bundle(bundle, tmp_path / "zoo" / "model_info.json", tmp_path / "bundles")
    (downloaded / "models" / "model.pt").unlink()  # fetched again through large_files.yml
    checks = verify_bundle(downloaded)
    expected = ["required files", "large files (sha256)", "version and changelog", "metadata schema",
                "network input / output shapes"]  # fmt: skip
    assert checks == expected + ([] if bundle == "dio_brain" else ["TorchScript export"])


def test_dio_declares_that_it_has_no_torchscript():
    metadata = json.loads((BUNDLES / "dio_brain" / "configs" / "metadata.json").read_text())
    assert metadata["torchscript"] is False
