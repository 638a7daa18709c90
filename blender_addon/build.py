"""Build the installable extension zips: ``python blender_addon/build.py [--platform P ...] [-o DIR]``.

With ``--platform`` (``linux-x64``, ``windows-x64``, ``macos-arm64``, ``macos-x64``, ``current``
or ``all``; repeatable) each zip is self-contained for that platform: besides the add-on it holds

- ``flamesync_lib/``: the modules of this checkout's ``flamesync`` package that audio-to-animation
  needs (features, network runner, closure decoding, animation type), copied at build time so the
  add-on runs the very code ``flamesync animate`` runs, plus the mel filter bank computed here
  (Blender has no librosa);
- ``model/``: the shipped ONNX network and its description;
- ``wheels/``: onnxruntime, soundfile (+ cffi, pycparser, typing_extensions) and soxr for
  Blender's Python 3.11, fetched with ``pip download`` (cached under ``--wheel-cache``), declared
  in the zip's manifest so Blender installs them with the extension.

Without ``--platform`` it writes the small platform-independent zip that animates through an
installed ``flamesync`` command only. Needs Python with pip; the flamesync package of this checkout
(with librosa) computes the mel bank. Prints each zip's path (stdout) and size (stderr).
"""

from __future__ import annotations

import argparse
import ast
import json
import platform
import re
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FILES = ("blender_manifest.toml", "__init__.py", "animfile.py", "engine.py", "inference.py", "keying.py",
         "namemap.py")
VENDOR = "flamesync_lib"
# What flamesync.pipeline.animate(backend="model") imports from the package (build_vendor checks the
# top-level imports are closed; the Blender test runs it).
VENDORED_MODULES = (
    "__init__.py", "animation.py", "cache.py", "channels.py", "errors.py", "fileio.py", "numeric.py",
    "pipeline.py", "audio/__init__.py", "audio/features.py", "audio/io.py", "audio/samplefile.py",
    # M4A/AAC through an ffmpeg on PATH (the add-on bundles none).
    "audio/ffmpeg.py", "net/__init__.py",
    "net/amplitude.py", "net/checkpoint.py", "net/closure.py", "net/config.py", "net/infer.py",
    "net/onnx_runtime.py", "net/schema.py", "net/targets.py",
    # pipeline.animate adds the alive-face layers (blinks, gaze, brows, head, emotion).
    "expressive/__init__.py", "expressive/emotion.py", "expressive/engine.py", "expressive/layers.py",
    "expressive/prosody.py", "expressive/rng.py",
)
MODEL_FILES = ("flamesync_default.onnx", "flamesync_default.onnx.json")
PYTHON = "3.11"  # Blender 4.2 to 5.0
# Pinned so that every build of a version bundles the same binaries.
WHEELS = ("onnxruntime==1.32.0", "soxr==1.1.0", "soundfile==0.14.0", "cffi==2.1.1", "pycparser==3.12",
          "typing_extensions==4.16.0")
WHEEL_OVERRIDES = {"macos-x64": {"onnxruntime": "onnxruntime==1.23.2"}}  # the last Intel-Mac onnxruntime
# pip --platform tags per Blender platform, newest first (pip accepts several).
PLATFORM_TAGS = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                  "manylinux2014_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_14_0_arm64", "macosx_13_0_arm64", "macosx_12_0_arm64", "macosx_11_0_arm64"],
    "macos-x64": ["macosx_13_0_x86_64", "macosx_11_0_x86_64", "macosx_10_15_x86_64", "macosx_10_14_x86_64",
                  "macosx_10_9_x86_64"],
}
PLATFORMS = tuple(PLATFORM_TAGS)


class BuildError(RuntimeError):
    pass


def version() -> str:
    m = re.search(r'^version\s*=\s*"([^"]+)"', (HERE / "blender_manifest.toml").read_text(), re.M)
    if not m:
        raise BuildError("blender_manifest.toml has no version")
    return m.group(1)


def current_platform() -> str:
    system = {"darwin": "macos"}.get(platform.system().lower(), platform.system().lower())
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(platform.machine().lower(),
                                                                        platform.machine().lower())
    name = f"{system}-{machine}"
    if name not in PLATFORMS:
        raise BuildError(f"no wheels known for this platform ({name}); choose one of {', '.join(PLATFORMS)}")
    return name


def requirements(plat: str) -> list[str]:
    over = WHEEL_OVERRIDES.get(plat, {})
    return [over.get(req.split("==")[0], req) for req in WHEELS]


def _wheel_key(filename: str) -> tuple[str, str]:
    # {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl, names normalised as pip does
    parts = filename[:-4].split("-")
    return re.sub(r"[-_.]+", "_", parts[0]).lower(), parts[1]


