"""Layer-by-layer streaming on onnxruntime: the exported graph cut at its layer boundaries.

An ONNX graph can only be run whole, so :class:`~flamesync.net.infer.NetRunner` recomputes the whole
receptive field (``past_frames``, 116 frames) for every push, however few frames are new: at 20 ms
pushes that is most of a live stream's CPU. This module cuts the shipped graph into the same pieces
:class:`~flamesync.net.infer.StreamRunner` steps in torch (front end, each block, output heads; with
``onnx.utils.extract_model``, no torch needed) and runs each piece only over its own context. The
pieces compute the same functions of the same inputs, so the frames equal the whole graph's (to
float rounding).

The cut points are tensor names of torch's ONNX exporter for this architecture; a graph that does
not have them (another exporter, another architecture) is simply streamed whole, as before.
"""

from __future__ import annotations

import numpy as np

from .config import ModelConfig
from .infer import RawOutput, StreamRunner, _sigmoid, _Stage

# Where the exported FlameSyncNet hands over between layer groups.
PAIRS = "/Reshape_2_output_0"  # feature pairs (1, T, 2 n_mels), input of the front end
FRONT_OUT = "/Transpose_4_output_0"  # front end output (1, T, dim)


def _block_out(k: int) -> str:
    return f"/blocks.{k}/Add_2_output_0"


_CUT_CACHE: dict = {}


def stage_graphs(path, n_layers: int) -> list | None:
    """The graph at ``path`` cut into front, ``n_layers`` blocks and heads (serialised ModelProtos),
    or None when it does not have the expected cut points. Cached per file (cutting takes ~1 s)."""
    import os

    st = os.stat(path)
    key = (os.fspath(path), st.st_mtime_ns, st.st_size, n_layers)
    if key not in _CUT_CACHE:
        _CUT_CACHE[key] = _cut(path, n_layers)
    return _CUT_CACHE[key]


def _cut(path, n_layers: int) -> list | None:
    try:
        import onnx
        import onnx.shape_inference
        import onnx.utils
    except ImportError:
        return None
    model = onnx.load(str(path))
    names = {o for n in model.graph.node for o in n.output}
    cuts = [PAIRS, FRONT_OUT] + [_block_out(k) for k in range(n_layers)]
    if not all(c in names for c in cuts):
        return None
    outputs = [o.name for o in model.graph.output]
    # The extractor needs the shapes of the cut tensors, which only shape inference records.
    extractor = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(model))
    try:
        graphs = [extractor.extract_model([a], [b]) for a, b in zip(cuts[:-1], cuts[1:])]
        graphs.append(extractor.extract_model([cuts[-1]], outputs))
    except Exception:  # an unexpected graph shape: stream it whole instead
        return None
    return [g.SerializeToString() for g in graphs]


# Graph rewrites whose float rounding depends on whether the time length is known: without them a
# piece fixed to one length gives the dynamic piece's numbers bit for bit.
_LENGTH_SENSITIVE_FUSIONS = ["MatMulAddFusion", "MatMulScaleFusion"]
MAX_FIXED_LENGTHS = 3  # per piece: steady pushes of one chunk size meet one or two window lengths
FIXED_AFTER = 3  # a window length met this often is a steady one


class _Builder:
    """Builds fixed-length sessions one at a time in a background thread. A build takes ~17 ms of
    CPU (more on a busy machine) and onnxruntime releases the GIL meanwhile, so the stream keeps
    real time; the piece uses its dynamic session until the fixed one is ready. Both give the same
    numbers, so when the switch happens does not change any frame."""

    def __init__(self):
        self._thread = None

    def request(self, build) -> bool:
        """Start ``build()`` unless another build is running; True if started."""
        import threading

        if self._thread is not None and self._thread.is_alive():
            return False
        self._thread = threading.Thread(target=build, name="flamesync-onnx-build", daemon=True)
        self._thread.start()
        return True

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()


