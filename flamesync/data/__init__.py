"""The synthetic training corpus: generation (:mod:`.synth`), reading (:mod:`.corpus`), text (:mod:`.text`).

>>> from flamesync.data.corpus import Corpus
>>> corpus = Corpus(path)                # a folder made by `flamesync data synth`
>>> item = next(corpus.items("train"))   # audio int16 @ 16 kHz, targets float32 (T, C) @ 50 fps
"""
