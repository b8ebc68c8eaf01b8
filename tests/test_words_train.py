"""scripts/words_train.py: its words never include a word of the word tests
or of words-devel, each word gets one training voice by a fixed rule, and
bad input is named."""
import contextlib
import importlib.util
import io
import os
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("words_train", os.path.join(HERE, "..", "scripts", "words_train.py"))
words_train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(words_train)
words_devel = words_train.words_devel


class WordsTrainTest(unittest.TestCase):
    def test_the_words_leave_out_the_word_tests_and_words_devel(self):
        words = words_train.training_words(5, 150)
        self.assertEqual(words, sorted(set(words)))
        self.assertGreater(len(words), 1000)
        self.assertFalse(set(words) & words_devel.excluded_words())
        self.assertFalse(set(words) & set(words_devel.choose_words(150)))
        for common in ("play", "alarm", "weather"):
            self.assertIn(common, words)

    def test_a_word_always_gets_the_same_training_voice(self):
        voices = ["espeak:en", "espeak:en-us", "espeak:en-029"]
        self.assertEqual(words_train.voice_of("alarm", voices), words_train.voice_of("alarm", list(voices)))
        self.assertEqual(len({words_train.voice_of(w, voices) for w in words_train.training_words(5, 150)}), 3)

    def test_bad_input_is_named(self):
        for argv in (["--min-count", "0"], ["--devel-count", "1"]):
            with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit) as e:
                words_train.parse_args(argv)
            self.assertEqual(e.exception.code, 2, argv)
        with tempfile.TemporaryDirectory() as tmp:
            missing = os.path.join(tmp, "none.jsonl")
            with self.assertRaises(SystemExit) as e:
                words_train.main(["--voices-of", missing, "--out", tmp, "--mix", tmp])
            self.assertIn("none.jsonl", str(e.exception.code))
            empty = os.path.join(tmp, "empty.jsonl")
            open(empty, "w").close()
            with self.assertRaises(SystemExit) as e:
                words_train.main(["--voices-of", empty, "--out", tmp, "--mix", tmp])
            self.assertIn("empty", str(e.exception.code))


if __name__ == "__main__":
    unittest.main()
