"""``flamesync train``: train the audio-to-face network (resumes an interrupted run)."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("train", help="train the audio-to-face network on the synthetic corpus",
                       description="Train the audio-to-face network. Builds the corpus first if it is missing, "
                                   "saves safetensors checkpoints in the run directory and resumes from them.")
    p.add_argument("--config", default=None,
                   help="training config (YAML; default configs/default.yaml, or configs/finetune_real.yaml with --real)")
    p.add_argument("--out", default=None, help="run directory (default: config out_dir or <cache>/runs/<name>)")
    p.add_argument("--corpus", default=None, help="corpus directory (overrides the config)")
    p.add_argument("--steps", type=int, default=None, help="total training steps (overrides the config)")
    p.add_argument("--stop-after", type=int, default=None, help="stop (with a checkpoint) at this step")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    p.add_argument("--real", action="append", default=None, metavar="DIR",
                   help="a folder of your own transcribed recordings (any layout 'flamesync data real' reads) to "
                        "train on beside the config's corpora; repeatable. Without --init, this fine-tunes the "
                        "shipped network")
    p.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="start from this checkpoint's weights ('default': the shipped network)")
    p.add_argument("--recalibrate", default=None, nargs="+", metavar="CHECKPOINT",
                   help="train nothing: fit CHECKPOINT's closure decoder anew on the real corpora's held-out "
                        "speakers ('default': the shipped network) and write it to --out (a checkpoint stem). "
                        "Given several checkpoints fine-tuned from one start, their weights are averaged first "
                        "(a 'model soup')")
    p.add_argument("--fusion", action="store_true",
                   help="with --recalibrate: fit instead the fusion of the network's closures with the word "
                        "recogniser's /p b m/ (an experiment scored by 'flamesync eval --systems fused'; "
                        "docs/model.md); the network's own decoder is kept")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..net.train import load_config, train

    over: dict = {}
    if args.corpus:
        over["corpus"] = {"path": args.corpus}
    if args.steps is not None:
        over["train"] = {"steps": args.steps}
    if args.threads is not None:
        over["threads"] = args.threads
    if args.device:
        over["device"] = args.device
    if args.init:
        over["init"] = args.init
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    config = args.config or str(repo / "configs" / ("finetune_real.yaml" if args.real else "default.yaml"))
    cfg = load_config(config, over)
    if args.real:
        import warnings

        from ..net.train import corpus_path

        specs = []
        for spec in cfg["corpus"].get("real") or []:
            # The config's own real corpora join in where they are built or their recordings are here.
            if (corpus_path(spec) / "manifest.json").is_file() or Path(spec.get("source", "")).is_dir():
                specs.append(spec)
            else:
                warnings.warn(f"real corpus {spec.get('name') or spec.get('path')} is not built and its recordings "
                              f"({spec.get('source')}) are not here: training without it")
        for d in args.real:
            d = Path(d).resolve()
            specs.append({"name": f"real-{d.name}", "source": str(d)})
        cfg["corpus"]["real"] = specs
        if not args.init and not cfg.get("init"):
            cfg["init"] = "default"
    if args.fusion and not args.recalibrate:
        from ..errors import InputError

        raise InputError("--fusion goes with --recalibrate CHECKPOINT")
    if args.recalibrate:
        from ..errors import InputError
        from ..net.train import recalibrate

        if not args.out:
            raise InputError("--recalibrate needs --out (where to write the recalibrated checkpoint)")
        cfg["calibration"]["data"] = "real"
        if args.fusion and len(args.recalibrate) > 1:
            raise InputError("--fusion fits one network: give --recalibrate a single checkpoint")
        target = args.recalibrate if len(args.recalibrate) > 1 else args.recalibrate[0]
        print(json.dumps(recalibrate(target, cfg, out=args.out, fusion=args.fusion), indent=1))
        return 0
    summary = train(cfg, out_dir=args.out, stop_after=args.stop_after)
    print(json.dumps(summary, indent=1))
    return 0
