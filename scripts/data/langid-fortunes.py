#!/usr/bin/env python3
"""langid-fortunes.py — a language-identification dataset from the fortunes in
Debian's language packages (python3 standard library only).

    scripts/data/langid-fortunes.py OUTDIR [--fortunes /usr/share/games/fortunes]

Writes OUTDIR/train.tsv and OUTDIR/test.tsv, one "label<TAB>text" per line,
labels ISO 639-1 codes. Each fortune is one text: the "%" separators split
them, attribution lines ("-- Author") and lines that are mostly not letters
(ASCII art, code, tables) are dropped, ANSI colour escapes, IRC nicknames
("<@nick>") and times removed, the rest joined with single spaces. Lines in
another language than the collection's are dropped where that is visible:
in the Chinese, Russian and Bulgarian collections a line without a Han or
Cyrillic letter; in the others a line of 3+ words most of which are common
English words (the 300 most frequent words of the English fortunes that are
not also among the 2000 most frequent of the collection's own language), as
in the Polish IRC quotes. Texts are de-duplicated (the cz/ directory repeats
cs/), texts under 8 characters dropped, and long fortunes cut into pieces of
at most ~600 characters at word boundaries. The split is deterministic: a
text goes to test.tsv when the MD5 of its text is 0 mod 10 (10%), so the same
packages always give the same two files. Sources (package: files):

  fortunes, fortunes-min  en  the English collections at the top level
  fortunes-de             de  de/*
  fortunes-es             es  es/*, es/off/*
  fortunes-it             it  it/*
  fortunes-ru             ru  ru/*
  fortunes-pl             pl  pl/*
  fortunes-cs             cs  cs/* except klasik-sk;  sk  sk/klasik-sk
  fortunes-br             pt  brasil
  fortunes-ga             ga  ga/proverbs
  fortunes-eo             eo  eo/proverbaro
  fortunes-bg             bg  bg/*
  fortunes-zh             zh  chinese, song100, tang300

A language whose package is missing is skipped with a warning (install them
with scripts/install-deps.sh --data).
"""
import hashlib
import os
import re
import sys
import unicodedata

# top-level English collections of fortunes + fortunes-min (art, ascii-art and
# translate-me left out: pictures and texts waiting for translation)
EN_FILES = """computers cookie debian definitions disclaimer drugs education ethnic food fortunes goedel
humorists kids knghtbrd law linux linuxcookie literature love magic medicine men-women miscellaneous
news paradoxum people perl pets platitudes politics pratchett riddles science songs-poems sports
startrek tao wisdom work zippy""".split()

MAX_PIECE = 600
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
IRC = re.compile(r"<[@+%]?[\w|^`\[\]{}\\-]+>|\b\d{1,2}:\d{2}(:\d{2})?\b|#\w+")
WORD = re.compile(r"[^\W\d_]+")
SCRIPT = {"zh": re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]"), "ru": re.compile(r"[\u0400-\u04ff]"),
          "bg": re.compile(r"[\u0400-\u04ff]")}
ATTRIBUTION = re.compile(r"^\s*(--|―|—|~~)\s*\S")


def sources(root):
    """(label, path) for every collection, the .u8 version where there is one."""
    def files_in(sub, skip=()):
        d = os.path.join(root, sub)
        if not os.path.isdir(d):
            return []
        out = []
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if name.endswith((".dat", ".u8")) or name in skip or os.path.isdir(p):
                continue
            out.append(p)
        return out

    out = [("en", os.path.join(root, f)) for f in EN_FILES]
    for lab, sub, skip in (("de", "de", ()), ("es", "es", ()), ("es", "es/off", ()), ("it", "it", ()),
                           ("ru", "ru", ()), ("pl", "pl", ()), ("cs", "cs", ("klasik-sk",)), ("sk", "sk", ()),
                           ("bg", "bg", ())):
        out += [(lab, p) for p in files_in(sub, skip)]
    out += [("pt", os.path.join(root, "brasil")), ("ga", os.path.join(root, "ga/proverbs")),
            ("eo", os.path.join(root, "eo/proverbaro"))]
    out += [("zh", os.path.join(root, f)) for f in ("chinese", "song100", "tang300")]
    found = []
    for lab, p in out:
        if os.path.isfile(p + ".u8") and os.path.getsize(p + ".u8") > 0:   # pl/*.u8 are empty
            p = p + ".u8"
        if os.path.isfile(p):
            found.append((lab, p))
    return found


