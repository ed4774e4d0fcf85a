"""A published bundle runs in a fresh virtual environment that holds only what its metadata declares.

The zoo is built from the repository (two bundles and the project's wheel), served over HTTP on
127.0.0.1, the bundles downloaded (one by URL with ``python -m monai.bundle download``, one by name
from the index), and each one's inference run on a generated pair inside a new virtual environment
into which only the metadata's packages were installed (the project from the zoo's wheel, the rest
from the package index). The displacement fields equal those of the in-repository run.
"""

from __future__ import annotations

import functools
import http.server
import json
import subprocess
import sys
import threading
import venv
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_ext.io.displacement_field import read_itk_displacement_field
from monai_ext.zoo import package_bundle

from helpers import BUNDLES, REPO, bundle_config, inference_args, run_bundle, run_module

DIO_WEIGHTS = Path(__file__).parent / "data" / "dio_demo_unet.pt"
DIO_NETWORK = {"feature_network": "unet", "unet_channels": [8, 8, 16, 16], "feature_channels": 8}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _declared_requirements(bundle: Path) -> list[str]:
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    pins = {
        "monai": metadata["monai_version"],
        "torch": metadata["pytorch_version"],
        "numpy": metadata["numpy_version"],
    }
    pins.update(metadata["required_packages_version"])
    return [f"{name}=={version}" for name, version in pins.items()]


def _first_pair(dataset_dir: Path) -> dict[str, Path]:
    datalist = json.loads((dataset_dir / "datalist.json").read_text())
    pair = (datalist.get("validation") or datalist["testing"])[0]
    return {key: (dataset_dir / pair[key]).resolve() for key in ("fixed_image", "moving_image")}


def _ddf(output_dir: Path) -> np.ndarray:
    """The one pair's field: ``ddf.nii.gz``, or ``ddf.h5`` for an oblique 2-D slice (the synthetic
    short-axis slices are oblique)."""
    (path,) = sorted(output_dir.rglob("ddf.nii.gz")) + sorted(output_dir.rglob("ddf.h5"))
    return read_itk_displacement_field(path)[0]


@pytest.mark.slow  # a new virtual environment with torch, MONAI and ITK from the package index
def test_downloaded_bundles_run_in_a_fresh_environment(tmp_path, acdc_dataset, oasis_dataset):
    served = tmp_path / "zoo"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(served)))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        torch.manual_seed(0)
        gsmorph_weights = tmp_path / "gsmorph.pt"
        network = bundle_config("gsmorph_cardiac", "inference.json").get_parsed_content("network_def")
        torch.save(network.state_dict(), gsmorph_weights)
        figures = {"mean_dice": 0.5}
        package_bundle(BUNDLES / "gsmorph_cardiac", gsmorph_weights, "0.1.0", "test", figures, "test", served, url)
        package_bundle(
            BUNDLES / "dio_brain", DIO_WEIGHTS, "0.1.0", "test", figures, "test", served, url, overrides=DIO_NETWORK
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--wheel-dir",
                str(served / "wheels"),
                str(REPO),
            ],
            check=True,
            capture_output=True,
        )
        downloads = tmp_path / "downloads"
        run_module("monai.bundle", "download", "--name", "gsmorph_cardiac", "--url",
                   f"{url}/gsmorph_cardiac_v0.1.0.zip", "--bundle_dir", downloads)  # fmt: skip
        run_module("monai_ext.zoo", "download", "--name", "dio_brain", "--index", f"{url}/model_info.json",
                   "--bundle_dir", downloads)  # fmt: skip

        environment = tmp_path / "env"
        venv.create(environment, with_pip=True)
        python = environment / "bin" / "python"
        requirements = sorted(
            set(_declared_requirements(downloads / "gsmorph_cardiac") + _declared_requirements(downloads / "dio_brain"))
        )
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--find-links", f"{url}/wheels/", *requirements],
            capture_output=True,
            text=True,
        )
        assert install.returncode == 0, install.stderr[-3000:]
    finally:
        server.shutdown()

    cases = {
        "gsmorph_cardiac": (_first_pair(acdc_dataset / "data"), gsmorph_weights, {}),
        "dio_brain": (_first_pair(oasis_dataset / "data"), DIO_WEIGHTS, {**DIO_NETWORK, "iterations": [20, 10, 5]}),
    }
    for name, (pair, weights, options) in cases.items():
        bundle = downloads / name
        fresh_output = tmp_path / f"{name}_fresh"
        command = [
            str(python), "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs" / "inference.json"),
            "--bundle_root", str(bundle), "--fixed", str(pair["fixed_image"]), "--moving", str(pair["moving_image"]),
            "--output_dir", str(fresh_output), "--num_workers", "0",
        ]  # fmt: skip
        if "iterations" in options:
            command += ["--iterations", json.dumps(options["iterations"])]
        # run outside the repository, so that nothing of it is on the path
        fresh = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert fresh.returncode == 0, fresh.stderr[-4000:]
        repo_output = tmp_path / f"{name}_repo"
        run_bundle(
            *inference_args(
                name, weights, repo_output, fixed=pair["fixed_image"], moving=pair["moving_image"], **options
            )
        )
        np.testing.assert_allclose(_ddf(fresh_output), _ddf(repo_output), atol=1e-4)
