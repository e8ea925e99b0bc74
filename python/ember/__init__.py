"""ember for Python: GPT-style models on libember's C API (include/ember.h), through ctypes.

    import ember
    model = ember.Model("models/shakespeare-char.ember")
    for text in ember.generate(model, "ROMEO:", max_tokens=100, seed=1):
        print(text, end="", flush=True)

    s = model.session(kv_type="int8")      # KV cache and scratch for n_ctx tokens
    s.prefill(model.tokenize("ROMEO:"))
    s.logits                               # numpy.ndarray of n_vocab float32 (a list without numpy)
    state = s.save_state()                 # bytes: a prompt cache, bound to this model
    model.session().restore_state(state)   # the same next logits, bit for bit

The standard library only (numpy is used for logits when it can be imported). libember.so is found via
$EMBER_LIBRARY, a build tree beside this package (build/src), or the system (ember/_capi.py). Errors
raise ember.EmberError (its .status names the kind: "not found", "invalid file", ...). Thread safety as
the C API's: a Model may be shared by threads; a Session, Sampler or generation is one thread's at a time.
"""
import ctypes

from . import _capi
from ._capi import lib

try:  # logits as numpy arrays when numpy is there
    import numpy as _np
except ImportError:  # pragma: no cover - depends on the machine
    _np = None

__all__ = ["EmberError", "Model", "Session", "Sampler", "generate", "version", "kernel_table", "library_path"]

library_path = _capi.library_path
_STOP_REASONS = ["none", "max tokens", "end of text", "stop string", "context full", "callback", "aborted"]
_KV_TYPES = {"f32": 0, "int8": 1}
_EMBER_OK, _EMBER_ABORTED = 0, 8  # ember_status values (include/ember.h)


class EmberError(Exception):
    """A failed ember call: .status ("invalid argument", "not found", ...), .code (the ember_status), and
    the library's message, which names the file, field or argument."""

    def __init__(self, code, message):
        self.code = code
        self.status = lib.ember_status_name(code).decode()
        super().__init__(message)


class AbortedError(EmberError):
    """The session's abort callback stopped the call (status "aborted")."""


def _check(code):
    if code != _EMBER_OK:
        message = lib.ember_last_error().decode("utf-8", "replace")
        raise (AbortedError if code == _EMBER_ABORTED else EmberError)(code, message)


def _ids(ids):
    ids = list(ids)
    return (ctypes.c_int32 * len(ids))(*ids), len(ids)


def version():
    """The version of the libember this package runs on, "MAJOR.MINOR.PATCH"."""
    return lib.ember_version().decode()


def kernel_table():
    """The kernel table libember runs on this CPU: "ref", "avx2", "avxvnni", "avx512", "neon" or "neondot".
    The SIMD tables give bit-identical logits; "ref" differs from them in the last bits."""
    return lib.ember_kernel_table().decode()


