#!/usr/bin/env python3
"""make_llama_tok_ref.py — writes tests/ref/llama_tok_ref.json, the token ids
and decoded bytes that tests/unit/test_tokenizer.c compares the llama2.c
tokenizer of engine/text/tokenizer_spm.c with.

The reference is llama2.c's own algorithm: below is a line-by-line port of
run.c's build_tokenizer / encode / decode (karpathy/llama2.c, MIT), run over
tests/ref/tok_corpus.json with the Llama 2 vocabulary ../shared/data/tokenizer.bin.
Plain python3, no packages. Run from the repository root:

    python3 tests/ref/make_llama_tok_ref.py

Deviations from run.c, none of which changes a result on this vocabulary:
  - str_lookup is a dict instead of bsearch over the sorted vocabulary (the
    script checks the vocabulary has no duplicate pieces, so both find the
    same id);
  - the text is a bytes object rather than a NUL-terminated char*, so
    "the byte after the last" reads as the terminator 0.

Fixture (JSON): for each corpus case, "ids" = encode(text, bos=1, eos=0) and
"decoded_hex" = the bytes run.c's generate loop prints for those ids:
decode(prev, tok) for every token after the BOS, concatenated.
"""
import json
import struct
import sys

TOKENIZER = "../shared/data/tokenizer.bin"
CORPUS = "tests/ref/tok_corpus.json"
OUT = "tests/ref/llama_tok_ref.json"


# ---- build_tokenizer: read in the file ------------------------------------
def build_tokenizer(path):
    data = open(path, "rb").read()
    (max_token_length,) = struct.unpack_from("<i", data, 0)
    off = 4
    vocab, vocab_scores = [], []
    while off < len(data):                     # run.c reads vocab_size entries
        score, length = struct.unpack_from("<fi", data, off)
        off += 8
        vocab.append(data[off:off + length])
        vocab_scores.append(score)              # a float32, exactly representable here
        off += length
    assert off == len(data), "trailing bytes in tokenizer.bin"
    # byte_pieces[i*2] = i, byte_pieces[i*2+1] = '\0'
    byte_pieces = [bytes([i]) for i in range(256)]
    sorted_vocab = {}
    for i, piece in enumerate(vocab):
        assert piece not in sorted_vocab, "duplicate piece: bsearch would be ambiguous"
        sorted_vocab[piece] = i
    return vocab, vocab_scores, sorted_vocab, max_token_length, byte_pieces


def str_lookup(s, sorted_vocab):
    # efficiently find the perfect match for str in vocab, return its index or -1 if not found
    return sorted_vocab.get(s, -1)


# ---- decode ------------------------------------------------------------------
def decode(tok, prev_token, token):
    vocab, _, _, _, byte_pieces = tok
    piece = vocab[token]
    # following BOS (1) token, sentencepiece decoder strips any leading whitespace (see PR #89)
    if prev_token == 1 and piece[:1] == b" ":
        piece = piece[1:]
    # careful, some tokens designate raw bytes, and look like e.g. '<0x01>'
    # parse this and convert and return the actual byte
    # (sscanf(piece, "<0x%02hhX>", &byte_val) == 1)
    if piece[:3] == b"<0x" and len(piece) >= 4 and chr(piece[3]) in "0123456789abcdefABCDEF":
        hexd = piece[3:5]
        if len(hexd) == 2 and chr(hexd[1]) not in "0123456789abcdefABCDEF":
            hexd = hexd[:1]
        byte_val = int(hexd, 16)
        # piece = (char*)t->byte_pieces + byte_val * 2: a C string, so byte 0 reads as ""
        piece = byte_pieces[byte_val] if byte_val != 0 else b""
    return piece


