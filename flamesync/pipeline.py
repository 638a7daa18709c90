"""The whole pipeline as one library call: audio (+ optional transcript) to an Animation."""

from __future__ import annotations

import contextlib
import math
import warnings
from pathlib import Path

import numpy as np

from .animation import Animation, check_fps
from .errors import InputError

BACKENDS = ("auto", "model", "text", "phones", "words")
ON_MISMATCH = ("fallback", "error", "ignore")


class TranscriptMismatchWarning(UserWarning):
    """The transcript did not fit the audio, so the audio was animated without it."""


def animate(
    audio: "str | Path | np.ndarray",
    *,
    text: str | None = None,
    sample_rate: int | None = None,
    fps: float = 30.0,
    backend: str = "auto",
    language: str = "en",
    face=None,
    model=None,
    progress=None,
    landmarks=None,
    on_mismatch: str = "fallback",
    blinks: float = 1.0,
    gaze: float = 1.0,
    brows: float = 1.0,
    head: float = 1.0,
    emotion: str = "neutral",
    intensity: float = 0.6,
    emotion_keys=None,
    mouth_only: bool = False,
    timing_offset: float = 0.0,
    seed: int = 0,
    layers=None,
    block_seconds: float = 60.0,
) -> Animation:
    """Animate speech.

    Parameters
    ----------
    audio : str, Path or np.ndarray
        An audio file (any rate, mono or stereo, WAV/FLAC/OGG/MP3...) or samples ``(N,)`` at
        ``sample_rate``.
    text : str or None
        The transcript. With a transcript the default backend aligns it to the audio and animates
        the phones with the coarticulation teacher; without one it runs the audio-to-face network.
    sample_rate : int or None
        Rate of an array ``audio``.
    fps : float
        Frame rate of the result.
    backend : {"auto", "model", "text", "phones", "words"}
        ``"model"``: the network (audio only). ``"text"``: forced alignment of ``text`` plus the
        teacher. ``"phones"``: phone recognition without a transcript plus the teacher (a baseline).
        ``"words"``: word recognition (pocketsphinx with its English language model, as phoneme
        tools such as Rhubarb Lip Sync use), its words force-aligned and animated by the teacher;
        about real time, so for short clips.
        ``"auto"``: ``"text"`` when ``text`` is given, else ``"model"``.
    language : str
        Language of the speech (alignment and phone recognition).
    face : FaceModel, str or None
        Target face. ``None`` or the default head: ARKit channels. A FLAME model
        (``"flame:/path/generic_model.pkl"``): the ARKit animation is retargeted to FLAME
        expression coefficients and jaw pose (see :mod:`flamesync.retarget`).
    model : LoadedModel or None
        A loaded network (:func:`flamesync.net.infer.load_model`); the shipped default when None.
    progress : callable or None
        Network backend: ``progress(done, total)`` in samples after each chunk of audio; an
        exception it raises stops the work.
    landmarks : dict, path or None
        For a FLAME ``face``: landmarks on its template (JSON/CSV file or ``name -> (3,)``), used
        when fitting the ARKit-to-FLAME map if they are not found automatically.
    on_mismatch : {"fallback", "error", "ignore"}
        Text backend, when the transcript does not fit the audio (its alignment scores below the
        thresholds of :mod:`flamesync.phonetics.confidence`): ``"fallback"`` warns
        (:class:`TranscriptMismatchWarning`) and animates the audio alone with the network
        (``meta["transcript_rejected"]`` says why); ``"error"`` raises
        :class:`~flamesync.phonetics.textanimate.TranscriptMismatchError`; ``"ignore"`` skips the
        check and animates the transcript as aligned.
    blinks, gaze, brows, head : float
        Strength of each expressive layer (:mod:`flamesync.expressive`): 0 (or False) switches
        it off, 1 (the default) is the designed amount, up to 2 exaggerates.
    emotion : str
        ``neutral``, ``happy``, ``sad``, ``angry``, ``surprised``, ``fearful`` or ``disgusted``.
    intensity : float
        0..1, how strongly ``emotion`` shows.
    emotion_keys : path, sequence of (time, emotion, intensity) or None
        A time-varying emotion (TSV/CSV/JSON file or rows); replaces ``emotion``/``intensity``.
    mouth_only : bool
        Speech channels only: no layers and no emotion (for layering over mocap or hand keys).
    timing_offset : float
        Seconds to move the whole animation later against the audio (negative: earlier).
    seed : int
        Seed of every random choice of the layers; the same seed and audio give the same motion.
    layers : flamesync.expressive.Layers or None
        All layer settings at once (overrides the individual arguments above except
        ``mouth_only`` and ``timing_offset``).
    block_seconds : float
        Audio file, network backend: seconds of audio read, run through the network and analysed
        for the layers at a time. Memory grows with it; the numbers may differ with it in the
        last float bits (the network's windows), never between :func:`animate` and
        :func:`animate_to_npz` with the same value. Audio file, text backend: seconds analysed
        for the layers (and run through the network, for a rejected transcript) at a time.

    Returns
    -------
    Animation
        ARKit-named expression channels plus the implied jaw rotation (or FLAME parameters for a
        FLAME face), at ``fps``, with ``audio_path`` set when ``audio`` is a file.
    """
    backend, layers, timing_offset = _settings(
        text=text, fps=fps, backend=backend, on_mismatch=on_mismatch, blinks=blinks, gaze=gaze, brows=brows,
        head=head, emotion=emotion, intensity=intensity, emotion_keys=emotion_keys, seed=seed, layers=layers,
        timing_offset=timing_offset)
    from .audio.io import SILENT_PEAK, AudioBlocks
    from .expressive import shift_animation

    audio_path = None if isinstance(audio, np.ndarray) else str(Path(audio).resolve())
    if backend == "model" and audio_path is not None:
        # Audio alone from a file: one pass over the file in blocks, feeding the network and the
        # layers together, so the audio is never held whole.
        from .expressive import BlockLayers
        from .net.infer import load_default_model

        blocks = AudioBlocks(audio, block_samples=_block_samples(block_seconds))
        # A format whose header does not give its length (decoded by ffmpeg) is counted first, so
        # that progress has a total.
        blocks.count()
        net = model if model is not None else load_default_model()
        layer_pass = BlockLayers(fps, layers if not mouth_only else layers.off(), block_seconds=block_seconds)
        anim = net.predict_blocks(blocks, chunk_seconds=block_seconds, total=blocks.n_samples, progress=progress,
                                  on_block=layer_pass.feed)
        # Silence (all zeros, or far below any speech level) is valid input: it animates as a
        # face at rest (see below).
        silent = blocks.peak < SILENT_PEAK
        if silent:
            anim = anim.replace(values=np.zeros_like(anim.values))
        anim = anim.resample(fps)
        if not mouth_only and not silent:
            anim = layer_pass.finish(anim)
        rejected = None
    else:
        anim, backend, silent, rejected = _animate_wave(
            audio, text=text, sample_rate=sample_rate, fps=fps, backend=backend, language=language, model=model,
            progress=progress, on_mismatch=on_mismatch, layers=layers, mouth_only=mouth_only,
            block_seconds=block_seconds)
    anim = shift_animation(anim, timing_offset)
    if face is not None:
        from .face import load_face
        from .retarget import animation_for_face

        anim = animation_for_face(anim, load_face(face), landmarks=landmarks)
    meta = dict(anim.meta)
    meta.setdefault("backend", backend)
    if rejected is not None:
        meta["transcript_rejected"] = rejected
    if silent:
        meta["silent"] = True
    return anim.replace(audio_path=audio_path, meta=meta)


