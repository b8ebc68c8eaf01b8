"""scripts/words_devel.py's word choice: fixed, common in SLURP's training
text, and never a word of the word tests (kws-35, klettres-data, letters)."""
import collections
import importlib.util
import os
import re
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("words_devel", os.path.join(HERE, "..", "scripts", "words_devel.py"))
words_devel = importlib.util.module_from_spec(spec)
spec.loader.exec_module(words_devel)


class WordsDevelTest(unittest.TestCase):
    def test_the_choice_is_fixed_common_and_disjoint_from_the_word_tests(self):
        words = words_devel.choose_words(150)
        self.assertEqual(words, words_devel.choose_words(150))
        self.assertEqual(len(set(words)), 150)
        excluded = words_devel.excluded_words()
        for test_word in ("yes", "no", "car", "dog", "sky", "a", "z"):
            self.assertIn(test_word, excluded)
        self.assertFalse(set(words) & excluded)
        counts = collections.Counter()
        with open(os.path.join(HERE, "..", "data", "slurp", "lm.txt"), encoding="utf-8") as f:
            for line in f:
                counts.update(re.findall(r"[a-z]+", line.lower()))
        for word in words:
            self.assertGreaterEqual(counts[word], 20, word)
            self.assertTrue(3 <= len(word) <= 7, word)

    def test_a_larger_set_extends_the_smaller_one(self):
        self.assertTrue(set(words_devel.choose_words(50)) <= set(words_devel.choose_words(150)))


if __name__ == "__main__":
    unittest.main()
