"""``flamesync face``: inspect the default head and export posed meshes."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..errors import InputError

EXPORT_SUFFIXES = (".obj", ".ply")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "face",
        help="inspect the default head (channels, parts) and export posed meshes",
        description="Inspect the default MakeHuman head and export it in a pose.",
    )
    sub = parser.add_subparsers(dest="face_command", metavar="ACTION", title="actions")

    info = sub.add_parser(
        "info", help="vertex/face counts, parts, units and axes, channel names",
        description="Print what the default head offers: mesh size, named parts, frame and channels.",
    )
    _add_identity(info)
    info.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    info.set_defaults(func=run_info)

    export = sub.add_parser(
        "export", help="write the head in a pose as OBJ or PLY",
        description=(
            "Write the default head posed by ARKit blendshape weights (and optionally a jaw or head "
            "rotation) as a mesh.\n\nexample: flamesync face export --pose jawOpen=1,mouthFunnel=0.5 -o open.obj"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("--pose", default="", metavar="NAME=VALUE,...",
                        help="blendshape weights by ARKit name, e.g. jawOpen=1,mouthFunnel=0.5 (others are 0)")
    export.add_argument("--jaw", default=None, metavar="RX,RY,RZ",
                        help="jaw rotation, axis-angle in radians (positive RX opens the mouth)")
    export.add_argument("--head", default=None, metavar="RX,RY,RZ",
                        help="head rotation about the neck, axis-angle in radians")
    _add_identity(export)
    export.add_argument("-o", "--output", required=True, type=Path, help="output file: .obj or .ply")
    export.set_defaults(func=run_export)

    parser.set_defaults(func=lambda args: (parser.print_help(), 0)[1])


def _add_identity(parser) -> None:
    parser.add_argument("--identity", default="", metavar="NAME=VALUE,...",
                        help="MakeHuman shape targets, e.g. head-age=0.5,nose-scale-horiz=-0.3")


def _load(args):
    from ..channels import parse_assignments
    from ..face.makehuman import load_default_head

    return load_default_head(identity=parse_assignments(args.identity) or None)


def parse_vector3(text: str, *, what: str) -> list[float]:
    """Parse ``"0.1,0,0"`` into three finite floats."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"{what} must be three numbers RX,RY,RZ, got {text!r}") from None
    if len(values) != 3:
        raise InputError(f"{what} must be three numbers RX,RY,RZ, got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{what} contains NaN or infinity: {text!r}")
    return values


def run_info(args) -> int:
    from ..channels import JAW_OPEN_RAD
    from ..face.makehuman import cache_path

    model = _load(args)
    span = model.template.max(0) - model.template.min(0)
    info = {
        "name": model.name,
        "vertices": model.n_vertices,
        "faces": int(model.faces.shape[0]),
        "parts": {k: int(len(v)) for k, v in model.parts.items()},
        "units": model.meta.get("units", "metres"),
        "axes": model.meta.get("axes"),
        "origin": model.meta.get("origin"),
        "size_m": [round(float(x), 4) for x in span],
        "jaw_pivot_m": [round(float(x), 4) for x in model.jaw_pivot],
        "jaw_open_rad": JAW_OPEN_RAD,
        "identity": model.meta.get("identity", {}),
        "source": model.meta.get("source"),
        "cache": str(cache_path()),
        "channels": list(model.channels),
    }
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    out = sys.stdout
    out.write(f"{info['name']}\n")
    out.write(f"  vertices: {info['vertices']}   triangles: {info['faces']}\n")
    out.write(f"  units: {info['units']}; axes: {info['axes']}; origin: {info['origin']}\n")
    out.write("  size (x, y, z): " + " x ".join(f"{v:.3f}" for v in info["size_m"]) + " m\n")
    out.write("  jaw pivot: " + ", ".join(f"{v:.4f}" for v in info["jaw_pivot_m"])
              + f" m; jawOpen=1 implies jaw.rx = {JAW_OPEN_RAD} rad\n")
    if info["identity"]:
        out.write("  identity: " + ", ".join(f"{k}={v:g}" for k, v in info["identity"].items()) + "\n")
    out.write("  parts:\n")
    for name, n in info["parts"].items():
        out.write(f"    {name:<14} {n:>5} vertices\n")
    out.write(f"  channels ({len(info['channels'])}, ARKit names, weights 0..1):\n")
    names = info["channels"]
    for i in range(0, len(names), 4):
        out.write("    " + "".join(f"{n:<22}" for n in names[i:i + 4]).rstrip() + "\n")
    out.write(f"  source: {info['source']}\n")
    return 0


def run_export(args) -> int:
    from ..channels import parse_assignments
    from ..export.meshseq import write_obj, write_ply
    from ..fileio import atomic_path

    suffix = args.output.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise InputError(f"cannot export {args.output}: use a .obj or .ply file name")
    pose = parse_assignments(args.pose)
    jaw = None if args.jaw is None else parse_vector3(args.jaw, what="--jaw")
    head = None if args.head is None else parse_vector3(args.head, what="--head")
    model = _load(args)
    weights = model.weights_from_dict(pose)  # unknown names raise here, before any file is made
    verts = model.vertices(weights, jaw=jaw, head=head)
    writer = write_obj if suffix == ".obj" else write_ply
    with atomic_path(args.output) as tmp:
        writer(tmp, verts, model.faces)
    print(f"wrote {args.output} ({model.n_vertices} vertices, {len(model.faces)} triangles)")
    return 0