def _settings(*, text, fps, backend, on_mismatch, blinks, gaze, brows, head, emotion, intensity, emotion_keys,
              seed, layers, timing_offset):
    """Check :func:`animate`'s options; return (backend to use, Layers, timing offset in seconds)."""
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if on_mismatch not in ON_MISMATCH:
        raise InputError(f"unknown on_mismatch {on_mismatch!r}; choose one of {', '.join(ON_MISMATCH)}")
    if backend == "auto":
        backend = "text" if text is not None else "model"
    if backend == "text" and (text is None or not text.strip()):
        raise InputError("the text backend needs the transcript (text=...)")
    check_fps(fps)
    from .expressive import Layers, load_keys
    from .expressive.emotion import keys_from_rows

    if layers is None:
        keys = None
        if emotion_keys is not None:
            keys = (load_keys(emotion_keys) if isinstance(emotion_keys, (str, Path))
                    else keys_from_rows(list(emotion_keys)))
        layers = Layers(blinks=blinks, gaze=gaze, brows=brows, head=head, emotion=emotion,
                        intensity=intensity, keys=keys, seed=seed)
    elif not isinstance(layers, Layers):
        raise InputError(f"layers must be a flamesync.expressive.Layers, got {type(layers).__name__}")
    try:
        timing_offset = float(timing_offset)
    except (TypeError, ValueError):
        raise InputError(f"timing offset must be a number of seconds, got {timing_offset!r}") from None
    return backend, layers, timing_offset


