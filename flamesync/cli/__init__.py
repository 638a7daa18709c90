"""The ``flamesync`` command line: a thin layer over the Python API.

Each sub-command lives in its own module here with a ``register(subparsers)`` function that adds
its parser and sets ``func`` to a handler taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import signal
import sys

from ..errors import FlamesyncError

# What --face accepts (flamesync.face.load_face), for every command that has the option.
FACE_HELP = ("'default' (the default head), 'flame:/path/generic_model.pkl' (a FLAME model, or its "
             "converted .npz) or 'head:/path/head.npz' (a head made by 'flamesync retarget')")

# Order is the order shown in --help.
COMMAND_MODULES = (
    "demo",
    "animate",
    "batch",
    "say",
    "face",
    "flame",
    "export",
    "render",
    "train",
    "eval",
    "data",
    "onnx",
    "retarget",
)

DESCRIPTION = """\
flamesync turns speech audio into 3D facial animation: ARKit-52 blendshape weights plus jaw
rotation, on a default head (CC0 MakeHuman) or your own FLAME model, exported as glTF/GLB, FBX,
Alembic, USD, CSV or mesh sequences.

Start with:
  flamesync demo                       animate the bundled example and write out/
  flamesync animate speech.wav -o out.glb
  flamesync face info                  what the default head offers
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flamesync",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"flamesync {__version__}")
    parser.add_argument(
        "--progress", choices=("bar", "json", "none"), default=None,
        help="progress display: a bar (default), JSON lines on stderr for tools, or none",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f".cmd_{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.cmd_{name}":
                continue  # command not part of this build
            raise
        module.register(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so that every clean-up on the way runs."""


def _install_sigterm():
    """Turn SIGTERM (what ``Popen.terminate()``, ``kill`` and service managers send) into
    :class:`Terminated` in this process, so part files, scratch folders and Blender children are
    cleaned up as on Ctrl-C. Processes forked from here (worker pools) get the default action back:
    their parents stop them with SIGTERM and expect them to die."""
    main_pid = os.getpid()

    def on_sigterm(signum, frame):
        if os.getpid() != main_pid:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        # A second SIGTERM must not interrupt the clean-up the first one started.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    try:
        return signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread (main() called from a library's worker thread)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = _install_sigterm()
    _one_line_warnings()
    if args.progress:
        from .. import progress

        progress.set_mode(args.progress)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except FlamesyncError as exc:
        if args.debug:
            raise
        print(f"flamesync: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # Output piped into e.g. `head` that closed early: not an error worth reporting.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("flamesync: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("flamesync: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except OSError as exc:
        from ..fileio import WRITE_ERRNOS

        # Failures of the file system (a full disk, a read-only file) are explained, not reported
        # as bugs; other OSErrors fall through to "internal error".
        if args.debug or exc.errno not in WRITE_ERRNOS | {errno.ENOENT}:
            return _internal_error(args, exc)
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"flamesync: error: {os.strerror(exc.errno)}{where}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line, with a pointer to the full story
        return _internal_error(args, exc)
    finally:
        if previous is not None:
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGTERM, previous)


def _one_line_warnings() -> None:
    """Warnings read like errors: one line on stderr, without the source line Python adds."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"flamesync: warning: {' '.join(str(message).split())}", file=file or sys.stderr)

    warnings.showwarning = show


def _internal_error(args, exc: BaseException) -> int:
    if args.debug:
        raise exc
    text = " ".join(str(exc).split())  # one line, whatever the exception's message holds
    print(f"flamesync: internal error: {exc.__class__.__name__}: {text} (run with --debug for the traceback)",
          file=sys.stderr)
    return 1