class _Handle:
    """A C handle this object owns: close() (or leaving a with block, or garbage collection) frees it
    with the C function named by _free."""

    _free = None

    def close(self):
        """Releases the handle (what was made from it keeps what it needs alive in the library)."""
        if getattr(self, "_h", None):
            getattr(lib, self._free)(self._h)
            self._h = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Model(_Handle):
    """A loaded, verified model (immutable; share it between sessions and threads).

    Model(path) maps an .ember file; Model.from_bytes(data) loads the bytes of one (copied)."""

    _free = "ember_model_free"

    def __init__(self, path=None, _handle=None):
        if _handle is None:
            if not isinstance(path, (str, bytes)):
                raise TypeError("Model(path): path must be str")
            handle = ctypes.c_void_p()
            _check(lib.ember_model_load(path.encode() if isinstance(path, str) else path, ctypes.byref(handle)))
            _handle = handle
        self._h = _handle
        cfg = _capi.Config()
        _check(lib.ember_model_get_config(self._h, ctypes.byref(cfg)))
        self.config = {name: getattr(cfg, name) for name, _ in _capi.Config._fields_}
        self.config["tokenizer"] = ["none", "gpt2-bpe", "chars"][cfg.tokenizer]
        self._classify_session = None

    @classmethod
    def from_bytes(cls, data, name="<memory>"):
        """A model from the bytes of an .ember file (verified like a file; copied)."""
        data = bytes(data)
        handle = ctypes.c_void_p()
        _check(lib.ember_model_load_from_buffer(data, len(data), name.encode(), ctypes.byref(handle)))
        return cls(_handle=handle)

    @property
    def name(self):
        return lib.ember_model_name(self._h).decode("utf-8", "replace")

    @property
    def fingerprint(self):
        """XXH64 of the model's bytes: what binds a saved session state to this model."""
        return lib.ember_model_fingerprint(self._h)

    def metadata(self, key):
        """A metadata value of the file, or None."""
        v = lib.ember_model_metadata(self._h, key.encode())
        return None if v is None else v.decode("utf-8", "replace")

    @property
    def labels(self):
        """The class names of a model with a classifier head ([] without one)."""
        if self.config["n_classes"] == 0:
            return []
        arr = ctypes.POINTER(ctypes.c_char_p)()
        n = ctypes.c_size_t()
        _check(lib.ember_model_labels(self._h, ctypes.byref(arr), ctypes.byref(n)))
        return [arr[i].decode() for i in range(n.value)]

    def tokenize(self, text):
        """Text to a list of token ids."""
        if not isinstance(text, str):
            raise TypeError("tokenize(text): text must be str")
        b = text.encode()
        n = ctypes.c_size_t()
        _check(lib.ember_tokenize(self._h, b, len(b), None, 0, ctypes.byref(n)))
        ids = (ctypes.c_int32 * n.value)()
        _check(lib.ember_tokenize(self._h, b, len(b), ids, n.value, ctypes.byref(n)))
        return list(ids)

    def detokenize(self, ids):
        """Token ids to text (ids without text as "<|token N|>"; never a broken character)."""
        arr, n = _ids(ids)
        size = ctypes.c_size_t()
        _check(lib.ember_detokenize(self._h, arr, n, None, 0, ctypes.byref(size)))
        buf = ctypes.create_string_buffer(size.value + 1)
        _check(lib.ember_detokenize(self._h, arr, n, buf, size.value + 1, ctypes.byref(size)))
        return buf.raw[:size.value].decode("utf-8")

    def token_bytes(self, token):
        """One token's raw bytes (possibly part of a UTF-8 character), or its placeholder's."""
        size = ctypes.c_size_t()
        _check(lib.ember_token_piece(self._h, token, None, 0, ctypes.byref(size)))
        buf = ctypes.create_string_buffer(size.value + 1)
        _check(lib.ember_token_piece(self._h, token, buf, size.value + 1, ctypes.byref(size)))
        return buf.raw[:size.value]

    def is_special(self, token):
        return bool(lib.ember_token_is_special(self._h, token))

    def session(self, **kwargs):
        """Session(self, **kwargs)."""
        return Session(self, **kwargs)

    def classify(self, text):
        """{label: probability} for a text, on a model with a classifier head."""
        if self._classify_session is None:
            self._classify_session = Session(self)
        return self._classify_session.classify(text)