def _block_samples(block_seconds: float) -> int:
    from .audio.io import SAMPLE_RATE

    try:
        seconds = float(block_seconds)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not (math.isfinite(seconds) and seconds > 0):
        raise InputError(f"block_seconds must be a positive number of seconds, got {block_seconds!r}")
    return max(1, int(round(seconds * SAMPLE_RATE)))


def animate_to_npz(audio: "str | Path | np.ndarray", path: "str | Path", **options) -> Path:
    """:func:`animate` straight into an animation file: the file ``export(animate(audio, **options), path)`` writes.

    Audio alone from a file (the network backend) on ARKit channels (``face`` None) is animated
    and written block by block (``options["block_seconds"]`` of audio at a time): the network's
    frames, their closures, the resampling to ``fps``, the layers, the timing offset and the file's
    compressed data are made as the file is read, so memory stays flat however long the
    recording. The file holds the same numbers, header and compressed bytes as the whole-take
    path (see :class:`flamesync.animation.AnimationWriter`). Every other case (a transcript or
    another backend, an array, a face) runs :func:`animate` on the whole take and writes it; with
    a transcript, a file's audio is still never held whole (it is read back from a temporary
    file a slice at a time, see :class:`flamesync.audio.SampleFile`).

    Parameters
    ----------
    audio : str, Path or np.ndarray
        As for :func:`animate`.
    path : str or Path
        A flamesync animation file (``.npz``; not ``.meshes.npz`` or ``.flame.npz``), written
        atomically (inside a :func:`flamesync.fileio.transaction`, when the transaction ends).
    **options
        Every keyword of :func:`animate`.

    Returns
    -------
    Path
        ``path``.
    """
    import inspect

    from .export import check_output, export
    from .fileio import atomic_path

    if check_output(path).module != "animation_npz":
        raise InputError(f"animate_to_npz writes flamesync animation files (.npz), not {Path(path).name}")
    bound = inspect.signature(animate).bind(audio, **options)  # unknown keywords fail here, as in animate
    bound.apply_defaults()
    a = bound.arguments
    backend, layers, offset = _settings(**{k: a[k] for k in (
        "text", "fps", "backend", "on_mismatch", "blinks", "gaze", "brows", "head", "emotion", "intensity",
        "emotion_keys", "seed", "layers", "timing_offset")})
    if isinstance(audio, np.ndarray) or a["face"] is not None or backend not in ("model", "text"):
        return export(animate(audio, **options), path)
    path = Path(path)
    if backend == "text":
        with atomic_path(path) as tmp:
            _stream_text_to_npz(audio, tmp, text=a["text"], fps=check_fps(a["fps"]), language=a["language"],
                                on_mismatch=a["on_mismatch"], model=a["model"], progress=a["progress"],
                                layers=layers, mouth_only=bool(a["mouth_only"]), timing_offset=offset,
                                block_seconds=a["block_seconds"])
        return path
    with atomic_path(path) as tmp:
        _stream_to_npz(audio, tmp, fps=check_fps(a["fps"]), model=a["model"], progress=a["progress"],
                       layers=layers, mouth_only=bool(a["mouth_only"]), timing_offset=offset,
                       block_seconds=a["block_seconds"])
    return path


