#!/usr/bin/env python3
"""make_wordpiece_ref.py — the reference for BERT WordPiece tokenization
(engine/text/tokenizer_wordpiece.c), written to tests/ref/wordpiece_ref.json.

Debian ships neither transformers nor tokenizers, so the reference is Hugging
Face BertTokenizer's algorithm (BasicTokenizer + WordpieceTokenizer, the slow
Python tokenizer) written out here on Python's own str and unicodedata:

  clean       drop U+0000, U+FFFD and every category C* character but \\t \\n \\r;
              \\t \\n \\r and category Zs become " "
  CJK         " " around each codepoint of HF's _is_chinese_char ranges
  words       str.split() (whitespace_tokenize)
  per word    a special token ([UNK] [SEP] ...) stays as it is (never_split);
              else str.lower() when do_lower_case, NFD then drop Mn when
              strip_accents (None: as do_lower_case), then split around each
              punctuation character (ASCII 33-47, 58-64, 91-96, 123-126 and
              category P*)
  per piece   more than 100 characters -> [UNK]; else greedy longest match
              first, "##" before every piece but the first; no match -> the
              whole piece is [UNK]
  ids         [CLS] + pieces + [SEP]; vocab.txt ids = line numbers, the last of
              duplicate lines wins (a dict filled line by line)

Texts are bytes (hex in the JSON); they are decoded with
errors="replace", so invalid UTF-8 becomes U+FFFD, which cleaning drops.
The corpus: sentences in several scripts (Latin with accents, Cyrillic,
Greek with final sigma, CJK, Hangul, Arabic, Hebrew, Devanagari, emoji),
punctuation, control characters, invalid UTF-8, and seeded random strings
drawn from the same blocks. The vocabulary is built from the corpus (whole
words, prefixes, "##" suffixes, single characters) minus a few characters, so
that [UNK] and "##" continuations both occur. Four tokenizer settings:
uncased (the defaults), cased, lower-case without accent stripping, and
without CJK splitting.

Run from the repository root with plain python3:

    python3 tests/ref/make_wordpiece_ref.py
"""
import json
import random
import unicodedata

OUT = "tests/ref/wordpiece_ref.json"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def is_control(c):
    if c in "\t\n\r":
        return False
    return unicodedata.category(c).startswith("C")


def is_whitespace(c):
    return c in " \t\n\r" or unicodedata.category(c) == "Zs"


def is_punct(c):
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def is_cjk(cp):
    return any(lo <= cp <= hi for lo, hi in [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
                                            (0x2A700, 0x2B73F), (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF),
                                            (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)])


def basic_tokens(text, lower, strip, chinese):
    cleaned = []
    for c in text:
        if ord(c) in (0, 0xFFFD) or is_control(c):
            continue
        cleaned.append(" " if is_whitespace(c) else c)
    text = "".join(cleaned)
    if chinese:
        text = "".join(" %s " % c if is_cjk(ord(c)) else c for c in text)
    out = []
    for word in text.split():
        if word in SPECIALS:
            out.append(word)
            continue
        if lower:
            word = word.lower()
        if strip:
            word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
        piece = ""
        for c in word:
            if is_punct(c):
                if piece:
                    out.append(piece)
                out.append(c)
                piece = ""
            else:
                piece += c
        if piece:
            out.append(piece)
    return out


def wordpiece(token, vocab):
    if len(token) > 100:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(token):
        for end in range(len(token), start, -1):
            sub = ("##" if start else "") + token[start:end]
            if sub in vocab:
                pieces.append(sub)
                start = end
                break
        else:
            return ["[UNK]"]
    return pieces


def encode(raw, vocab, lower=True, strip=None, chinese=True):
    text = raw.decode("utf-8", errors="replace")
    if strip is None:
        strip = lower
    toks = ["[CLS]"]
    for w in basic_tokens(text, lower, strip, chinese):
        toks.extend([w] if w in SPECIALS else wordpiece(w, vocab))
    toks.append("[SEP]")
    return [vocab[t] for t in toks]


SENTENCES = [
    "Hello, world! This is a simple test.",
    "The movie was absolutely wonderful; I'd watch it again.",
    "Unaffable people aren't unbelievably UNHAPPY... are they?",
    "Café crème, naïve façade, résumé, Ångström, Øresund, Łódź, Straße.",
    "ÉCOLE élève Ürün Ğ ş İstanbul ıı DİKKAT",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "Ёжик в тумане — ЁЛКА, ёлка.",
    "Καλημέρα κόσμε! ΟΔΥΣΣΕΥΣ ΟΔΟΣ. Σοφία, ΣΟΦΟΣ' ΑΣ Σ",
    "Ἀθῆναι ἐστὶ πόλις.",
    "我爱自然语言处理。今天天气很好！",
    "日本語のテキスト、カタカナとひらがな。",
    "한국어 문장입니다. 안녕하세요!",
    "مرحبا بالعالم! هذه جملة عربية.",
    "שלום עולם, זה משפט בעברית.",
    "नमस्ते दुनिया। यह हिंदी है।",
    "Emoji: 😀👍🏽 🇩🇪 ❤️ family 👨‍👩‍👧",
    "Punctuation: «quotes» „Anführung“ ‘single’ (parens) [brackets] {braces} ¿qué? ¡sí!",
    "Symbols $100 + 5% = ~^`|\\ @home #tag & more * / _ - – —",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u2003emspace\u3000ideographic space",
    "line\u2028separator and\u2029paragraph",
    "control\x01chars\x07and\x1bescape\x7fdel \x85nel",
    "zero\u200bwidth\u200cjoiners\u200d and soft\u00adhyphen",
    "nul\x00byte and replacement\ufffdchar",
    "[CLS] tokens [SEP] inside [UNK] text [MASK] and [sep] lower x[SEP]y",
    "a" * 120 + " short",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "e\u0301 combining: cafe\u0301 n\u0303 a\u030a\u0323",
    "Ⅻ ① ＡＢＣ ﬁ ﬂ ½ ² ℃ ™",
    "",
    "   ",
    "UPPER lower MiXeD CaSe",
    "123 4.56 7,890 1st 2nd",
    "Ω ω Ώ ΐ ΰ",
    "ǅemal ǈubljana Ǌ",
    "under_score snake_case kebab-case CamelCase",
]

