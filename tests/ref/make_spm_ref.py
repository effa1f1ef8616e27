#!/usr/bin/python3
"""make_spm_ref.py — writes tests/ref/spm/, the SentencePiece exactness
fixture that tests/unit/test_spm.c checks engine/text/tokenizer_sp.c (our C
shim over Debian's libsentencepiece) against Debian's own CLI.

    /usr/bin/python3 tests/ref/make_spm_ref.py      (needs: sentencepiece, fortunes*)

1. Trains a small unigram model (vocab 1500) with Debian's `spm_train` on a
   multi-script corpus: lines of the fortunes packages (English, German,
   Russian, Bulgarian, Czech, Chinese) plus a few Greek / Arabic / emoji lines
   written below. -> spm/tiny.model (also the vocabulary of tests/ref/marian_tiny)
2. Encodes a test corpus (spm/test.txt: held-out fortune lines of each
   language, the hand-written lines, and edge cases: unknown characters,
   repeated and leading/trailing spaces, digits, full-width forms that NFKC
   folds) with Debian's `spm_encode`, once as pieces and once as ids.
   -> spm/test.pieces, spm/test.ids (one line per test line), and decodes
   the ids back with `spm_decode` -> spm/test.decoded
Nothing here is computed by our code: the expectations are the CLI's output.
"""
import os
import random
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "spm")
FORT = "/usr/share/games/fortunes"
SOURCES = {   # language -> fortune files (plain UTF-8, "%" between fortunes)
    "en": ["fortunes", "wisdom", "science", "computers", "literature"],
    "de": ["de/anekdoten", "de/bahnhof", "de/sprichworte", "de/wusstensie", "de/zitate"],
    "ru": ["ru/2001.03", "ru/2001.04", "ru/2001.05"],
    "bg": ["bg/bgproverb", "bg/intproverb", "bg/others"],
    "cs": ["cs/citace", "cs/chesterton"],
    "zh": ["tang300", "song100", "chinese"],
}
HANDWRITTEN = [
    "Η γλώσσα μου έδωσαν ελληνική, το σπίτι φτωχικό στις αμμουδιές του Ομήρου.",
    "Καλημέρα σας, τι κάνετε σήμερα; Ο καιρός είναι πολύ καλός.",
    "Σιγά σιγά γίνεται η αγουρίδα μέλι.",
    "اللغة العربية جميلة جدا، وهي لغة القرآن الكريم.",
    "صباح الخير، كيف حالك اليوم؟",
    "العلم نور والجهل ظلام.",
    "I love pizza 🍕 and coffee ☕ every morning! 😀😀",
    "Party time 🎉🎉🎉 with friends 👍 and family ❤️.",
    "Weather: ☀️ then 🌧️, temperature 21°C.",
]
TEST_EXTRA = [
    "",
    " ",
    "   leading and trailing spaces   ",
    "several    inner     spaces",
    "Numbers 1234567890 and 3.14159, 42%.",
    "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ and ①②③ fold under NFKC",
    "Unknown scripts: ქართული, 日本語のテキスト, 한국어 문장, עברית.",
    "Mixed: Hello Мир Welt 世界 κόσμος عالم 🌍!",
    "tabs\there\tand\u00a0no-break\u2009thin spaces",
    "a",
    "Ünïcödé àccênts ç ñ ß œ æ ø å",
    "🤖🤖🤖",
]


def fortune_lines(path):
    with open(os.path.join(FORT, path), encoding="utf-8", errors="replace") as f:
        text = f.read()
    out = []
    for line in text.splitlines():
        line = line.replace("\x1b", "").strip()
        if "[" in line and "m" in line:   # tang300/song100 colour escapes: "[32m...[m"
            import re
            line = re.sub(r"\[[0-9;]*m", "", line).strip()
        if line and line != "%" and len(line) >= 4:
            out.append(line)
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(8)
    train, test = [], []
    for lang, files in SOURCES.items():
        lines = []
        for p in files:
            if os.path.exists(os.path.join(FORT, p)):
                lines += fortune_lines(p)
        rng.shuffle(lines)
        test += lines[:6]
        train += lines[6:6 + (150 if lang == "zh" else 1200)]   # Chinese: few lines, or its characters fill the vocabulary
    train += HANDWRITTEN * 3
    test += HANDWRITTEN[::3] + TEST_EXTRA
    model_path = os.path.join(OUT, "tiny.model")
    # spm_train is not bit-reproducible, and marian_tiny copies this model:
    # it is trained only when absent (delete it to retrain, then rerun make_marian_ref.py)
    with tempfile.TemporaryDirectory() as td:
        corpus = os.path.join(td, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write("\n".join(train) + "\n")
        if not os.path.exists(model_path):
            subprocess.run(["spm_train", "--input=" + corpus, "--model_prefix=" + os.path.join(td, "tiny"),
                            "--model_type=unigram", "--vocab_size=1500", "--character_coverage=0.995",
                            "--num_threads=1", "--seed_sentencepiece_size=20000", "--minloglevel=2"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            os.replace(os.path.join(td, "tiny.model"), model_path)
    with open(model_path, "rb") as f:
        model = f.read()
    with open(os.path.join(OUT, "test.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(test) + "\n")
    for fmt, name in (("piece", "test.pieces"), ("id", "test.ids")):
        r = subprocess.run(["spm_encode", "--model=" + os.path.join(OUT, "tiny.model"), "--output_format=" + fmt,
                            "--input=" + os.path.join(OUT, "test.txt")], check=True, capture_output=True)
        lines = r.stdout.decode("utf-8").split("\n")[:-1]
        assert len(lines) == len(test), (len(lines), len(test))
        with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    r = subprocess.run(["spm_decode", "--model=" + os.path.join(OUT, "tiny.model"), "--input_format=id",
                        "--input=" + os.path.join(OUT, "test.ids")], check=True, capture_output=True)
    lines = r.stdout.decode("utf-8").split("\n")[:-1]
    assert len(lines) == len(test), (len(lines), len(test))
    with open(os.path.join(OUT, "test.decoded"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", OUT, len(train), "training lines,", len(test), "test lines,", len(model), "bytes of model")


if __name__ == "__main__":
    main()