class Session(_Handle):
    """One conversation with a model: the KV cache, sized for n_ctx at creation. One thread at a time."""

    _free = "ember_session_free"

    def __init__(self, model, n_threads=1, n_batch=64, kv_type="f32"):
        if kv_type not in _KV_TYPES:
            raise ValueError("kv_type must be 'f32' or 'int8', not %r" % (kv_type,))
        self.model = model  # keeps the Python object (and its labels) alive
        p = _capi.SessionParams(n_threads, n_batch, _KV_TYPES[kv_type])
        self._h = ctypes.c_void_p()
        _check(lib.ember_session_create(model._h, ctypes.byref(p), ctypes.byref(self._h)))
        self._abort = None

    def prefill(self, ids):
        """Runs the tokens after those in the cache (raises AbortedError when the abort callback stops it:
        the micro-batches before stay in the cache)."""
        arr, n = _ids(ids)
        _check(lib.ember_session_prefill(self._h, arr, n))

    def decode(self, token):
        _check(lib.ember_session_decode(self._h, token))

    @property
    def logits(self):
        """The last token's n_vocab logits (a copy): numpy float32 array, or a list without numpy; None
        before anything ran, after reset, trim or an abort."""
        p = lib.ember_session_logits(self._h)
        if not p:
            return None
        n = self.n_vocab
        if _np is not None:
            return _np.ctypeslib.as_array(p, shape=(n,)).copy()
        return p[:n]

    @property
    def tokens(self):
        """The ids in the cache."""
        p = lib.ember_session_tokens(self._h)
        return p[:self.n_past] if p else []

    n_past = property(lambda self: lib.ember_session_n_past(self._h))
    n_ctx = property(lambda self: lib.ember_session_n_ctx(self._h))
    n_vocab = property(lambda self: lib.ember_session_n_vocab(self._h))
    n_threads = property(lambda self: lib.ember_session_n_threads(self._h))

    def reset(self):
        _check(lib.ember_session_reset(self._h))

    def trim(self, n):
        """Keeps the first n tokens of the cache."""
        _check(lib.ember_session_trim(self._h, n))

    def set_abort(self, callback):
        """callback() -> bool, asked before each prefill micro-batch and decode; True stops it. None removes it."""
        if callback is None:
            self._abort = None
            _check(lib.ember_session_set_abort_callback(self._h, _capi.ABORT_CALLBACK(), None))
            return
        self._abort = _capi.ABORT_CALLBACK(lambda _user: 1 if callback() else 0)  # kept: ctypes needs it alive
        _check(lib.ember_session_set_abort_callback(self._h, self._abort, None))

    def save_state(self):
        """The session's state as bytes (a prompt cache; restore into a session of the same model)."""
        size = ctypes.c_size_t()
        _check(lib.ember_session_state_size(self._h, ctypes.byref(size)))
        buf = ctypes.create_string_buffer(size.value)
        written = ctypes.c_size_t()
        _check(lib.ember_session_save_state(self._h, buf, size.value, ctypes.byref(written)))
        return buf.raw[:written.value]

    def restore_state(self, data):
        """Restores save_state()'s bytes; verified first (EmberError otherwise, the session unchanged)."""
        data = bytes(data)
        _check(lib.ember_session_restore_state(self._h, data, len(data)))

    def save_state_file(self, path):
        _check(lib.ember_session_save_state_file(self._h, path.encode()))

    def restore_state_file(self, path):
        _check(lib.ember_session_restore_state_file(self._h, path.encode()))

    def classify(self, text):
        """{label: probability} for a text (resets the session; models with a classifier head)."""
        labels = self.model.labels
        if not labels:
            raise EmberError(1, "classify: %s has no classifier head" % self.model.name)
        b = text.encode()
        probs = (ctypes.c_float * len(labels))()
        _check(lib.ember_classify(self._h, b, len(b), probs, len(labels)))
        return dict(zip(labels, probs))

    def generate(self, prompt="", **kwargs):
        """generate(self, prompt, **kwargs): see ember.generate."""
        return generate(self, prompt, **kwargs)


class Sampler(_Handle):
    """Chooses tokens from logits (temperature <= 0: greedy); seeded, reproducible on every platform."""

    _free = "ember_sampler_free"

    def __init__(self, n_vocab, temperature=0.8, top_k=40, top_p=0.95, repeat_penalty=1.0, repeat_last_n=64, seed=0):
        p = _capi.SamplerParams(temperature, top_k, top_p, repeat_penalty, repeat_last_n, seed)
        self._h = ctypes.c_void_p()
        _check(lib.ember_sampler_create(ctypes.byref(p), n_vocab, ctypes.byref(self._h)))
        self.n_vocab = n_vocab

    def sample(self, logits, history=()):
        if len(logits) != self.n_vocab:
            raise ValueError("sample: %d logits, the sampler's vocabulary is %d" % (len(logits), self.n_vocab))
        arr = (ctypes.c_float * self.n_vocab)(*[float(x) for x in logits])
        hist, n = _ids(history)
        out = ctypes.c_int32()
        _check(lib.ember_sampler_sample(self._h, arr, hist, n, ctypes.byref(out)))
        return out.value


