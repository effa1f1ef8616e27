#!/usr/bin/env python3
"""English -> German sentence pairs from Debian's dict-freedict-eng-deu.

Usage: scripts/data/freedict-en-de.py [OUT.tsv] [--dict DIR] [--min-freq N] [--max-len N] [--phrase-repeat N]
Writes "english<TAB>german" lines (stdout when no OUT), python3 stdlib only.

The dictionary (FreeDict's conversion of TU Chemnitz's Ding) lists every
sense of an English headword as its own entry: "dog" is Hund, but also
Klammhaken, Klampe, Bock ... in carpentry and engineering. A translator
trained on all of them would answer at random, so for each headword we keep
ONE translation, the one the dictionary itself uses most: its score is the
number of example phrases anywhere in the dictionary whose English side has
the headword and whose German side has the candidate (dog -> Hund: "train a
dog - einen Hund abrichten"), then the entry's own examples, then fewer
domain labels. Pairs:
  - headwords: "house" -> "Haus"; verbs (<v>) as "to sleep" -> "schlafen";
    interjections ("Good morning!") also lower-cased without the "!" ("good
    morning" -> "guten Morgen": the German first word keeps its capital only
    when the dictionary knows it as a noun).
  - the example phrases of every entry ("build a house" -> "ein Haus bauen").
Cleaning: grammatical annotations (<masc>, <v, trans>), labels ([Am.],
[techn.]), {references} and parenthesised notes are removed; of several
German alternatives ("schlafen, pennen") the first is kept. Pairs longer than
MAX_LEN characters, with "/" alternatives or with no letters are dropped;
exact duplicates of a source keep the first (headwords before examples).
Headwords are kept when each of their words occurs in at least MIN_FREQ
example phrases of the dictionary: the general vocabulary, not the hundreds
of thousands of technical compounds a small model cannot learn (the example
phrases are all kept). Common words are repeated (1 + log2 of their count in the examples, at most
4 times) so the small model learns them best. The output order is
deterministic; `inferd train` makes the held-out split (by a hash of the
source, so repeats never straddle it).
"""
import gzip
import math
import os
import re
import sys

MAX_LEN = 48
MIN_FREQ = 5   # a headword's words must each occur in this many example phrases
PHRASE_REPEAT = 2   # times each interjection ("good morning") is written, lower-cased
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(s):
    v = 0
    for c in s:
        v = v * 64 + B64.index(c)
    return v


