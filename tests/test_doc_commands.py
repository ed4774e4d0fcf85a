"""Every ``python -m monai.bundle`` / ``monai_ext.zoo`` / ``monai_ext.cli`` command written in the README
and the model cards names config files that exist and options that the stacked configs or the
command's function accept, so a command copied from the docs is not refused for a stale name."""

from __future__ import annotations

import inspect
import re
import shlex
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from helpers import BUNDLES, REPO

DOCS = [REPO / "README.md", *sorted(BUNDLES.glob("*/docs/README.md"))]
# arguments of `monai.bundle run` / `verify_net_in_out` / `ckpt_export` that are not config overrides
RUN_ARGUMENTS = {
    "config_file",
    "bundle_root",
    "logging_file",
    "meta_file",
    "run_id",
    "init_id",
    "final_id",
    "args_file",
}


def _commands(doc: Path) -> list[str]:
    """Shell commands of the ```bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def _options(tokens: list[str]) -> dict[str, str]:
    options, i = {}, 0
    while i < len(tokens):
        if tokens[i].startswith("--"):
            value = tokens[i + 1] if i + 1 < len(tokens) and not tokens[i + 1].startswith("--") else "true"
            options[tokens[i][2:]] = value
            i += 2 if value != "true" or (i + 1 < len(tokens) and tokens[i + 1] == "true") else 1
        else:
            i += 1
    return options


def _config_files(value: str, base: Path) -> list[Path]:
    names = re.findall(r"[^\[\]',\s]+\.json", value)
    return [(base / name) if not Path(name).is_absolute() else Path(name) for name in names]


CASES = [
    (doc, command) for doc in DOCS for command in _commands(doc) if re.search(r"-m (monai\.bundle|monai_ext)", command)
]


@pytest.mark.parametrize("doc, command", CASES, ids=[f"{d.parent.parent.name}:{i}" for i, (d, _) in enumerate(CASES)])
def test_documented_command_names_existing_configs_and_options(doc, command):
    base = REPO if doc == REPO / "README.md" else doc.parent.parent
    tokens = shlex.split(command.split(" # ")[0].split("   #")[0], comments=True)
    module = tokens[tokens.index("-m") + 1]
    subcommand = tokens[tokens.index("-m") + 2]
    options = _options(tokens[tokens.index("-m") + 3 :])
    if module == "monai.bundle":
        if subcommand not in ("run", "verify_net_in_out", "ckpt_export"):
            return  # download / download_large_files: MONAI's own arguments
        configs = _config_files(options.get("config_file", ""), base)
        assert configs, f"{doc}: {command!r} names no config file"
        for path in configs:
            assert path.is_file(), f"{doc}: {command!r} names {path}, which does not exist"
        if subcommand != "run":
            return
        parser = ConfigParser()
        parser.read_config([str(p) for p in configs])
        for key in set(options) - RUN_ARGUMENTS:
            assert key in parser, f"{doc}: {command!r} sets --{key}, which no config of {configs} has"
    else:
        from monai_ext.cli import __main__ as cli_main  # noqa: F401
        from monai_ext.cli.apply_transform import apply_command
        from monai_ext.cli.register import register_command
        from monai_ext.zoo import __main__ as zoo

        functions = {
            ("monai_ext.zoo", "package"): zoo.package,
            ("monai_ext.zoo", "list"): zoo.list_bundles,
            ("monai_ext.zoo", "download"): zoo.download,
            ("monai_ext.zoo", "verify"): zoo.verify,
            ("monai_ext.cli", "register"): register_command,
            ("monai_ext.cli", "apply"): apply_command,
        }
        function = functions[(module, subcommand)]
        accepted = set(inspect.signature(function).parameters)
        assert set(options) <= accepted, (
            f"{doc}: {command!r} sets {sorted(set(options) - accepted)}, not options of {subcommand}"
        )


RUNNABLE = [
    (doc, command)
    for doc, command in CASES
    if "verify_net_in_out" in command and doc.parent.parent.name in ("gsmorph_cardiac", "dio_brain")
]


@pytest.mark.slow  # MONAI's network check, run as a user runs it
@pytest.mark.parametrize("doc, command", RUNNABLE, ids=[d.parent.parent.name for d, _ in RUNNABLE])
def test_documented_network_checks_run_as_written(doc, command):
    """The model cards' ``verify_net_in_out`` commands need no data or weights: run them as written,
    from the bundle folder (the cards' working directory), on a fresh checkout."""
    import os
    import subprocess
    import sys

    tokens = shlex.split(command)
    tokens[tokens.index("python")] = sys.executable
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(tokens, cwd=doc.parent.parent, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data shape of network is verified with no error" in result.stdout + result.stderr