# ---- encode ------------------------------------------------------------------
def encode(tok, text, bos, eos):
    vocab, vocab_scores, sorted_vocab, max_token_length, _ = tok
    # encode the string text (input) into an upper-bound preallocated tokens[] array
    # bos != 0 means prepend the BOS token (=1), eos != 0 means append the EOS token (=2)
    tokens = []

    # add optional BOS (=1) token, if desired
    if bos:
        tokens.append(1)

    # add_dummy_prefix is true by default
    # so prepend a dummy prefix token to the input string, but only if text != ""
    if len(text) != 0:
        dummy_prefix = str_lookup(b" ", sorted_vocab)
        tokens.append(dummy_prefix)

    # process the raw (UTF-8) byte sequence of the input string
    str_buffer = bytearray()
    for i in range(len(text)):
        c = text[i]
        # reset buffer if the current byte is ASCII or a leading byte
        if (c & 0xC0) != 0x80:
            str_buffer = bytearray()
        # append the current byte to the buffer
        str_buffer.append(c)
        # while the next character is a continuation byte, continue appending
        # but if there are too many of them, just stop to avoid overruning str_buffer size.
        nxt = text[i + 1] if i + 1 < len(text) else 0    # *(c+1): the NUL terminator at the end
        if (nxt & 0xC0) == 0x80 and len(str_buffer) < 4:
            continue
        # ok c+1 is not a continuation byte, so we've read in a full codepoint
        id_ = str_lookup(bytes(str_buffer), sorted_vocab)
        if id_ != -1:
            # we found this codepoint in vocab, add it as a token
            tokens.append(id_)
        else:
            # byte_fallback encoding: just encode each byte as a token
            # +3 is here because the first 3 vocab elements are <unk>, <s>, </s>
            # so the individual bytes only start at index 3
            for b in str_buffer:
                tokens.append(b + 3)
        str_buffer = bytearray()   # protect against a sequence of stray UTF8 continuation bytes

    # merge the best consecutive pair each iteration, according the scores in vocab_scores
    while True:
        best_score = -1e10
        best_id = -1
        best_idx = -1
        for i in range(len(tokens) - 1):
            # check if we can merge the pair (tokens[i], tokens[i+1])
            s = vocab[tokens[i]] + vocab[tokens[i + 1]]
            id_ = str_lookup(s, sorted_vocab)
            if id_ != -1 and vocab_scores[id_] > best_score:
                # this merge pair exists in vocab! record its score and position
                best_score = vocab_scores[id_]
                best_id = id_
                best_idx = i
        if best_idx == -1:
            break   # we couldn't find any more pairs to merge, so we're done
        # merge the consecutive pair (best_idx, best_idx+1) into new token best_id
        tokens[best_idx] = best_id
        # delete token at position best_idx+1, shift the entire sequence back 1
        del tokens[best_idx + 1]

    # add optional EOS (=2) token, if desired
    if eos:
        tokens.append(2)
    return tokens


def main():
    tok = build_tokenizer(TOKENIZER)
    corpus = json.load(open(CORPUS, encoding="utf-8"))
    lines = []
    for case in corpus:
        text = case["text"].encode("utf-8")
        ids = encode(tok, text, 1, 0)
        out = b"".join(decode(tok, ids[i - 1], ids[i]) for i in range(1, len(ids)))
        lines.append("  " + json.dumps({"name": case["name"], "text": case["text"], "ids": ids,
                                        "decoded_hex": out.hex()}, ensure_ascii=True))
    with open(OUT, "w", encoding="utf-8") as f:
        f.write('{"version": 1, "generator": "tests/ref/make_llama_tok_ref.py", '
                '"reference": "port of llama2.c run.c encode(bos=1, eos=0) / decode", '
                '"tokenizer": "%s", "vocab_size": %d,\n "cases": [\n' % (TOKENIZER, len(tok[0])))
        f.write(",\n".join(lines))
        f.write("\n]}\n")
    print("wrote %s: %d cases" % (OUT, len(lines)), file=sys.stderr)


if __name__ == "__main__":
    main()