INVALID_UTF8 = [
    b"bad \xff byte",
    b"truncated \xe2\x82 euro",
    b"overlong \xc0\xaf slash",
    b"surrogate \xed\xa0\x80 half",
    b"\xf0\x80\x80A after",
    b"caf\xc3\xa9 ok \xc3 lone lead",
    b"\x80\x80\x80 continuations",
]

BLOCKS = [(0x20, 0x7E), (0xA0, 0x17F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF),
          (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F), (0x1100, 0x11FF), (0x2000, 0x206F),
          (0x3000, 0x303F), (0x3040, 0x30FF), (0x4E00, 0x4E80), (0xAC00, 0xAC40), (0xF900, 0xF910),
          (0xFF00, 0xFF60), (0x1F300, 0x1F64F), (0x20000, 0x20010), (0x0, 0x1F)]


def random_texts(rng, n):
    out = []
    for _ in range(n):
        chars = []
        for _ in range(rng.randint(1, 40)):
            r = rng.random()
            if r < 0.25:
                chars.append(" ")
            elif r < 0.3:
                chars.append("\u03a3")
            else:
                lo, hi = rng.choice(BLOCKS)
                cp = rng.randint(lo, hi)
                if 0xD800 <= cp <= 0xDFFF:
                    continue
                chars.append(chr(cp))
        out.append("".join(chars).encode("utf-8"))
    return out


def build_vocab(texts, rng):
    words = {}
    for t in texts:
        for w in basic_tokens(t.decode("utf-8", errors="replace"), True, True, True):
            words[w] = words.get(w, 0) + 1
        for w in basic_tokens(t.decode("utf-8", errors="replace"), False, False, True):
            words[w] = words.get(w, 0) + 1
        for w in basic_tokens(t.decode("utf-8", errors="replace"), True, False, False):
            words[w] = words.get(w, 0) + 1
    vocab = list(SPECIALS) + ["[unused0]"]
    seen = set(vocab)

    def add(tok):
        if tok not in seen:
            seen.add(tok)
            vocab.append(tok)

    left_out = set("ÿqЖ가")   # characters the vocabulary lacks: [UNK]
    for w in sorted(words):
        if any(c in left_out for c in w):
            continue
        if rng.random() < 0.4:
            add(w)
        if len(w) > 3:
            add(w[:rng.randint(2, 3)])
            add("##" + w[-rng.randint(2, 3):])
        for c in w:
            add(c)
            add("##" + c)
    for extra in ["un", "##aff", "##able", "##ing", "##s", "the", "[unused1]"]:
        add(extra)
    vocab.append("the")      # a duplicate line: the later id is the one that counts
    return vocab


def main():
    rng = random.Random(20261206)
    texts = [s.encode("utf-8") for s in SENTENCES] + INVALID_UTF8 + random_texts(rng, 150)
    vocab_list = build_vocab(texts, rng)
    vocab = {}
    for i, tok in enumerate(vocab_list):
        vocab[tok] = i
    settings = [
        {"name": "uncased", "config": {}, "args": {}},
        {"name": "cased", "config": {"do_lower_case": False}, "args": {"lower": False}},
        {"name": "lower_keep_accents", "config": {"do_lower_case": True, "strip_accents": False},
         "args": {"lower": True, "strip": False}},
        {"name": "no_cjk", "config": {"tokenize_chinese_chars": False}, "args": {"chinese": False}},
    ]
    cases = []
    for s in settings:
        cases.append({"name": s["name"], "config": s["config"],
                      "ids": [encode(t, vocab, **s["args"]) for t in texts]})
    ref = {"vocab_txt": "\n".join(vocab_list) + "\n",
           "texts_hex": [t.hex() for t in texts],
           "decode_uncased": [" ".join(vocab_list[i] for i in ids).replace(" ##", "").strip()
                              for ids in cases[0]["ids"]],
           "cases": cases}
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False, indent=0)
    n_unk = sum(ids.count(vocab["[UNK]"]) for c in cases for ids in c["ids"])
    n_cont = sum(1 for c in cases for ids in c["ids"] for i in ids if vocab_list[i].startswith("##"))
    print("wrote %s: %d texts x %d settings, vocab %d, [UNK] %d, ## pieces %d"
          % (OUT, len(texts), len(cases), len(vocab_list), n_unk, n_cont))


if __name__ == "__main__":
    main()
