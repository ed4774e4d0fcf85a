"""``python -m monai_ext.cli <command> ...``: the command-line tools of ``monai_ext``.

Commands::

    register  --fixed F --moving M --weights Step_2_final.trch [--fixed_modality mri|ct]
              [--moving_modality mri|ct] [--io_iterations 50] [--io_mode none|vanilla|projected]
              [--transform_out T.h5|T.nii.gz] [--warped_moving_out W.nii.gz] [...]
    apply     --transform ddf.nii.gz --moving M [--out W.nii.gz] [--interpolation linear|nearest]
              [--fixed_label L --verbose true]

See ``python -m monai_ext.cli register --help`` and ``python -m monai_ext.cli apply --help``.
"""

from __future__ import annotations

__all__ = ["main"]


def main() -> None:
    import fire

    from monai_ext.cli.apply_transform import apply_command
    from monai_ext.cli.register import register_command
    from monai_ext.errors import report_input_errors

    report_input_errors()  # a bad input ends with one line naming it (register: --debug true for the traceback)
    fire.Fire({"register": register_command, "apply": apply_command}, name="python -m monai_ext.cli")


if __name__ == "__main__":
    main()
