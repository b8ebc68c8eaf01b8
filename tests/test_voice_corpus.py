"""scripts/voice_corpus.py without Piper or Kokoro: arguments, manifests,
the variation draws, the phoneme map, resuming and the mixed manifest (the
voice replaced by a fake that writes a short WAV). Runs on the system
python3: the script imports piper, numpy and onnxruntime only when it
speaks."""
import contextlib
import importlib.util
import io
import json
import os
import sys
import tempfile
import unittest
import wave
import zipfile
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("voice_corpus", os.path.join(HERE, "..", "scripts", "voice_corpus.py"))
voice_corpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(voice_corpus)


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


class FakeVoice:
    """Counts what it speaks; each clip is 0.5 s of silence at 22,050 Hz."""

    def __init__(self):
        self.spoken = []

    def choose(self, item_id):
        return "v", {"id": item_id}

    def speak(self, voice, text, wav_path, scales):
        self.spoken.append(text)
        with wave.open(wav_path, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(22050)
            w.writeframes(b"\0\0" * 11025)


class PiperCorpusTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.root = self.dir.name
        self.fake = FakeVoice()
        for name, fake in (("load_voice", lambda args: self.fake), ("speak", self.fake.speak)):
            patcher = mock.patch.object(voice_corpus, name, fake)
            patcher.start()
            self.addCleanup(patcher.stop)
        os.makedirs(os.path.join(self.root, "corpus", "train", "audio"))
        for i in range(10):
            write_lines(os.path.join(self.root, "corpus", "train", "audio", f"u{i}.wav"), [""])
        self.manifest = os.path.join(self.root, "corpus", "train", "manifest.jsonl")
        write_lines(self.manifest, [json.dumps({"id": f"u{i}", "audio": f"audio/u{i}.wav", "text": f"text {i}",
                                                "voice": "espeak:en", "duration": 1.0, "intent": "x"})
                                    for i in range(10)])
        self.voice = os.path.join(self.root, "v.onnx")
        write_lines(self.voice, [""])
        write_lines(self.voice + ".json", ["{}"])

    def tearDown(self):
        self.dir.cleanup()

    def run_script(self, *extra):
        out = os.path.join(self.root, "corpus", "train_piper")
        mix = os.path.join(self.root, "corpus", "train_mixed")
        argv = ["--voice", self.voice, "--manifest", self.manifest, "--out", out, "--every", "4", "--mix", mix, *extra]
        with contextlib.redirect_stdout(io.StringIO()):
            voice_corpus.main(argv)
        return out, mix

    def assert_audio_found_from(self, mix, lines):
        """Every line's audio path, relative to the mix folder, names a file."""
        for line in lines:
            self.assertTrue(os.path.isfile(os.path.join(mix, line["audio"])), line["audio"])

    def read(self, path):
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def test_speaks_every_kth_text_and_mixes_with_paths_relative_to_the_mix(self):
        out, mix = self.run_script()
        self.assertEqual(self.fake.spoken, ["text 0", "text 4", "text 8"])
        lines = self.read(os.path.join(out, "manifest.jsonl"))
        self.assertEqual([l["id"] for l in lines], ["piper-u0", "piper-u4", "piper-u8"])
        self.assertEqual(lines[0]["voice"], "piper:v")
        self.assertEqual(lines[0]["intent"], "x")  # the source's other fields are kept
        self.assertAlmostEqual(lines[0]["duration"], 0.5)
        mixed = self.read(os.path.join(mix, "manifest.jsonl"))
        self.assertEqual(len(mixed), 13)
        self.assertEqual(mixed[0]["audio"], os.path.join("..", "train", "audio", "u0.wav"))
        self.assertEqual(mixed[10]["audio"], os.path.join("..", "train_piper", "audio", "piper-u0.wav"))
        self.assert_audio_found_from(mix, mixed)

    def test_the_mix_can_start_from_another_manifest(self):
        self.run_script()
        other = os.path.join(self.root, "corpus", "train_mixed", "manifest.jsonl")
        mix2 = os.path.join(self.root, "corpus", "train_mixed2")
        self.fake.spoken.clear()
        with contextlib.redirect_stdout(io.StringIO()):
            voice_corpus.main(["--voice", self.voice, "--manifest", self.manifest, "--every", "4", "--offset", "2",
                               "--out", os.path.join(self.root, "corpus", "train_more"),
                               "--mix", mix2, "--mix-base", other])
        self.assertEqual(self.fake.spoken, ["text 2", "text 6"])
        mixed = self.read(os.path.join(mix2, "manifest.jsonl"))
        self.assertEqual(len(mixed), 15)  # 10 source + 3 first-run lines, then 2 new ones
        self.assertEqual(mixed[10]["audio"], os.path.join("..", "train_piper", "audio", "piper-u0.wav"))
        self.assertEqual(mixed[14]["audio"], os.path.join("..", "train_more", "audio", "piper-u6.wav"))
        self.assert_audio_found_from(mix2, mixed)

    def test_a_second_run_speaks_nothing_again(self):
        self.run_script()
        self.fake.spoken.clear()
        out, _ = self.run_script()
        self.assertEqual(self.fake.spoken, [])
        self.assertEqual(len(self.read(os.path.join(out, "manifest.jsonl"))), 3)

    def test_a_clip_that_another_voice_spoke_is_spoken_again(self):
        out, _ = self.run_script()
        manifest = os.path.join(out, "manifest.jsonl")
        lines = self.read(manifest)
        lines[1]["voice"] = "kokoro:jm_kumo"  # u4's clip, spoken by a speaker since held out
        write_lines(manifest, [json.dumps(line) for line in lines])
        self.fake.spoken.clear()
        self.run_script()
        self.assertEqual(self.fake.spoken, ["text 4"])
        self.assertEqual(self.read(manifest)[1]["voice"], "piper:v")

    def test_limit(self):
        self.run_script("--limit", "2")
        self.assertEqual(self.fake.spoken, ["text 0", "text 4"])

    def test_the_variation_is_a_function_of_seed_and_id_within_its_ranges(self):
        a = voice_corpus.variation(0, "u1")
        self.assertEqual(a, voice_corpus.variation(0, "u1"))
        self.assertNotEqual(a, voice_corpus.variation(1, "u1"))
        self.assertNotEqual(a, voice_corpus.variation(0, "u2"))
        for seed in range(50):
            v = voice_corpus.variation(seed, "u")
            self.assertTrue(0.85 <= v["length_scale"] <= 1.2)
            self.assertTrue(0.45 <= v["noise_scale"] <= 0.85)
            self.assertTrue(0.6 <= v["noise_w_scale"] <= 1.0)

    def test_offset_starts_the_every_kth_choice_later_and_kokoro_names_its_clips(self):
        styles = os.path.join(self.root, "voices.npz")
        for path in (styles, os.path.join(self.root, "vocab.json")):
            write_lines(path, [""])
        out, _ = self.run_script("--offset", "1", "--engine", "kokoro", "--styles", styles)
        self.assertEqual(self.fake.spoken, ["text 1", "text 5", "text 9"])
        lines = self.read(os.path.join(out, "manifest.jsonl"))
        self.assertEqual([l["id"] for l in lines], ["kokoro-u1", "kokoro-u5", "kokoro-u9"])
        self.assertEqual(lines[0]["voice"], "kokoro:v")

    def test_several_offsets_speak_each_offset_of_every_block_in_order(self):
        self.run_script("--offset", "3,1")
        self.assertEqual(self.fake.spoken, ["text 1", "text 3", "text 5", "text 7", "text 9"])

    def test_the_kokoro_draw_is_a_function_of_seed_and_id_over_every_speaker(self):
        speakers = ["a", "b", "c"]
        a = voice_corpus.kokoro_variation(0, "u1", speakers)
        self.assertEqual(a, voice_corpus.kokoro_variation(0, "u1", speakers))
        drawn = [voice_corpus.kokoro_variation(seed, "u", speakers) for seed in range(60)]
        self.assertEqual({d["speaker"] for d in drawn}, set(speakers))
        for d in drawn:
            self.assertTrue(1 / 1.2 <= d["speed"] <= 1 / 0.85)

    def test_a_speaker_pool_redraws_only_the_clips_of_the_speakers_outside_it(self):
        speakers = ["a", "b", "c"]
        ids = [f"u{i}" for i in range(90)]
        everyone = {i: voice_corpus.kokoro_variation(0, i, speakers) for i in ids}
        held_out = {i: voice_corpus.kokoro_variation(0, i, speakers, ["a", "b"]) for i in ids}
        self.assertIn("c", {d["speaker"] for d in everyone.values()})
        for i in ids:
            if everyone[i]["speaker"] == "c":
                self.assertIn(held_out[i]["speaker"], ("a", "b"))
            else:
                self.assertEqual(held_out[i], everyone[i])
        alone = [voice_corpus.kokoro_variation(0, i, speakers, ["b"]) for i in ids]
        self.assertEqual({d["speaker"] for d in alone}, {"b"})
        self.assertEqual([d["speed"] for d in alone], [everyone[i]["speed"] for i in ids])

    def test_espeak_phonemes_become_kokoros_symbols(self):
        # "wake me up at seven", "jazz church boy now go", "bird about better",
        # as espeak-ng writes them for en-us.
        self.assertEqual(voice_corpus.espeak_to_kokoro("wˈeɪk mˌiːʲ ˌʌp æt sˈɛvən"), "wˈAk mˌi ˌʌp æt sˈɛvən")
        self.assertEqual(voice_corpus.espeak_to_kokoro("dʒˈæz tʃˈɜːtʃ bˈɔɪ nˈaʊ ɡˈoʊ"), "ʤˈæz ʧˈɜʧ bˈY nˈW ɡˈO")
        self.assertEqual(voice_corpus.espeak_to_kokoro("bˈɜːd ɐbˌaʊt bˈɛɾɚ"), "bˈɜd əbˌWt bˈɛɾəɹ")

    def test_a_text_past_kokoros_context_is_cut_with_a_warning(self):
        with contextlib.redirect_stderr(io.StringIO()) as err:
            self.assertEqual(voice_corpus.fit_kokoro_tokens(list(range(508)), "short"), list(range(508)))
        self.assertEqual(err.getvalue(), "")
        with contextlib.redirect_stderr(io.StringIO()) as err:
            self.assertEqual(voice_corpus.fit_kokoro_tokens(list(range(600)), "long text"), list(range(508)))
        self.assertIn("'long text'... has 600 phoneme tokens; the clip says the first 508", err.getvalue())

    def expect_exit(self, needle, *argv):
        with self.assertRaises(SystemExit) as e, contextlib.redirect_stderr(io.StringIO()) as err:
            voice_corpus.main(list(argv))
        message = str(e.exception.code) + err.getvalue()
        self.assertIn(needle, message)
        self.assertNotEqual(e.exception.code, 0)

    def test_bad_input_names_the_file_line_or_flag(self):
        out = os.path.join(self.root, "out")
        self.expect_exit("--every must be >= 1", "--voice", self.voice, "--manifest", self.manifest, "--out", out,
                         "--every", "0")
        self.expect_exit("--threads must be >= 1", "--voice", self.voice, "--manifest", self.manifest, "--out", out,
                         "--threads", "0")
        for offset in ("-1", "4", "1,4"):
            self.expect_exit("--offset must be within 0..3", "--voice", self.voice, "--manifest", self.manifest,
                             "--out", out, "--every", "4", "--offset", offset)
        self.expect_exit("not a comma-separated list", "--voice", self.voice, "--manifest", self.manifest,
                         "--out", out, "--offset", "1;2")
        self.expect_exit("--engine kokoro needs --styles", "--engine", "kokoro", "--voice", self.voice,
                         "--manifest", self.manifest, "--out", out)
        missing = os.path.join(self.root, "missing.jsonl")
        self.expect_exit(missing + ": no Kokoro file there", "--engine", "kokoro", "--voice", self.voice,
                         "--styles", missing, "--manifest", self.manifest, "--out", out)
        styles = os.path.join(self.root, "styles.npz")
        with zipfile.ZipFile(styles, "w") as z:
            for name in ("jf_alpha", "jm_kumo"):
                z.writestr(name + ".npy", b"")
        write_lines(os.path.join(self.root, "vocab.json"), ["{}"])
        self.expect_exit(styles + ": no speaker jm_kuma (it has jf_alpha, jm_kumo)", "--engine", "kokoro",
                         "--voice", self.voice, "--styles", styles, "--speakers", "jm_kuma,jm_kumo",
                         "--manifest", self.manifest, "--out", out)
        self.expect_exit(self.voice + ": not a style file", "--engine", "kokoro", "--voice", self.voice,
                         "--styles", self.voice, "--speakers", "jm_kumo", "--manifest", self.manifest, "--out", out)
        self.expect_exit("--speakers is for --engine kokoro", "--voice", self.voice, "--speakers", "jm_kumo",
                         "--manifest", self.manifest, "--out", out)
        self.expect_exit(missing + ": no such manifest", "--voice", self.voice, "--manifest", missing, "--out", out)
        self.expect_exit("no Piper voice there", "--voice", missing, "--manifest", self.manifest, "--out", out)
        bad = os.path.join(self.root, "bad.jsonl")
        write_lines(bad, ['{"id": "a", "text": "t"}', '{"id": "b"}'])
        self.expect_exit(bad + ":2: not a manifest line", "--voice", self.voice, "--manifest", bad, "--out", out)
        empty = os.path.join(self.root, "empty.jsonl")
        write_lines(empty, [])
        self.expect_exit(empty + ": holds no manifest lines", "--voice", self.voice, "--manifest", empty, "--out", out)
        self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    unittest.main()
