"""What a benchmark ran on: the machine (CPU model or GPU, threads, versions) and the code commit;
and the device synchronisation that makes its timings honest."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
from pathlib import Path

import torch


def describe_machine(device: torch.device) -> str:
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    else:
        cpu = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        hardware = f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    return f"{hardware}; Python {platform.python_version()}, torch {torch.__version__}"


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so that a timer measures it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def code_commit(root: Path = Path(__file__).resolve().parents[1]) -> str:
    """The repository's commit (with `` + local changes`` when the library's files differ from it)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "monai_ext", "data_prep"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + local changes" if dirty else "")


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--threads`` and ``--device``, as every solver benchmark takes them."""
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (1: on cores shared with other jobs OpenMP's synchronisation makes more "
        "threads slower; raise it on an idle multi-core machine; 0: torch's default)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def parse_device_arguments(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, torch.device]:
    """Add ``--threads`` / ``--device`` to ``parser``, parse the command line, apply ``--threads``
    and return the arguments and the device."""
    add_device_arguments(parser)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    return args, torch.device(args.device)
