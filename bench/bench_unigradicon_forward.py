"""uniGradICON inference forward: ours against the ``unigradicon`` package, same weights, same input.

The peer is what ``unigradicon-register`` runs for a pair without instance optimisation:
``icon_registration.itk_wrapper.register_pair`` calls the whole ``GradientICONSparse`` module under
``torch.no_grad`` (both directions and the loss terms), then reads ``phi_AB_vectorfield``. Ours is
what ``monai-register --io_iterations 0`` and the bundle's inference run: the network once, moving to
fixed, under ``torch.inference_mode``. Both networks hold the same random weights (the official
ones cannot be fetched here; the architecture and the arithmetic are those of the release).

The runs alternate (peer, ours, peer, ...) so that a change of machine load hits both; the section
of bench/README.md reports the median and the spread of each, their ratio, and the largest
difference between the two displacement fields in voxels.

Usage: python bench/bench_unigradicon_forward.py [--size 96] [--repeats 5] [--threads 2] [--write]
(run in the environment of bench/install.sh).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from machine import code_commit, describe_machine
from readme_section import write_readme_section

from monai_ext.networks import load_icon_state_dict, unigradicon_network
from monai_ext.spatial import icon_map_to_ddf

SECTION = "## uniGradICON inference forward"


def random_weights_(module: torch.nn.Module, scale: float = 0.02, seed: int = 0) -> torch.nn.Module:
    """Fill every parameter with seeded noise (the released atoms start with a zero last layer, which
    would make both networks return the identity and the comparison trivial)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    return module


def smooth_pair(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(2, 1, size, size, size, generator=generator)
    for _ in range(3):
        images = torch.nn.functional.avg_pool3d(images, 5, stride=1, padding=2, count_include_pad=False)
    images = (images - images.amin()) / (images.amax() - images.amin())
    return images[:1], images[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="write the section of bench/README.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import unigradicon  # the peer (bench/install.sh)

    shape = [1, 1, args.size, args.size, args.size]
    theirs = unigradicon.make_network(shape, include_last_step=True)
    random_weights_(theirs.regis_net)
    theirs.eval()
    ours = load_icon_state_dict(unigradicon_network(input_shape=None), theirs.regis_net.state_dict()).eval()
    moving, fixed = smooth_pair(args.size)

    def run_theirs() -> torch.Tensor:
        with torch.no_grad():
            theirs(moving, fixed)
            return icon_map_to_ddf(theirs.phi_AB_vectorfield)

    def run_theirs_one_direction() -> torch.Tensor:
        with torch.no_grad():
            return icon_map_to_ddf(theirs.regis_net(moving, fixed)(theirs.identity_map))

    def run_ours() -> torch.Tensor:
        with torch.inference_mode():
            return ours(torch.cat([moving, fixed], dim=1))

    difference = float((run_theirs() - run_ours()).abs().max())  # also the warm-up of both
    run_theirs_one_direction()
    times: dict[str, list[float]] = {"theirs": [], "theirs_one": [], "ours": []}
    load = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for name, run in (("theirs", run_theirs), ("theirs_one", run_theirs_one_direction), ("ours", run_ours)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    load.append(os.getloadavg()[0])
    median = {name: statistics.median(t) for name, t in times.items()}
    ratio = median["ours"] / median["theirs"]
    ratio_one = median["ours"] / median["theirs_one"]
    ratios = sorted(o / t for o, t in zip(times["ours"], times["theirs"]))  # per alternation
    rows = "\n".join(
        f"| {label} | {median[name]:.2f} | {min(times[name]):.2f} - {max(times[name]):.2f} |"
        for name, label in (
            ("theirs", "unigradicon 1.0.6: what unigradicon-register runs (GradientICONSparse forward)"),
            ("theirs_one", "unigradicon 1.0.6: regis_net alone, one direction"),
            ("ours", "monai_ext: the network once, moving to fixed (monai-register without IO)"),
        )
    )
    text = f"""{SECTION}

`python bench/bench_unigradicon_forward.py --size {args.size} --repeats {args.repeats} --threads {args.threads} --write`
(in the environment of `bench/install.sh`): one {args.size}^3 pair, the uniGradICON architecture with the same
random weights in both; the peer's inference forward (both directions and the loss terms under `no_grad`, as
`unigradicon-register` without IO) against ours (one direction under `inference_mode`), alternated {args.repeats} times
after a warm-up. Machine: {describe_machine(torch.device("cpu"))}; commit {code_commit()}; 1-minute load average
{load[0]:.1f} at the start, {load[1]:.1f} at the end.

| forward | median (s) | range (s) |
|---|---|---|
{rows}

- ours / unigradicon: **{ratio:.2f}x** (median of the times; the per-run ratios span
  {ratios[0]:.2f} - {ratios[-1]:.2f}x); goal <= 0.5x.
- ours / their regis_net alone (the same arithmetic, one direction each): {ratio_one:.2f}x: the gain is in
  not computing the inverse direction and the loss terms at inference, not in faster convolutions.
- largest difference between the two displacement fields: {difference:.2e} voxels (goal <= 1e-4).
"""
    print(text)
    if args.write:
        write_readme_section(SECTION, text)


if __name__ == "__main__":
    main()