class _Piece:
    """One piece of the graph, run on onnxruntime over windows of its input.

    A live stream runs each piece on windows of the same length push after push. With the length
    fixed, onnxruntime folds the graph's shape arithmetic (about 60% of its nodes) away, and a
    block runs about 17% faster; so a window length met :data:`FIXED_AFTER` times gets a session of
    its own, fixed to it, and other lengths go to the dynamic one.
    """

    def __init__(self, graph: bytes, make_session, builder: _Builder):
        self.graph, self.make_session, self.builder = graph, make_session, builder
        self.dynamic = make_session(graph)
        inp = self.dynamic.get_inputs()[0]
        self.name, self.dims = inp.name, inp.shape
        self.fixed: dict[int, object] = {}
        self.seen: dict[int, int] = {}
        self._asked: set[int] = set()

    def fixed_session(self, shape):
        """A session of this piece with its input fixed to ``shape``."""
        overrides = {d: int(v) for d, v in zip(self.dims, shape) if isinstance(d, str)}
        return self.make_session(self.graph, overrides=overrides, disabled=_LENGTH_SENSITIVE_FUSIONS)

    def _want_fixed(self, shape) -> None:
        n = shape[1]

        def build():
            self.fixed[n] = self.fixed_session(shape)

        if n not in self._asked and len(self._asked) < MAX_FIXED_LENGTHS and self.builder.request(build):
            self._asked.add(n)

    def __call__(self, x):
        x = np.ascontiguousarray(x)
        n = x.shape[1]
        session = self.fixed.get(n)
        if session is None:
            session = self.dynamic
            self.seen[n] = self.seen.get(n, 0) + 1
            if self.seen[n] >= FIXED_AFTER:
                self._want_fixed(x.shape)
        outs = session.run(None, {self.name: x})
        return tuple(outs) if len(outs) > 1 else outs[0]


class OnnxStreamRunner(StreamRunner):
    """:class:`StreamRunner` on onnxruntime: each layer group recomputes only its own context.

    Build it with :meth:`for_model`, which returns None when the graph cannot be cut.
    """

    def __init__(self, model, graphs):
        import onnxruntime as ort

        from ..audio.features import LogMelStream
        from .infer import FPS

        self.model = model
        cfg = model.cfg
        self.feats = LogMelStream(config=model.features, out_fps=FPS)
        self._prev_feat = np.zeros(cfg.n_mels, np.float32)
        self._pending = None
        self._n_feat = 0
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        threads = model.net.session.get_session_options().intra_op_num_threads
        if threads:
            opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")

        def session(g, *, overrides=None, disabled=None):
            o = opts
            if overrides:
                o = ort.SessionOptions()
                o.log_severity_level = opts.log_severity_level
                o.intra_op_num_threads = opts.intra_op_num_threads
                o.add_session_config_entry("session.intra_op.allow_spinning", "0")
                for name, value in overrides.items():
                    o.add_free_dimension_override_by_name(name, value)
            return ort.InferenceSession(g, sess_options=o, providers=["CPUExecutionProvider"],
                                        disabled_optimizers=disabled)

        self._builder = _Builder()
        pasts = [ModelConfig.FRONT_PAST] + [cfg.attn_past + cfg.conv_kernel - 1] * cfg.layers + [0]
        futures = [ModelConfig.FRONT_FUTURE] + list(cfg.attn_future) + [0]
        self.pieces = [_Piece(g, session, self._builder) for g in graphs]
        self.stages = [_Stage(piece, p, f, concat=np.concatenate) for piece, p, f in zip(self.pieces, pasts, futures)]

    @classmethod
    def for_model(cls, model):
        """The runner for an ONNX-backed ``model``, or None (not ONNX, no ``onnx`` package, or a
        graph without the expected cut points)."""
        path = getattr(model.net, "path", None)
        if model.backend != "onnx" or path is None:
            return None
        graphs = stage_graphs(path, model.cfg.layers)
        return None if graphs is None else cls(model, graphs)

    def _advance(self, pairs: np.ndarray, final: bool) -> RawOutput:
        x = self._run_stages(pairs if len(pairs) else None, final)
        if x is None:
            return self._empty()
        w, c, v = x
        v = v - v.max(axis=-1, keepdims=True)
        e = np.exp(v)
        return RawOutput(np.asarray(w, np.float32), _sigmoid(c), (e / e.sum(axis=-1, keepdims=True)).astype(np.float32))