class _LayeredFileWriter:
    """An animation file written as a take's frames arrive: speech frames at the file's rate and,
    when layers are on, their layer frames (each may run ahead of the other; a frame is written
    once both have arrived), then the timing shift. Every step works frame by frame, so the file
    holds the whole-take numbers."""

    def __init__(self, out: Path, *, empty: "Animation", n_frames: int, layer_pass, timing_offset: float):
        from .animation import AnimationWriter
        from .expressive import OUTPUT_CHANNELS, LayerFrames, ShiftStream, apply_frames

        self._empty, self._layers = empty, layer_pass
        layout = empty
        if layer_pass.active:
            layout = apply_frames(empty, LayerFrames(0, np.zeros((0, len(OUTPUT_CHANNELS)), np.float32),
                                                     np.zeros((0, 3), np.float32)))
        self.layout = layout
        self._rows: list[np.ndarray] = []  # speech frames waiting for their layer frames
        self._pending: list = []  # layer frames waiting for their speech frames
        self._shift = ShiftStream(empty.fps, timing_offset)
        self.writer = AnimationWriter(out, channels=layout.channels, n_frames=n_frames)

    @property
    def rows_waiting(self) -> int:
        return sum(len(r) for r in self._rows)

    @property
    def frames_waiting(self) -> int:
        return sum(len(f) for f in self._pending)

    def emit(self, new_rows: np.ndarray, new_frames: list) -> None:
        from .expressive import LayerFrames, apply_frames

        if not self._layers.active:
            self.writer.write(self._shift.push(new_rows))
            return
        rows, pending = self._rows, self._pending
        if len(new_rows):
            rows.append(new_rows)
        pending.extend(new_frames)
        n = min(self.rows_waiting, self.frames_waiting)
        if n == 0:
            return
        values = np.concatenate(rows) if len(rows) > 1 else rows[0]
        frames = pending[0] if len(pending) == 1 else LayerFrames(
            pending[0].first, np.concatenate([f.weights for f in pending]), np.concatenate([f.head for f in pending]))
        # apply_frames works frame by frame, so applying it to a stretch gives that stretch of
        # the whole-take result.
        done = apply_frames(self._empty.replace(values=values[:n]),
                            LayerFrames(frames.first, frames.weights[:n], frames.head[:n]))
        self.writer.write(self._shift.push(done.values))
        rows[:] = [values[n:]] if n < len(values) else []
        pending[:] = ([LayerFrames(frames.first + n, frames.weights[n:], frames.head[n:])]
                      if n < len(frames) else [])

    def close(self, *, audio_path: str, meta: dict) -> None:
        self.writer.write(self._shift.finish())
        self.writer.close(fps=self._empty.fps, audio_path=audio_path, meta=meta)

    def abort(self) -> None:
        self.writer.abort()