def fetch_wheels(plat: str, cache: Path) -> list[Path]:
    """The pinned wheels for ``plat`` in ``cache/plat``, downloaded by pip when missing."""
    folder = cache / plat
    folder.mkdir(parents=True, exist_ok=True)
    reqs = requirements(plat)
    wanted = {(re.sub(r"[-_.]+", "_", r.split("==")[0]).lower(), r.split("==")[1]): r for r in reqs}

    def have() -> dict:
        return {_wheel_key(p.name): p for p in folder.glob("*.whl") if _wheel_key(p.name) in wanted}

    missing = [r for k, r in wanted.items() if k not in have()]
    if missing:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
               "--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp", "-d", str(folder)]
        for tag in PLATFORM_TAGS[plat] + ["any"]:
            cmd += ["--platform", tag]
        proc = subprocess.run(cmd + missing, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
            raise BuildError(f"pip download of {' '.join(missing)} for {plat} failed: {last}")
    found = have()
    if len(found) != len(wanted):
        raise BuildError(f"pip did not fetch {', '.join(r for k, r in wanted.items() if k not in found)} for {plat}")
    return sorted(found.values())


def vendor_files() -> dict[str, bytes]:
    """``flamesync_lib/...`` archive names -> contents: the package modules, model and mel bank."""
    pkg = REPO / "flamesync"
    out = {}
    for rel in VENDORED_MODULES:
        src = (pkg / rel).read_text("utf-8")
        _check_imports(rel, src)
        out[f"{VENDOR}/{rel}"] = src.encode("utf-8")
    model_dir = REPO / "assets" / "model"
    for name in MODEL_FILES:
        if not (model_dir / name).is_file():
            raise BuildError(f"{model_dir / name} is missing; run 'flamesync export-onnx'")
        out[f"model/{name}"] = (model_dir / name).read_bytes()
    out.update(_mel_bank(json.loads((model_dir / MODEL_FILES[1]).read_text("utf-8")).get("features", {})))
    return out


def _check_imports(rel: str, src: str) -> None:
    # Module-level relative imports must stay inside the vendored set, or the add-on fails to import.
    package = rel.split("/")[:-1]
    for node in ast.parse(src).body:
        if not (isinstance(node, ast.ImportFrom) and node.level):
            continue
        base = package[: len(package) - (node.level - 1)]
        targets = [base + node.module.split(".")] if node.module else [base + [a.name] for a in node.names]
        for t in targets:
            name = "/".join(t)
            if f"{name}.py" not in VENDORED_MODULES and f"{name}/__init__.py" not in VENDORED_MODULES:
                raise BuildError(f"flamesync/{rel} imports {name}, which the add-on does not vendor; "
                                 "add it to VENDORED_MODULES in blender_addon/build.py")


def _mel_bank(features: dict) -> dict[str, bytes]:
    import io

    sys.path.insert(0, str(REPO))
    try:
        import numpy as np

        from flamesync.audio.features import FeatureConfig, mel_basis, mel_basis_filename
    except ImportError as exc:
        raise BuildError(f"building the mel bank needs this checkout's flamesync importable ({exc})") from None
    finally:
        sys.path.remove(str(REPO))
    cfg = FeatureConfig.from_dict(features)
    buf = io.BytesIO()
    np.save(buf, np.asarray(mel_basis(cfg), np.float64), allow_pickle=False)
    return {f"{VENDOR}/audio/{mel_basis_filename(cfg)}": buf.getvalue()}


def manifest(plat: str | None, wheels: list[Path]) -> str:
    text = (HERE / "blender_manifest.toml").read_text("utf-8")
    if plat is None:
        return text
    lines = [f'platforms = ["{plat}"]', "wheels = ["] + [f'  "./wheels/{w.name}",' for w in wheels] + ["]", ""]
    # Top-level keys go before the first table.
    i = text.index("\n[") + 1
    return text[:i] + "\n".join(lines) + "\n" + text[i:]


def build(out_dir: Path, *, plat: str | None = None, wheel_cache: Path | None = None) -> Path:
    """Write the zip for ``plat`` (None: the small CLI-only zip) into ``out_dir``; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = f"-{plat.replace('-', '_')}" if plat else ""
    path = out_dir / f"flamesync-{version()}{suffix}.zip"
    wheels = fetch_wheels(plat, wheel_cache or REPO / "dist" / "wheels") if plat else []
    extra = vendor_files() if plat else {}
    tmp = path.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("blender_manifest.toml", manifest(plat, wheels))
        for name in FILES[1:]:
            zf.write(HERE / name, name)
        for name, data in sorted(extra.items()):
            zf.writestr(name, data)
        for w in wheels:
            # Wheels are zips already: storing them again compressed saves nothing.
            zf.write(w, f"wheels/{w.name}", compress_type=zipfile.ZIP_STORED)
    tmp.replace(path)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out-dir", default=str(REPO / "dist"))
    ap.add_argument("--platform", action="append", choices=PLATFORMS + ("current", "all"),
                    help="build the self-contained zip for this platform (repeatable)")
    ap.add_argument("--wheel-cache", default=str(REPO / "dist" / "wheels"),
                    help="where downloaded wheels are kept between builds (default: dist/wheels)")
    args = ap.parse_args(argv)
    plats: list = []
    try:
        for p in args.platform or [None]:
            new = PLATFORMS if p == "all" else [current_platform()] if p == "current" else [p]
            plats += [q for q in new if q not in plats]
        for p in plats:
            path = build(Path(args.out_dir), plat=p, wheel_cache=Path(args.wheel_cache))
            print(path)  # stdout: the paths only, for scripts
            print(f"{path.name}: {path.stat().st_size / 1e6:.2f} MB", file=sys.stderr)
    except BuildError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
