"""``flamesync export-onnx``: the network as an ONNX graph, checked against torch."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("export-onnx", help="export the network to ONNX (checked with onnxruntime)",
                       description="Export the audio-to-face network to ONNX and check it against torch "
                                   "with onnxruntime. A JSON sidecar describes inputs, outputs and settings.")
    p.add_argument("-o", "--output", default="model.onnx", help="output .onnx file")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint (default: the shipped model; its export ships as "
                        "assets/model/flamesync_default.onnx, which inference prefers when onnxruntime is installed)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import FlamesyncError
    from ..net.infer import load_default_model, load_model
    from ..net.onnx_export import export_onnx

    model = load_model(args.checkpoint) if args.checkpoint else load_default_model(backend="torch")
    rep = export_onnx(model, args.output, opset=args.opset, check=not args.no_check)
    if "max_abs_diff" in rep:
        if rep["max_abs_diff"] >= 1e-4:
            raise FlamesyncError(f"ONNX output differs from torch by {rep['max_abs_diff']:.2e} (limit 1e-4)")
        print(f"wrote {rep['path']} (opset {rep['opset']}); onnxruntime vs torch max abs diff {rep['max_abs_diff']:.2e}")
    else:
        print(f"wrote {rep['path']} (opset {rep['opset']})")
    return 0
