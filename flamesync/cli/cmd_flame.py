"""``flamesync flame``: inspect or convert a FLAME model file you supplied."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = """\
FLAME cannot be bundled: register at https://flame.is.tue.mpg.de, download FLAME 2020 or 2023,
and point flamesync at generic_model.pkl / flame2023.pkl. The .pkl is read with a restricted
unpickler that refuses anything but arrays (no code in the file can run). 'convert' writes an
.npz that loads faster and without pickle; use it anywhere a face model is asked for, as
'flame:flame.npz'. A FLAME_masks.pkl next to the model adds its vertex regions (lips, ...).

examples:
  flamesync flame info ~/flame/generic_model.pkl
  flamesync flame convert ~/flame/generic_model.pkl -o flame.npz
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "flame", help="inspect or convert your FLAME model file (.pkl -> .npz)",
        description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="flame_command", metavar="ACTION", title="actions")

    info = sub.add_parser("info", help="print a FLAME model's sizes, joints and components")
    info.add_argument("model", type=Path, help="FLAME .pkl or converted .npz")
    info.add_argument("--n-shape", type=int, default=None,
                      help="identity components at the start of shapedirs (default: FLAME's 300)")
    info.set_defaults(func=run_info)

    convert = sub.add_parser("convert", help="convert a FLAME .pkl into a pickle-free .npz")
    convert.add_argument("model", type=Path, help="FLAME .pkl (generic_model.pkl, flame2023.pkl)")
    convert.add_argument("-o", "--output", type=Path, required=True, help="the .npz to write")
    convert.add_argument("--n-shape", type=int, default=None,
                         help="identity components at the start of shapedirs (default: FLAME's 300)")
    convert.add_argument("--masks", type=Path, default=None,
                         help="FLAME_masks.pkl to store with the model (default: one next to the model)")
    convert.set_defaults(func=run_convert)

    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run_info(args) -> int:
    from ..face.flame import FLAME_JOINTS, load_flame

    model = load_flame(args.model, n_shape=args.n_shape)
    lo, hi = model.template.min(0), model.template.max(0)
    names = list(FLAME_JOINTS) if model.n_joints == len(FLAME_JOINTS) else [str(i) for i in range(model.n_joints)]
    parents = ["-" if p < 0 else names[p] for p in model.parents.tolist()]
    print(f"FLAME model: {model.source}")
    print(f"vertices: {model.n_vertices}  faces: {len(model.faces)}")
    print(f"identity components: {model.n_shape}  expression components: {model.n_expr}")
    print(f"pose correctives: {model.posedirs.shape[2]}")
    print("joints: " + ", ".join(f"{n} (parent {p})" for n, p in zip(names, parents)))
    print("extent (m): " + "  ".join(f"{a} {h - l:.3f}" for a, l, h in zip("xyz", lo, hi)))
    print("vertex masks: " + (", ".join(sorted(model.parts)) if model.parts else "none"))
    print(f"channels: {model.channels[0]} .. {model.channels[-1]} (expression coefficients)")
    return 0


def run_convert(args) -> int:
    from ..errors import InputError
    from ..face.flame import load_flame, save_flame_npz

    if args.output.suffix.lower() != ".npz":
        raise InputError(f"output must end in .npz, got {args.output}")
    model = load_flame(args.model, n_shape=args.n_shape, masks=args.masks)
    save_flame_npz(model, args.output)
    print(f"wrote {args.output} ({model.n_vertices} vertices, {model.n_shape} identity + "
          f"{model.n_expr} expression components)")
    return 0
