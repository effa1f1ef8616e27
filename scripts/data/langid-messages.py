#!/usr/bin/env python3
"""langid-messages.py — an out-of-domain language-identification set: the
translated user messages of the programs installed on this machine (the
gettext catalogs under /usr/share/locale/<lang>/LC_MESSAGES/*.mo), which are
not fortunes: error messages, help texts, menu entries of coreutils, bash,
apt, tar, ... (python3 standard library only).

    scripts/data/langid-messages.py OUT.tsv [--per-label N] [--min-chars N]

English comes from the catalogs' msgids (the programs' own strings).
Format directives (%s, %d, {0}), option names (--foo), file paths and
keyboard accelerators (_, &) are removed; messages under --min-chars
characters (default 30) after that are skipped; at most --per-label texts
(default 200) per language, chosen deterministically (sorted by MD5). A
language with no catalogs is skipped.
"""
import gettext
import hashlib
import os
import re
import sys

LOCALES = {"bg": ["bg"], "cs": ["cs"], "de": ["de"], "eo": ["eo"], "es": ["es"], "ga": ["ga"], "it": ["it"],
           "pl": ["pl"], "pt": ["pt", "pt_BR"], "ru": ["ru"], "sk": ["sk"], "zh": ["zh_CN", "zh_TW"]}
CLEAN = [re.compile(p) for p in (r"%[-+ #0-9.*'lhqjztL]*[a-zA-Z%]", r"\{[^}]*\}", r"--?[A-Za-z][\w-]*",
                                 r"(?<!\w)/[\w./-]+", r"<[^>]*>", r"https?://\S+", r"\\[nt]")]


def clean(s):
    for p in CLEAN:
        s = p.sub(" ", s)
    s = s.replace("_", "").replace("&", "")
    return re.sub(r"\s+", " ", s).strip()


def catalogs(locale):
    d = f"/usr/share/locale/{locale}/LC_MESSAGES"
    if not os.path.isdir(d):
        return
    for name in sorted(os.listdir(d)):
        if not name.endswith(".mo"):
            continue
        try:
            with open(os.path.join(d, name), "rb") as f:
                yield gettext.GNUTranslations(f)._catalog
        except Exception:   # a catalog python cannot read is skipped
            continue


def main():
    args = sys.argv[1:]
    opts = {"--per-label": 200, "--min-chars": 30}
    for k in list(opts):
        if k in args:
            i = args.index(k)
            opts[k] = int(args[i + 1])
            del args[i:i + 2]
    if len(args) != 1:
        sys.exit(__doc__)
    texts = {lab: set() for lab in ["en", *LOCALES]}
    for lab, locs in LOCALES.items():
        for loc in locs:
            for cat in catalogs(loc):
                for key, val in cat.items():
                    if not key or not isinstance(val, str):
                        continue
                    msgid = key[0] if isinstance(key, tuple) else key
                    for lang, s in ((lab, val), ("en", msgid)):
                        s = clean(s.split("\n\n")[0])
                        if len(s) >= opts["--min-chars"] and s != clean(msgid if lang == lab else val):
                            texts[lang].add(s[:400])
    with open(args[0], "w", encoding="utf-8") as out:
        for lab, ss in texts.items():
            pick = sorted(ss, key=lambda s: hashlib.md5(s.encode()).hexdigest())[:opts["--per-label"]]
            for s in pick:
                out.write(f"{lab}\t{s}\n")
            print(f"{lab}\t{len(pick)} of {len(ss)}", file=sys.stderr)


if __name__ == "__main__":
    main()
