"""The audio-to-face network: model, training, inference, streaming and ONNX export.

Public API (import from the submodules; nothing heavy loads until asked for):

- :func:`flamesync.net.infer.load_default_model`, :func:`~flamesync.net.infer.load_model`,
  :func:`~flamesync.net.infer.predict`, :class:`~flamesync.net.infer.LoadedModel` (``.predict``);
- :class:`flamesync.net.stream.Streamer` (``push`` / ``finish``);
- :func:`flamesync.net.train.load_config`, :func:`~flamesync.net.train.train`;
- :func:`flamesync.net.onnx_export.export_onnx`.

See ``docs/model.md`` for the design.
"""