def entries(dict_dir):
    data = gzip.open(os.path.join(dict_dir, "freedict-eng-deu.dict.dz")).read()
    with open(os.path.join(dict_dir, "freedict-eng-deu.index"), encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or parts[0].startswith("00database") or parts[0].startswith("00-database"):
                continue
            off, n = b64(parts[1]), b64(parts[2])
            yield data[off:off + n].decode("utf-8", "replace")


ANNOT = re.compile(r"<[^<>]*>|\[[^\[\]]*\]|\{[^{}]*\}")
PAREN = re.compile(r"\([^()]*\)")
SPACES = re.compile(r"\s+")
SPACE_PUNCT = re.compile(r"\s+([,.!?;:])")


def clean(s):
    s = ANNOT.sub(" ", s)
    for _ in range(2):
        s = PAREN.sub(" ", s)
    s = SPACES.sub(" ", s).strip()
    return SPACE_PUNCT.sub(r"\1", s)


def first_alternative(de, en):
    """The first of several German alternatives: "a, b" -> "a" when the
    English side has no comma; sentence alternatives ("X?, Y?") always."""
    m = re.match(r"^(.*?[.!?]), ", de)
    if m:
        return m.group(1)
    if "," not in en and de[-1:] not in ".!?":
        return de.split(", ")[0]
    return de


def words(s):
    return re.findall(r"[^\W\d_]+", s.lower())


def ok(en, de):
    return (0 < len(en) <= MAX_LEN and 0 < len(de) <= MAX_LEN and "/" not in en + de and "\t" not in en + de
            and re.search(r"[^\W\d_]", en) and re.search(r"[^\W\d_]", de) and "..." not in en + de
            and "\u2026" not in en + de)


def parse(text):
    """(headword, is_verb, translation line, [(en, de) examples], labels)."""
    lines = text.split("\n")
    head = lines[0]
    hw = head.split(" /")[0].strip()
    is_verb = bool(re.search(r"/[^/]*/.*<v>\s*$", head)) or head.rstrip().endswith("<v>")
    trans, examples = None, []
    for ln in lines[1:]:
        if ln.startswith('      "'):
            m = re.match(r'^\s*"(.*)"\s+- (.*)$', ln)
            if m:
                examples.append((m.group(1), m.group(2)))
        elif trans is None and ln.strip() and not ln.startswith("   ") and not ln.startswith(" see:"):
            trans = ln
    return hw, is_verb, trans, examples


def main():
    args = sys.argv[1:]
    dict_dir = "/usr/share/dictd"
    global MIN_FREQ, MAX_LEN, PHRASE_REPEAT
    if "--dict" in args:
        i = args.index("--dict")
        dict_dir = args[i + 1]
        del args[i:i + 2]
    for opt in ("--min-freq", "--max-len", "--phrase-repeat"):   # a smaller, more common vocabulary: more passes per word
        if opt in args:
            i = args.index(opt)
            if opt == "--min-freq":
                MIN_FREQ = int(args[i + 1])
            elif opt == "--max-len":
                MAX_LEN = int(args[i + 1])
            else:
                PHRASE_REPEAT = int(args[i + 1])
            del args[i:i + 2]
    out = open(args[0], "w", encoding="utf-8") if args else sys.stdout

    parsed = [parse(t) for t in entries(dict_dir)]

    # Every example phrase once, cleaned; English word counts (how common a
    # word is) and the German nouns the dictionary annotates.
    ex_pairs, seen_ex = [], set()
    freq = {}
    case = {}   # German word -> [times written lower-case, capitalised] after a sentence's first word
    for hw, is_verb, trans, examples in parsed:
        for en, de in examples:
            en, de = clean(en), clean(de)
            de = first_alternative(de, en)
            if (en, de) in seen_ex:
                continue
            seen_ex.add((en, de))
            ex_pairs.append((en, de))
            for w in set(words(en)):
                freq[w] = freq.get(w, 0) + 1
            for g in re.findall(r"[^\W\d_]+", de)[1:]:
                c = case.setdefault(g.lower(), [0, 0])
                c[g[0].isupper()] += 1

    # Co-occurrence: English word -> German word -> examples holding both.
    cooc = {}
    for en, de in ex_pairs:
        dw = set(words(de))
        for w in set(words(en)):
            d = cooc.setdefault(w, {})
            for g in dw:
                d[g] = d.get(g, 0) + 1

    # The best translation of each headword (verbs as "to X").
    best = {}
    order = []
    for hw, is_verb, trans, examples in parsed:
        if not trans:
            continue
        src = clean(hw)
        if is_verb:
            src = "to " + src
        labels = len(re.findall(r"\[[^\]]*\]", trans))
        de = clean(trans)
        de = first_alternative(de, src).strip() if de else ""
        if not ok(src, de):
            continue
        hw_words = words(clean(hw))
        de_words = words(de)
        co = 0
        if len(hw_words) == 1 and de_words:
            co = sum(cooc.get(hw_words[0], {}).get(g, 0) for g in de_words) / len(de_words)
        score = (co, len(examples), -labels, -len(de))
        if src not in best:
            order.append(src)
            best[src] = (score, de)
        elif score > best[src][0]:
            best[src] = (score, de)

    pairs, seen = [], set()

    def add(en, de, times=1):
        if en in seen or not ok(en, de):
            return
        seen.add(en)
        for _ in range(times):
            pairs.append((en, de))

    for src in order:
        de = best[src][1]
        w = words(src[3:] if src.startswith("to ") else src)
        if any(freq.get(x, 0) < MIN_FREQ for x in w):
            continue   # rare or technical vocabulary: the dictionary's own examples hardly use it
        times = 1
        if len(w) == 1:
            times = 1 + min(3, int(math.log2(1 + freq.get(w[0], 0)) / 2))
        add(src, de, times)
        if src.endswith("!") and de.endswith("!"):   # "Good morning!" -> "good morning"
            lo, up = case.get(de.split(" ")[0].rstrip("!").lower(), [0, 0])
            low_de = de[0].lower() + de[1:-1] if lo > up else de[:-1]
            add(src[0].lower() + src[1:-1], low_de, PHRASE_REPEAT)
    for en, de in ex_pairs:
        add(en, de)

    for en, de in pairs:
        out.write(f"{en}\t{de}\n")
    if out is not sys.stdout:
        out.close()
    print(f"{len(pairs)} pairs ({len(seen)} distinct sources)", file=sys.stderr)


if __name__ == "__main__":
    main()
