"""Build the installable extension zip: ``python blender_addon/build.py [-o DIR]``.

Writes ``flamesync-<version>.zip`` (blender_manifest.toml and the add-on's modules at the top of
the archive, as ``blender --command extension build`` would) into ``dist/`` by default. Needs only
Python; ``blender --command extension validate`` accepts the result.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = ("blender_manifest.toml", "__init__.py", "animfile.py", "inference.py", "keying.py", "namemap.py")


def version() -> str:
    m = re.search(r'^version\s*=\s*"([^"]+)"', (HERE / "blender_manifest.toml").read_text(), re.M)
    if not m:
        raise SystemExit("blender_manifest.toml has no version")
    return m.group(1)


def build(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"flamesync-{version()}.zip"
    tmp = path.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in FILES:
            zf.write(HERE / name, name)
    tmp.replace(path)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out-dir", default=str(HERE.parent / "dist"))
    args = ap.parse_args(argv)
    print(build(Path(args.out_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