def _stream_to_npz(audio, out: Path, *, fps: float, model, progress, layers, mouth_only: bool, timing_offset: float,
                   block_seconds: float, meta_extra: dict | None = None) -> None:
    """The network-backend file path of :func:`animate` as a stream into ``out`` (see
    :func:`animate_to_npz`): every stage keeps the state a whole-take pass would carry from one
    frame to the next, and the frames go to the file as soon as every stage has made them."""
    from .animation import AnimationWriter, ResampleStream, resampled_length
    from .audio.features import n_feature_frames
    from .audio.io import SILENT_PEAK, AudioBlocks
    from .expressive import BlockLayers, ShiftStream
    from .net.infer import FPS, Postprocessor, load_default_model

    blocks = AudioBlocks(audio, block_samples=_block_samples(block_seconds))
    blocks.count()  # the length, when the format's header does not give it (decoded by ffmpeg)
    net = model if model is not None else load_default_model()
    # The file's frame count goes first (the .npy header): the network gives one frame per 20 ms
    # of audio (rounded up, as its feature stream pads the end), the resampling a fixed ratio.
    n_out = resampled_length(n_feature_frames(blocks.n_samples, config=net.features, out_fps=FPS) // 2, FPS, fps)
    layer_pass = BlockLayers(fps, layers if not mouth_only else layers.off(), block_seconds=block_seconds)
    empty = net.to_animation(np.zeros((0, len(net.channels)), np.float32))
    post = Postprocessor(net, closures=True)
    resampler = ResampleStream(FPS, fps, empty.channels)
    sink = _LayeredFileWriter(out, empty=empty.resample(fps), n_frames=n_out, layer_pass=layer_pass,
                              timing_offset=timing_offset)
    raws = net.iter_raw_blocks(blocks, chunk_seconds=block_seconds, total=blocks.n_samples, progress=progress,
                               on_block=layer_pass.feed, visemes=False)
    try:
        # Closed explicitly on an error, so the reader thread stops before the part file goes.
        with contextlib.closing(raws):
            for raw in raws:
                if len(raw.weights):
                    weights = post.process(raw.weights, raw.closure_prob)
                    sink.emit(resampler.push(net.to_animation(weights).values), layer_pass.take())
        sink.emit(resampler.finish(), layer_pass.close(n_out))
        meta = dict(sink.layout.meta)
        meta["backend"] = "model"
        if layer_pass.active and n_out:
            meta["expressive"] = layer_pass.layers.describe()
        if timing_offset != 0 and n_out:
            meta["timing_offset"] = timing_offset
        meta.update(meta_extra or {})
        silent = blocks.peak < SILENT_PEAK
        if not silent:
            sink.close(audio_path=str(Path(audio).resolve()), meta=meta)
            return
    except BaseException:
        sink.abort()
        raise
    # Silence is known only once the whole file has been read: the frames written are replaced by
    # the rest pose, which the whole-take path makes by resampling zeros at the network's rate.
    sink.abort()
    meta = dict(empty.meta, backend="model", silent=True)
    if timing_offset != 0 and n_out:
        meta["timing_offset"] = timing_offset
    meta.update(meta_extra or {})
    writer = AnimationWriter(out, channels=empty.channels, n_frames=n_out)
    try:
        zeros = ResampleStream(FPS, fps, empty.channels)
        shift = ShiftStream(fps, timing_offset)
        n50 = n_feature_frames(blocks.n_samples, config=net.features, out_fps=FPS) // 2
        step = max(1, int(round(block_seconds * FPS)))
        for a in range(0, n50, step):
            writer.write(shift.push(zeros.push(np.zeros((min(step, n50 - a), len(empty.channels)), np.float32))))
        writer.write(shift.push(zeros.finish()))
        writer.write(shift.finish())
        writer.close(fps=fps, audio_path=str(Path(audio).resolve()), meta=meta)
    except BaseException:
        writer.abort()
        raise


def _stream_text_to_npz(audio, out: Path, *, text: str, fps: float, language: str, on_mismatch: str, model, progress,
                        layers, mouth_only: bool, timing_offset: float, block_seconds: float) -> None:
    """The transcript-backend file path of :func:`animate` as a stream into ``out``: the audio
    goes to a temporary :class:`~flamesync.audio.SampleFile`, the alignment gives the phones, then
    the teacher's frames and the layers' frames (fed the audio a block at a time) go to the file
    as they are made. Silence and a rejected transcript (``on_mismatch="fallback"``) take the
    network's stream, as :func:`animate` does."""
    from .audio import SampleFile
    from .audio.io import SAMPLE_RATE, SILENT_PEAK
    from .expressive import BlockLayers
    from .phonetics.teacher import TeacherFrames
    from .phonetics.textanimate import TranscriptMismatchError, align_transcript_apart, check_transcript

    text = check_transcript(text, language)
    network = dict(fps=fps, model=model, progress=progress, layers=layers, mouth_only=mouth_only,
                   timing_offset=timing_offset, block_seconds=block_seconds)
    from .heap import fix_mmap_threshold, release_free_memory

    # An hour of alignment frees thousands of segment-sized buffers; without this the heap keeps
    # their pages and resident memory grows with the recording (flamesync.heap).
    fix_mmap_threshold()
    with SampleFile.from_file(audio, allow_silent=True) as samples:
        if samples.peak < SILENT_PEAK:
            # Nothing to align: the face rests, as the whole-take path makes it.
            samples.close()
            _stream_to_npz(audio, out, **network)
            return
        try:
            phones, text_meta = align_transcript_apart(samples, text, language=language,
                                                       check=on_mismatch != "ignore")
        except TranscriptMismatchError as exc:
            if on_mismatch != "fallback":
                raise
            warnings.warn(f"{exc}; animating the audio alone", TranscriptMismatchWarning, stacklevel=4)
            samples.close()
            _stream_to_npz(audio, out, meta_extra={"transcript_rejected": str(exc)}, **network)
            return
        teacher = TeacherFrames(phones, fps=fps, duration=len(samples) / SAMPLE_RATE)
        del phones
        # The header's phone list ([start, end, phone] each) is packed into arrays while the frames
        # are made and unpacked for the header at the end, so the two never take memory together.
        listed = text_meta.pop("phones")
        spans = np.array([p[:2] for p in listed], np.float64).reshape(-1, 2)
        labels = np.array([p[2] for p in listed], dtype=object)
        del listed
        release_free_memory()  # what the alignment and its check left in the heap
        n_out = teacher.n_frames
        layer_pass = BlockLayers(fps, layers if not mouth_only else layers.off(), block_seconds=block_seconds)
        empty = Animation(fps=fps, channels=teacher.channels,
                          values=np.zeros((0, len(teacher.channels)), np.float32))
        sink = _LayeredFileWriter(out, empty=empty, n_frames=n_out, layer_pass=layer_pass,
                                  timing_offset=timing_offset)
        try:
            speech = iter(teacher)
            no_rows = np.zeros((0, len(teacher.channels)), np.float32)

            def catch_up() -> None:
                # The teacher's blocks are pulled only as far as the layers have got, so neither
                # runs more than a block ahead of the other.
                while sink.frames_waiting > sink.rows_waiting:
                    rows = next(speech, None)
                    if rows is None:
                        return
                    sink.emit(rows, [])

            if layer_pass.active:
                for block in samples.blocks(_block_samples(block_seconds)):
                    layer_pass.feed(block)
                    sink.emit(no_rows, layer_pass.take())
                    catch_up()
                sink.emit(no_rows, layer_pass.close(n_out))
                catch_up()
            for rows in speech:
                sink.emit(rows, [])
            meta = {**teacher.meta, **text_meta, "backend": "text"}
            del teacher, speech
            meta["phones"] = [[a, b, p] for (a, b), p in zip(spans.tolist(), labels)]
            if layer_pass.active:
                meta["expressive"] = layer_pass.layers.describe()
            if timing_offset != 0:
                meta["timing_offset"] = float(timing_offset)
            sink.close(audio_path=str(Path(audio).resolve()), meta=meta)
        except BaseException:
            sink.abort()
            raise


def _animate_wave(audio, *, text, sample_rate, fps, backend, language, model, progress, on_mismatch, layers,
                  mouth_only, block_seconds):
    """Every case but the network backend on a file. Returns (animation at ``fps`` with layers,
    backend used, silent, rejection reason).

    The transcript backend on a file reads it once into a temporary
    :class:`~flamesync.audio.SampleFile`, which alignment, its check and the layers (or the network,
    for a rejected transcript) read a slice or a block at a time: memory stays flat in the
    recording's length, with the numbers of the whole-array path. The recognition backends and
    arrays hold the audio whole.
    """
    from .audio import SampleFile
    from .audio.io import load_audio, peak_amplitude

    if backend == "text" and not isinstance(audio, np.ndarray):
        with SampleFile.from_file(audio, allow_silent=True) as samples:
            return _animate_samples(samples, samples.peak, text=text, fps=fps, backend=backend, language=language,
                                    model=model, progress=progress, on_mismatch=on_mismatch, layers=layers,
                                    mouth_only=mouth_only, block_seconds=block_seconds)
    # Silence (all zeros, or far below any speech level) is valid input: a pause line in a batch,
    # a quiet stretch of a live take. It animates as a face at rest, whatever the backend; only an
    # input with no samples at all is an error.
    wave = load_audio(audio, source_rate=sample_rate, allow_silent=True)
    return _animate_samples(wave, peak_amplitude(wave), text=text, fps=fps, backend=backend, language=language,
                            model=model, progress=progress, on_mismatch=on_mismatch, layers=layers,
                            mouth_only=mouth_only, block_seconds=block_seconds)


def _animate_samples(wave, peak, *, text, fps, backend, language, model, progress, on_mismatch, layers, mouth_only,
                     block_seconds):
    """:func:`_animate_wave` on 16 kHz samples with their peak: an array, or a SampleFile, which is
    only ever sliced or read in blocks of ``block_seconds``."""
    from .audio import SampleFile
    from .audio.io import SAMPLE_RATE, SILENT_PEAK

    on_disk = isinstance(wave, SampleFile)
    silent = peak < SILENT_PEAK
    if silent:
        # Nothing to align or recognise: the network gives the channel layout, the face rests.
        backend = "model"

    rejected = None
    if backend == "text":
        from .phonetics.textanimate import TranscriptMismatchError, animate_with_text

        try:
            anim = animate_with_text(wave, text, sample_rate=SAMPLE_RATE, language=language, fps=fps,
                                     check=on_mismatch != "ignore")
        except TranscriptMismatchError as exc:
            if on_mismatch != "fallback":
                raise
            # A wrong transcript would animate other words than are spoken; the audio alone is the
            # better answer, and the warning says the transcript was not used.
            rejected = str(exc)
            warnings.warn(f"{exc}; animating the audio alone",
                          TranscriptMismatchWarning, stacklevel=4)
            backend = "model"
    layer_pass = None
    if on_disk and not mouth_only and not silent:
        from .expressive import BlockLayers

        # The block-wise layer pass of the network file path: fed blocks of block_seconds, it
        # analyses what add_layers analyses after each block, so the frames are add_layers'.
        layer_pass = BlockLayers(fps, layers, block_seconds=block_seconds)
    if backend == "model":
        from .net.infer import load_default_model

        net = model if model is not None else load_default_model()
        if on_disk:
            # Blocks of block_seconds through the network and the layers in one pass: the same
            # pushes as predict() on the whole array with chunk_seconds=block_seconds.
            anim = net.predict_blocks(wave.blocks(_block_samples(block_seconds)), chunk_seconds=block_seconds,
                                      total=len(wave), progress=progress,
                                      on_block=layer_pass.feed if layer_pass is not None else None)
        else:
            anim = net.predict(wave, progress=progress)
    elif backend == "words":
        from .phonetics.textanimate import animate_recognized_words

        anim = animate_recognized_words(wave, sample_rate=SAMPLE_RATE, fps=fps)
    elif backend == "phones":
        from .phonetics.align import recognize_phones
        from .phonetics.teacher import phones_to_animation

        phones = recognize_phones(wave, SAMPLE_RATE).phones
        anim = phones_to_animation(phones, fps=fps, duration=len(wave) / SAMPLE_RATE)
    elif layer_pass is not None:
        for block in wave.blocks(_block_samples(block_seconds)):
            layer_pass.feed(block)
    if silent:
        anim = anim.replace(values=np.zeros_like(anim.values))
    anim = anim.resample(fps)  # returns the animation itself when the rate already matches
    # The layers work in ARKit channels, so they go on before any retargeting; silence stays the
    # rest pose (a take of pure silence is a rest line, not a performance).
    if not mouth_only and not silent:
        if layer_pass is not None:
            anim = layer_pass.finish(anim)
        else:
            from .expressive import add_layers

            anim = add_layers(anim, wave, layers)
    return anim, backend, silent, rejected
