"""``flamesync retarget``: give a head mesh ARKit-52 blendshapes, or fit a FLAME model's ARKit map."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = """\
A head mesh (OBJ, PLY, GLB, ...): the default head is registered onto it (facial landmarks, then
non-rigid ICP) and its 52 ARKit blendshapes and jaw are transferred. The output holds the mesh
with 52 morph targets (.glb), or arrays (.npz), or the mesh plus <name>.deltas.npz (.obj).
Landmarks are found automatically on heads with y up and the face along +z that have eyeballs
or eye holes; otherwise give them with --landmarks (JSON: {"nose_tip": 1234, "chin": [x, y, z]}).

A FLAME model (flame:/path/generic_model.pkl or .npz): fits the linear map from ARKit weights to
FLAME expression coefficients and jaw pose, caches it, and prints the per-shape fit error.
'flamesync animate ... --face flame:...' uses that map. --landmarks gives the landmarks on the
FLAME template when they are not found automatically; the map fitted with them is the one cached.

examples:
  flamesync retarget head.obj -o head_arkit.glb
  flamesync retarget scan.ply --landmarks scan_landmarks.json -o scan_arkit.npz
  flamesync retarget flame:~/flame/generic_model.pkl
  flamesync retarget flame:my_flame.npz --landmarks flame_landmarks.json
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "retarget", help="add ARKit-52 blendshapes to a head mesh, or fit a FLAME model's ARKit map",
        description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", help="head mesh file, or flame:/path/to/model.pkl")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="where to write the retargeted head (.glb, .npz or .obj); required for meshes")
    p.add_argument("--landmarks", type=Path, default=None,
                   help="JSON/CSV of landmark name -> vertex index or x,y,z on the target")
    p.add_argument("--refit", action="store_true", help="FLAME: fit again even if a cached map exists")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import InputError
    from ..retarget import format_report

    target = args.target
    if target.startswith("flame:"):
        from ..face import load_face
        from ..retarget import flame_map

        model = load_face(target)
        fm = flame_map(model, refit=args.refit, landmarks=args.landmarks)
        print(f"FLAME map {fm.key}: {model.n_expr} expression components + jaw pose from 52 ARKit weights")
        print(format_report(fm.report))
        print("per-shape fit error (FLAME reproduction vs transferred shape, over moved vertices):")
        print(fm.format())
        if args.output is not None:
            from ..retarget.head import retarget_head
            from ..retarget.io import save_face

            res = retarget_head(model.template, model.faces, landmarks=args.landmarks, name="flame")
            save_face(res.face, args.output)
            print(f"wrote {args.output}")
        return 0

    from ..retarget import retarget_head
    from ..retarget.io import load_mesh, save_face

    if args.output is None:
        raise InputError("give -o OUTPUT (.glb, .npz or .obj) for the retargeted head")
    verts, faces = load_mesh(target)
    res = retarget_head(verts, faces, landmarks=args.landmarks, name=Path(target).name)
    save_face(res.face, args.output)
    print(format_report(res.report))
    print(f"wrote {args.output} ({len(res.face.channels)} blendshapes on {len(verts)} vertices)")
    sys.stdout.flush()
    return 0
