"""ctypes declarations of libember's C API (include/ember.h) and how the library is found.

The library is looked for, in order:
  1. $EMBER_LIBRARY: the path of libember.so (e.g. build/src/libember.so from a build tree),
  2. build/src/libember.so beside this package in a source checkout (python/../build/src),
  3. the system's libember.so.0 (an installed ember: `meson install`, ldconfig or LD_LIBRARY_PATH).
"""
import ctypes
import ctypes.util
import os

__all__ = ["lib", "library_path", "Config", "SessionParams", "SamplerParams", "GenerateParams",
           "GenerateResult", "Step", "ABORT_CALLBACK"]


def _candidates():
    env = os.environ.get("EMBER_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "..", "..", "build", "src", "libember.so")
    yield "libember.so.0"
    found = ctypes.util.find_library("ember")
    if found:
        yield found


def _load():
    errors = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            errors.append("%s: not found" % path)
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append(str(e))
    raise ImportError("ember: libember.so not found (set EMBER_LIBRARY to its path, e.g. build/src/libember.so): "
                      + "; ".join(errors))


lib, library_path = _load()

c_int32_p = ctypes.POINTER(ctypes.c_int32)
c_float_p = ctypes.POINTER(ctypes.c_float)
c_size_p = ctypes.POINTER(ctypes.c_size_t)


class Config(ctypes.Structure):
    _fields_ = [("n_vocab", ctypes.c_uint32), ("n_ctx", ctypes.c_uint32), ("n_embd", ctypes.c_uint32),
                ("n_head", ctypes.c_uint32), ("n_layer", ctypes.c_uint32), ("n_ff", ctypes.c_uint32),
                ("n_classes", ctypes.c_uint32), ("tokenizer", ctypes.c_int), ("n_tokens", ctypes.c_uint32),
                ("eot_id", ctypes.c_int32)]


class SessionParams(ctypes.Structure):
    _fields_ = [("n_threads", ctypes.c_uint32), ("n_batch", ctypes.c_uint32), ("kv_type", ctypes.c_int)]


class SamplerParams(ctypes.Structure):
    _fields_ = [("temperature", ctypes.c_float), ("top_k", ctypes.c_int32), ("top_p", ctypes.c_float),
                ("repeat_penalty", ctypes.c_float), ("repeat_last_n", ctypes.c_int32), ("seed", ctypes.c_uint64)]


class GenerateParams(ctypes.Structure):
    _fields_ = [("max_tokens", ctypes.c_int64), ("ignore_eot", ctypes.c_int), ("keep_going", ctypes.c_int),
                ("echo_prompt", ctypes.c_int), ("stop", ctypes.POINTER(ctypes.c_char_p)), ("n_stop", ctypes.c_size_t)]


class GenerateResult(ctypes.Structure):
    _fields_ = [("stop_reason", ctypes.c_int), ("n_prompt", ctypes.c_size_t), ("n_generated", ctypes.c_size_t),
                ("n_shifts", ctypes.c_size_t)]


class Step(ctypes.Structure):
    _fields_ = [("token", ctypes.c_int32), ("text", ctypes.c_void_p), ("len", ctypes.c_size_t), ("done", ctypes.c_int)]


ABORT_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)

_P = ctypes.c_void_p  # every handle is an opaque pointer
_status = ctypes.c_int
_signatures = {
    "ember_status_name": (ctypes.c_char_p, [ctypes.c_int]),
    "ember_last_error": (ctypes.c_char_p, []),
    "ember_version": (ctypes.c_char_p, []),
    "ember_kernel_table": (ctypes.c_char_p, []),
    "ember_stop_reason_name": (ctypes.c_char_p, [ctypes.c_int]),
    "ember_model_load": (_status, [ctypes.c_char_p, ctypes.POINTER(_P)]),
    "ember_model_load_from_buffer": (_status, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.POINTER(_P)]),
    "ember_model_free": (None, [_P]),
    "ember_model_get_config": (_status, [_P, ctypes.POINTER(Config)]),
    "ember_model_name": (ctypes.c_char_p, [_P]),
    "ember_model_metadata": (ctypes.c_char_p, [_P, ctypes.c_char_p]),
    "ember_model_fingerprint": (ctypes.c_uint64, [_P]),
    "ember_model_labels": (_status, [_P, ctypes.POINTER(ctypes.POINTER(ctypes.c_char_p)), c_size_p]),
    "ember_tokenize": (_status, [_P, ctypes.c_char_p, ctypes.c_size_t, c_int32_p, ctypes.c_size_t, c_size_p]),
    "ember_detokenize": (_status, [_P, c_int32_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, c_size_p]),
    "ember_token_piece": (_status, [_P, ctypes.c_int32, ctypes.c_char_p, ctypes.c_size_t, c_size_p]),
    "ember_token_is_special": (ctypes.c_int, [_P, ctypes.c_int32]),
    "ember_session_default_params": (SessionParams, []),
    "ember_session_create": (_status, [_P, ctypes.POINTER(SessionParams), ctypes.POINTER(_P)]),
    "ember_session_free": (None, [_P]),
    "ember_session_prefill": (_status, [_P, c_int32_p, ctypes.c_size_t]),
    "ember_session_decode": (_status, [_P, ctypes.c_int32]),
    "ember_session_logits": (c_float_p, [_P]),
    "ember_session_tokens": (c_int32_p, [_P]),
    "ember_session_n_past": (ctypes.c_size_t, [_P]),
    "ember_session_n_ctx": (ctypes.c_size_t, [_P]),
    "ember_session_n_vocab": (ctypes.c_size_t, [_P]),
    "ember_session_n_threads": (ctypes.c_uint32, [_P]),
    "ember_session_reset": (_status, [_P]),
    "ember_session_trim": (_status, [_P, ctypes.c_size_t]),
    "ember_session_set_abort_callback": (_status, [_P, ABORT_CALLBACK, ctypes.c_void_p]),
    "ember_session_state_size": (_status, [_P, c_size_p]),
    "ember_session_save_state": (_status, [_P, ctypes.c_void_p, ctypes.c_size_t, c_size_p]),
    "ember_session_restore_state": (_status, [_P, ctypes.c_void_p, ctypes.c_size_t]),
    "ember_session_save_state_file": (_status, [_P, ctypes.c_char_p]),
    "ember_session_restore_state_file": (_status, [_P, ctypes.c_char_p]),
    "ember_session_classify": (_status, [_P, c_float_p, ctypes.c_size_t]),
    "ember_classify": (_status, [_P, ctypes.c_char_p, ctypes.c_size_t, c_float_p, ctypes.c_size_t]),
    "ember_sampler_default_params": (SamplerParams, []),
    "ember_sampler_create": (_status, [ctypes.POINTER(SamplerParams), ctypes.c_size_t, ctypes.POINTER(_P)]),
    "ember_sampler_free": (None, [_P]),
    "ember_sampler_sample": (_status, [_P, c_float_p, c_int32_p, ctypes.c_size_t, c_int32_p]),
    "ember_generate_default_params": (GenerateParams, []),
    "ember_generator_create": (_status, [_P, _P, ctypes.POINTER(GenerateParams), ctypes.POINTER(_P)]),
    "ember_generator_free": (None, [_P]),
    "ember_generator_start": (_status, [_P, ctypes.c_char_p]),
    "ember_generator_start_ids": (_status, [_P, c_int32_p, ctypes.c_size_t]),
    "ember_generator_next": (_status, [_P, ctypes.POINTER(Step)]),
    "ember_generator_result": (_status, [_P, ctypes.POINTER(GenerateResult)]),
}
for _name, (_res, _args) in _signatures.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args