class Generation(_Handle):
    """An iterator over the text of a generation (what ember.generate returns). After it ends,
    .stop_reason ("max tokens", "end of text", "stop string", "context full", "aborted"), .n_generated
    and .n_shifts tell how; .tokens holds the generated ids."""

    _free = "ember_generator_free"

    def __init__(self, session, sampler, prompt, params, stop, with_tokens):
        self.session, self.sampler = session, sampler  # the generator uses both
        self._stop = stop  # the C strings params points to
        self._with_tokens = with_tokens
        self._h = ctypes.c_void_p()
        _check(lib.ember_generator_create(session._h, sampler._h, ctypes.byref(params), ctypes.byref(self._h)))
        if isinstance(prompt, str):
            code = lib.ember_generator_start(self._h, prompt.encode())
        else:
            arr, n = _ids(prompt)
            code = lib.ember_generator_start_ids(self._h, arr, n)
        if code != _EMBER_ABORTED:  # an aborted prompt ends the generation: the iterator is then empty
            _check(code)
        self.tokens = []
        self._step = _capi.Step()

    def __iter__(self):
        return self

    def __next__(self):
        if self._h is None:
            raise StopIteration
        _check(lib.ember_generator_next(self._h, ctypes.byref(self._step)))
        s = self._step
        if s.done:
            self._finish()
            raise StopIteration
        text = ctypes.string_at(s.text, s.len).decode("utf-8") if s.len else ""
        if s.token >= 0:
            self.tokens.append(s.token)
        return (s.token, text) if self._with_tokens else text

    def _finish(self):
        r = _capi.GenerateResult()
        _check(lib.ember_generator_result(self._h, ctypes.byref(r)))
        self.stop_reason = _STOP_REASONS[r.stop_reason]
        self.n_prompt, self.n_generated, self.n_shifts = r.n_prompt, r.n_generated, r.n_shifts
        self.close()


def generate(model_or_session, prompt="", max_tokens=128, temperature=0.8, top_k=40, top_p=0.95,
             repeat_penalty=1.0, repeat_last_n=64, seed=0, stop=(), keep_going=False, ignore_eot=False,
             echo=False, with_tokens=False):
    """Streams generated text: an iterator of str pieces (each valid UTF-8 text; a piece may be "" while
    text is held back), or of (token, text) with with_tokens (token -1: echoed prompt or final text).

    model_or_session: a Model (a fresh session is made) or a Session (generation continues after what it
    holds: prompt "" continues from its logits, e.g. after restore_state). prompt: text or token ids.
    Stops after max_tokens, at the end-of-text token (unless ignore_eot), at any of the stop strings (not
    included), when the context is full (or shifts it with keep_going), or when the session's abort
    callback says so. The same seed gives what `ember-generate --seed` gives."""
    session = model_or_session if isinstance(model_or_session, Session) else Session(model_or_session)
    sampler = Sampler(session.n_vocab, temperature, top_k, top_p, repeat_penalty, repeat_last_n, seed)
    stop = [s.encode() for s in stop]
    params = lib.ember_generate_default_params()
    params.max_tokens = max_tokens
    params.ignore_eot = int(ignore_eot)
    params.keep_going = int(keep_going)
    params.echo_prompt = int(echo)
    c_stop = (ctypes.c_char_p * max(1, len(stop)))(*stop)
    params.stop = ctypes.cast(c_stop, ctypes.POINTER(ctypes.c_char_p)) if stop else None
    params.n_stop = len(stop)
    return Generation(session, sampler, prompt, params, (stop, c_stop), with_tokens)
