"""Run ``costmodel ARGV`` in-process for a test: ``(exit status, stdout, stderr)``."""

from costmodel.cli import main


def run_cli(capsys, *argv):
    """``(exit status, stdout, stderr)`` of ``costmodel ARGV``; argparse's own errors (types, mutually
    exclusive flags) exit through ``SystemExit`` and are returned as their status."""
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err
