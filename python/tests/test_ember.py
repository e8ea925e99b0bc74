"""Tests of the Python package (meson test suite 'python'; or by hand from the repository root:
    EMBER_LIBRARY=build/src/libember.so PYTHONPATH=python python3 -m unittest discover -s python/tests -v

Skipped when libember.so cannot be loaded, and the comparisons with the tools when they are not built
(under CI=true both are failures, as tests/support/skip.h has it for the C++ suites). The seeded text is
compared with ember-generate's and with the committed run in tests/data/default_model_seed1.json.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest


def ci():
    return os.environ.get("CI", "") not in ("", "0", "false")


try:
    import ember
except ImportError as e:  # no libember.so: nothing to test
    if ci():
        raise
    raise unittest.SkipTest(str(e))

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODELS = os.environ.get("EMBER_MODELS_DIR", os.path.join(ROOT, "models"))
DATA = os.environ.get("EMBER_TEST_DATA", os.path.join(ROOT, "tests", "data"))
TOOLS = os.path.join(os.environ.get("EMBER_BUILD_DIR", os.path.join(ROOT, "build")), "tools")
MODEL = os.path.join(MODELS, "shakespeare-char.ember")


def tool(name):
    path = os.path.join(TOOLS, name)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def need(test, names):
    """Skips `test` (a TestCase, or the class in setUpClass) unless the tools are built; under CI fails."""
    missing = [n for n in names if tool(n) is None]
    if not missing:
        return
    reason = "%s not built in %s" % (", ".join(missing), TOOLS)
    if ci():
        raise AssertionError("CI=true: " + reason + " (CI builds every tool)")
    raise unittest.SkipTest(reason)


class GenerateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = ember.Model(MODEL)

    def test_seeded_text_equals_ember_generate(self):
        text = "".join(ember.generate(self.model, "ROMEO:", max_tokens=100, seed=1, echo=True))
        need(self, ["ember-generate"])
        out = subprocess.run([tool("ember-generate"), "-m", MODEL, "-p", "ROMEO:", "-n", "100", "--seed", "1", "-q"],
                             check=True, capture_output=True).stdout.decode()
        self.assertEqual(text + "\n", out)

    @unittest.skipIf(ember.kernel_table() == "ref", "the stored run is the SIMD kernel tables'")
    def test_committed_seeded_run_with_keep_going(self):
        with open(os.path.join(DATA, "default_model_seed1.json")) as f:
            want = json.load(f)
        g = ember.generate(self.model, "ROMEO:", max_tokens=400, seed=1, keep_going=True)
        text = "".join(g)
        self.assertEqual(g.tokens, want["ids"])
        self.assertEqual(text, want["text"])
        self.assertEqual(g.stop_reason, "max tokens")
        self.assertGreater(g.n_shifts, 0)

    def test_streaming_pieces_and_tokens(self):
        pieces = list(ember.generate(self.model, "ROMEO:", max_tokens=20, seed=3, with_tokens=True))
        self.assertEqual(len(pieces), 20)  # one character per token
        ids = [t for t, _ in pieces]
        self.assertEqual(self.model.detokenize(ids), "".join(text for _, text in pieces))

    def test_stop_strings_and_context_full(self):
        greedy = "".join(ember.generate(self.model, "ROMEO:", max_tokens=120, temperature=0))
        stop = greedy[40:44]
        g = ember.generate(self.model, "ROMEO:", max_tokens=120, temperature=0, stop=[stop, "\x01never"])
        self.assertEqual("".join(g), greedy[:greedy.find(stop)])
        self.assertEqual(g.stop_reason, "stop string")
        full = ember.generate(self.model, "ROMEO:", max_tokens=500, seed=1)
        self.assertEqual(len(list(full)), 128 - 6 + 1)
        self.assertEqual(full.stop_reason, "context full")

    def test_continue_from_a_restored_state(self):
        want = "".join(ember.generate(self.model, "ROMEO:", max_tokens=50, seed=7))
        a = self.model.session()
        a.prefill(self.model.tokenize("ROMEO:"))
        b = self.model.session()
        b.restore_state(a.save_state())
        self.assertEqual(b.tokens, self.model.tokenize("ROMEO:"))
        self.assertEqual("".join(b.generate("", max_tokens=50, seed=7)), want)


class ModelSessionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = ember.Model(MODEL)

    def test_config_tokenizer_metadata(self):
        m = self.model
        self.assertEqual(m.config["n_vocab"], 65)
        self.assertEqual(m.config["n_ctx"], 128)
        self.assertEqual(m.config["tokenizer"], "chars")
        self.assertEqual(m.metadata("source"), "ember-default")
        self.assertIsNone(m.metadata("no such key"))
        self.assertEqual(m.name, MODEL)
        ids = m.tokenize("ROMEO: what light")
        self.assertEqual(len(ids), 17)
        self.assertEqual(m.detokenize(ids), "ROMEO: what light")
        self.assertEqual(m.detokenize([20, 99]), "H<|token 99|>")
        self.assertTrue(m.is_special(99))
        self.assertEqual(m.token_bytes(20), b"H")
        self.assertEqual(m.labels, [])
        self.assertRegex(ember.version(), r"^\d+\.\d+\.\d+$")
        self.assertIn(ember.kernel_table(), {"ref", "avx2", "avxvnni", "avx512", "neon", "neondot"})

    def test_logits_numpy_or_list_and_state_bit_identical(self):
        for kv in ("f32", "int8"):
            a = self.model.session(kv_type=kv)
            self.assertIsNone(a.logits)
            a.prefill(self.model.tokenize("ROMEO:"))
            state = a.save_state()
            b = ember.Session(self.model, kv_type=kv, n_batch=5)
            b.restore_state(state)
            a.decode(3)
            b.decode(3)
            la, lb = a.logits, b.logits
            self.assertEqual(len(la), 65)
            if ember._np is not None:
                self.assertEqual(la.dtype, ember._np.float32)
                self.assertTrue((la == lb).all())
            else:
                self.assertEqual(la, lb)
            self.assertEqual(a.n_past, 7)

    def test_logits_without_numpy(self):
        saved = ember._np
        try:
            ember._np = None
            s = self.model.session()
            s.prefill([1, 2, 3])
            logits = s.logits
            self.assertIsInstance(logits, list)
            self.assertEqual(len(logits), 65)
            self.assertTrue(all(isinstance(x, float) for x in logits))
        finally:
            ember._np = saved

    def test_trim_equals_fresh_prefill(self):
        ids = self.model.tokenize("ROMEO: what light through yonder")
        a = self.model.session()
        a.prefill(ids)
        a.trim(10)
        self.assertIsNone(a.logits)
        a.decode(5)
        b = self.model.session()
        b.prefill(ids[:10])
        b.decode(5)
        self.assertEqual(list(a.logits), list(b.logits))
        with self.assertRaises(ember.EmberError) as e:
            a.trim(100)
        self.assertEqual(e.exception.status, "invalid argument")

    def test_abort_callback(self):
        s = self.model.session(n_batch=16)
        calls = []
        s.set_abort(lambda: calls.append(1) or len(calls) > 2)
        with self.assertRaises(ember.AbortedError) as e:
            s.prefill([1] * 100)
        self.assertEqual(e.exception.status, "aborted")
        self.assertEqual(s.n_past, 32)
        s.set_abort(None)
        s.prefill([1] * 68)
        self.assertEqual(s.n_past, 100)
        s.set_abort(lambda: True)
        g = ember.generate(s, "", max_tokens=10)  # continues from the logits: asked first
        self.assertEqual(list(g), [])
        self.assertEqual(g.stop_reason, "aborted")

    def test_errors(self):
        with self.assertRaises(ember.EmberError) as e:
            ember.Model("/nonexistent/model.ember")
        self.assertEqual(e.exception.status, "not found")
        self.assertIn("/nonexistent/model.ember", str(e.exception))
        with open(MODEL, "rb") as f:
            data = f.read()
        with self.assertRaises(ember.EmberError) as e:
            ember.Model.from_bytes(data[:1000], "cut.ember")
        self.assertEqual(e.exception.status, "invalid file")
        with self.assertRaises(ember.EmberError):
            self.model.tokenize("\u00e9")  # not among the 65 characters
        with self.assertRaises(TypeError):
            self.model.tokenize(b"bytes")
        with self.assertRaises(ValueError):
            self.model.session(kv_type="f16")
        with self.assertRaises(ember.EmberError) as e:
            ember.Sampler(65, top_p=0)
        self.assertIn("top_p", str(e.exception))
        s = self.model.session()
        with self.assertRaises(ember.EmberError) as e:
            s.restore_state(b"not a state")
        self.assertEqual(e.exception.status, "invalid file")
        with self.assertRaises(ember.EmberError) as e:
            s.decode(65)
        self.assertIn("outside the vocabulary", str(e.exception))

    def test_close_and_with(self):
        with ember.Model(MODEL) as m, m.session() as s:
            s.prefill([1, 2])
            self.assertEqual(s.n_past, 2)
        self.assertIsNone(s._h)
        self.assertIsNone(m._h)
        s.close()  # twice: nothing to free
        with self.assertRaises(ember.EmberError) as e:  # a closed handle is NULL to the C API: an error
            s.decode(1)
        self.assertEqual(e.exception.status, "invalid argument")
        g = ember.generate(self.model, "ROMEO:", max_tokens=3, seed=1)
        g.close()
        self.assertEqual(list(g), [])  # a closed generation ends

    def test_state_of_another_model_is_refused(self):
        with open(MODEL, "rb") as f:
            data = bytearray(f.read())
        data[-100] ^= 1  # the last tensor's bytes: the same config, other weights
        other = ember.Model.from_bytes(data, "other.ember")
        self.assertNotEqual(other.fingerprint, self.model.fingerprint)
        s = self.model.session()
        s.prefill([1, 2, 3])
        t = other.session()
        with self.assertRaises(ember.EmberError) as e:
            t.restore_state(s.save_state())
        self.assertIn("other.ember", str(e.exception))
        self.assertIn(MODEL, str(e.exception))
        self.assertEqual(t.n_past, 0)

    def test_state_files(self):
        s = self.model.session()
        s.prefill([5, 6, 7])
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s.state")
            s.save_state_file(path)
            t = self.model.session()
            t.restore_state_file(path)
            self.assertEqual(t.tokens, [5, 6, 7])

    def test_sampler(self):
        greedy = ember.Sampler(4, temperature=0)
        self.assertEqual(greedy.sample([0.1, 3.0, -1.0, 2.0]), 1)
        a, b = ember.Sampler(65, seed=4), ember.Sampler(65, seed=4)
        logits = [float(i % 7) for i in range(65)]
        self.assertEqual([a.sample(logits) for _ in range(20)], [b.sample(logits) for _ in range(20)])
        with self.assertRaises(ValueError):
            a.sample([1.0, 2.0])


class ClassifyTest(unittest.TestCase):
    """A classifier fine-tuned by the tools (ember-quantize, ember-train finetune), checked against
    ember-classify."""

    @classmethod
    def setUpClass(cls):
        need(cls, ["ember-quantize", "ember-train", "ember-classify"])
        cls.dir = tempfile.TemporaryDirectory()
        d = cls.dir.name
        subprocess.run([tool("ember-quantize"), os.path.join(DATA, "golden", "nanogpt"), os.path.join(d, "nano.ember"),
                        "--type", "f32"], check=True, capture_output=True)
        with open(os.path.join(d, "ds.jsonl"), "w") as f:
            for i in range(1, 13):
                f.write(json.dumps({"text": "First Citizen speaks " + "a" * i, "label": "a", "split": "train"}) + "\n")
                f.write(json.dumps({"text": "we are accounted poor " + "b" * i, "label": "b", "split": "train"}) + "\n")
        cls.path = os.path.join(d, "ft.ember")
        subprocess.run([tool("ember-train"), "finetune", "--init", os.path.join(d, "nano.ember"), "--data",
                        os.path.join(d, "ds.jsonl"), "--out", cls.path, "--epochs", "1", "--eval-split", "train"],
                       check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_classify_equals_ember_classify(self):
        m = ember.Model(self.path)
        self.assertEqual(m.labels, ["a", "b"])
        for text in ("First Citizen", "we are poor"):
            probs = m.classify(text)
            self.assertAlmostEqual(sum(probs.values()), 1.0, places=5)
            out = subprocess.run([tool("ember-classify"), "-m", self.path, "--text", text, "--json"],
                                 check=True, capture_output=True).stdout.decode()
            j = json.loads(out.strip().splitlines()[-1])
            best = max(probs, key=probs.get)
            self.assertEqual(best, j["label"], out)
            self.assertAlmostEqual(probs[best], j["prob"], places=4)

    def test_no_head(self):
        with self.assertRaises(ember.EmberError):
            ember.Model(MODEL).classify("text")


if __name__ == "__main__":
    unittest.main()
