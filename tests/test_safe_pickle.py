import io
import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from flamesync.errors import ModelFileError
from flamesync.face.safe_pickle import CompressedSparse, load_pickle, loads_pickle

import flame_synth


@pytest.fixture(scope="module")
def synth():
    return flame_synth.make_synthetic_flame(n_shape=6, n_expr=2, seed=3)


@pytest.mark.parametrize("style", ["py3", "py2", "py3-protocol0", "py3-protocol1", "py3-protocol4"])
def test_reads_flame_layout_pickles(synth, style):
    if style == "py2":
        data = flame_synth.dumps_py2(synth)
    else:  # old protocols spell the chumpy object with copy_reg._reconstructor instead of NEWOBJ
        data = flame_synth.dumps_py3(synth, protocol=int(style[-1]) if "protocol" in style else 2)
    out = loads_pickle(data)
    assert set(out) == set(synth)
    for key in ("v_template", "shapedirs", "posedirs", "weights", "kintree_table", "f", "J"):
        assert isinstance(out[key], np.ndarray)
        assert out[key].dtype == synth[key].dtype, key
        np.testing.assert_array_equal(out[key], synth[key])
    assert isinstance(out["J_regressor"], CompressedSparse)
    np.testing.assert_array_equal(out["J_regressor"].toarray(), synth["J_regressor"].toarray())
    assert out["bs_type"] == "lrotmin"


def test_py2_style_needs_latin1(synth):
    # The hand-written Python 2 stream really carries raw byte strings, as the released files do.
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(flame_synth.dumps_py2(synth))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_numpy_arrays_across_protocols(protocol):
    arrays = {
        "c": np.arange(12, dtype=np.float32).reshape(3, 4),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "big_endian": np.arange(5, dtype=">i4"),
        "bool": np.array([True, False]),
        "empty": np.zeros((0, 3)),
        "scalar": np.array(2.5),
        "numpy_scalar": np.float32(1.25),
        "numpy_int": np.int64(-7),
    }
    out = loads_pickle(pickle.dumps(arrays, protocol=protocol))
    for key, a in arrays.items():
        np.testing.assert_array_equal(out[key], a)
        assert out[key].shape == a.shape and type(out[key]) is type(a), key
        assert out[key].dtype == a.dtype.newbyteorder("="), key


@pytest.mark.parametrize("fmt", ["csc", "csr"])
def test_sparse_matrices_become_dense_correctly(fmt):
    m = sp.random(7, 5, density=0.4, format=fmt, random_state=np.random.default_rng(0))
    out = loads_pickle(pickle.dumps({"m": m}, protocol=2))["m"]
    assert out.format == fmt and out.shape == (7, 5)
    np.testing.assert_array_equal(out.toarray(), m.toarray())


class _Payload:
    """Unpickling this runs ``func(*args)``: what a tampered model file would do."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker):
    import builtins
    import os
    import subprocess

    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "builtins.exec": _Payload(builtins.exec, code),
        "builtins.eval": _Payload(builtins.eval, f"__import__('builtins').exec({code!r})"),
        "posix.system": _Payload(os.system, f"touch '{marker}'"),
        "subprocess.call": _Payload(subprocess.call, ["touch", str(marker)]),
    }


@pytest.mark.parametrize("name", ["builtins.exec", "builtins.eval", "posix.system", "subprocess.call"])
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_code_in_a_pickle_is_refused_and_never_runs(tmp_path, synth, name, protocol):
    marker = tmp_path / "pwned"
    payload = _payloads(marker)[name]
    # Hide the payload inside an otherwise valid FLAME file, as an attacker would.
    model = flame_synth._with_ch(synth)
    model["bs_style"] = payload
    buf = io.BytesIO()
    flame_synth._Pickler(buf, protocol=protocol).dump(model)
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(buf.getvalue())
    with pytest.raises(ModelFileError) as info:
        load_pickle(path)
    assert name.split(".")[-1] in str(info.value) and "refused" in str(info.value)
    assert "\n" not in str(info.value)
    assert not marker.exists(), "the pickle ran code"


def test_payload_is_live_under_plain_pickle(tmp_path):
    # Proves the refusal test above would catch a loader that executes: plain pickle runs it.
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_payloads(marker)["builtins.exec"], protocol=2))
    assert marker.exists()


def test_chumpy_expressions_and_unknown_classes_are_named():
    data = b"\x80\x02cchumpy.reordering\nSelect\n)\x81}b."
    with pytest.raises(ModelFileError, match=r"chumpy\.reordering\.Select.*only plain chumpy\.ch\.Ch"):
        loads_pickle(data)
    with pytest.raises(ModelFileError, match=r"collections\.OrderedDict"):
        loads_pickle(pickle.dumps(__import__("collections").OrderedDict(a=1), protocol=2))


def test_object_arrays_are_refused():
    # Object arrays would hand the unpickler arbitrary Python objects; only numbers are allowed.
    with pytest.raises(ModelFileError, match="dtype"):
        loads_pickle(pickle.dumps(np.array([1, "a"], dtype=object), protocol=2))


def test_reconstruct_cannot_be_aimed_at_another_class():
    data = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncchumpy.ch\nCh\nK\x00\x85U\x01b\x87R."
    with pytest.raises(ModelFileError, match="non-ndarray"):
        loads_pickle(data)


def test_array_size_must_match_its_data():
    a = pickle.dumps(np.arange(4.0), protocol=2)
    bad = a.replace(b"K\x04\x85", b"K\x05\x85", 1)  # claim 5 elements, keep 4 elements of data
    assert bad != a
    with pytest.raises(ModelFileError, match="bytes"):
        loads_pickle(bad)


def test_inconsistent_sparse_indices_are_refused():
    m = sp.csc_matrix(np.eye(3))
    m.indices[1] = 7  # row 7 of a 3-row matrix
    with pytest.raises(ModelFileError, match="inconsistent"):
        loads_pickle(pickle.dumps(m, protocol=2))


@pytest.mark.parametrize("data", [b"", b"not a pickle at all", pickle.dumps({"a": np.ones(3)}, protocol=2)[:-20]])
def test_corrupt_bytes_give_one_line_error(data):
    with pytest.raises(ModelFileError) as info:
        loads_pickle(data, source="x.pkl")
    assert str(info.value).startswith("x.pkl: ") and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_pickle(tmp_path / "nope.pkl")


def test_self_reference_and_deep_nesting_fail_cleanly():
    loop = []
    loop.append(loop)
    with pytest.raises(ModelFileError, match="self-referencing"):
        loads_pickle(pickle.dumps(loop, protocol=2))
    deep = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."  # lists nested 100000 deep
    with pytest.raises(ModelFileError, match="nested too deeply"):
        loads_pickle(deep)


@pytest.mark.parametrize("name", ["scalar", "_reconstruct"])
def test_build_on_a_global_cannot_change_it(name):
    # GLOBAL <table function>; BUILD (None, {"__defaults__": ("pwned",)}): pickle's BUILD sets the
    # attributes of an object without __setstate__, here a function inside safe_pickle.
    from flamesync.face import safe_pickle as safe

    target = {"scalar": safe._np_scalar, "_reconstruct": safe._np_reconstruct}[name]
    before = target.__defaults__
    payload = (b"\x80\x02cnumpy.core.multiarray\n" + name.encode() + b"\n"
               b"N}X\x0c\x00\x00\x00__defaults__(X\x05\x00\x00\x00pwnedtq\x00s\x86b.")
    with pytest.raises(ModelFileError, match="existing object"):
        safe.loads_pickle(payload)
    assert target.__defaults__ == before
    assert not hasattr(target, "pwned")