def read_text(path):
    raw = open(path, "rb").read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # the few files without a .u8 twin that are not UTF-8 are Latin-1
        return raw.decode("latin-1")


def letter_ratio(line):
    s = line.strip()
    if not s:
        return 1.0
    letters = sum(1 for c in s if c.isalpha() or c.isspace())
    return letters / len(s)


def foreign(lab, line, english):
    """1 when the line is visibly not in the collection's language."""
    if lab in SCRIPT:
        return not SCRIPT[lab].search(line)
    if lab == "en":
        return False
    words = [w.lower() for w in WORD.findall(line)]
    return len(words) >= 3 and sum(w in english[lab] for w in words) * 2 > len(words)


def clean(fortune, lab=None, english=None):
    """The prose of one fortune as one line, or '' when nothing is left."""
    kept = []
    for line in ANSI.sub("", fortune).split("\n"):
        if ATTRIBUTION.match(line):
            continue
        line = IRC.sub(" ", line)
        if letter_ratio(line) < 0.75:   # ASCII art, code, tables
            continue
        if english is not None and foreign(lab, line, english):
            continue
        kept.append(line.strip())
    text = " ".join(x for x in kept if x)
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()
    return text


def pieces(text):
    """Cuts a long text at word boundaries into pieces of at most MAX_PIECE characters."""
    while len(text) > MAX_PIECE:
        cut = text.rfind(" ", MAX_PIECE // 2, MAX_PIECE)
        if cut < 0:
            cut = MAX_PIECE
        yield text[:cut].strip()
        text = text[cut:].strip()
    if text:
        yield text


def main():
    args = sys.argv[1:]
    root = "/usr/share/games/fortunes"
    if "--fortunes" in args:
        i = args.index("--fortunes")
        root = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1:
        sys.exit(__doc__)
    outdir = args[0]
    os.makedirs(outdir, exist_ok=True)
    # pass 1: word frequencies of each language, for the English-line filter
    fortunes = [(lab, f) for lab, path in sources(root) for f in re.split(r"^%\s*$", read_text(path), flags=re.M)]
    freq = {}
    for lab, f in fortunes:
        c = freq.setdefault(lab, {})
        for w in WORD.findall(clean(f).lower()):
            c[w] = c.get(w, 0) + 1
    top = {lab: [w for w, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))] for lab, c in freq.items()}
    en_top = top.get("en", [])[:300]
    english = {lab: set(en_top) - set(words[:2000]) for lab, words in top.items()}
    seen, rows = set(), []
    for lab, fortune in fortunes:
        if True:
            for text in pieces(clean(fortune, lab, english)):
                if len(text) < 8 or text in seen:
                    continue
                seen.add(text)
                rows.append((lab, text.replace("\t", " ")))
    labels = sorted({lab for lab, _ in rows})
    for want in ("en", "de", "es", "it", "ru", "pl", "cs", "sk", "pt", "ga", "eo", "bg", "zh"):
        if want not in labels:
            print(f"langid-fortunes: no texts for {want} (package missing?)", file=sys.stderr)
    counts = {}
    with open(os.path.join(outdir, "train.tsv"), "w", encoding="utf-8") as tr, \
         open(os.path.join(outdir, "test.tsv"), "w", encoding="utf-8") as te:
        for lab, text in rows:
            test = int(hashlib.md5(text.encode("utf-8")).hexdigest(), 16) % 10 == 0
            (te if test else tr).write(f"{lab}\t{text}\n")
            c = counts.setdefault(lab, [0, 0])
            c[1 if test else 0] += 1
    for lab in labels:
        print(f"{lab}\t{counts[lab][0]} train\t{counts[lab][1]} test", file=sys.stderr)


if __name__ == "__main__":
    main()
