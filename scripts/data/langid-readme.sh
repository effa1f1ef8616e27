#!/usr/bin/env bash
# langid-readme.sh MODEL_DIR DATA_DIR — appends to the langid model's README
# (written by `inferd train`) what a user would want to know beyond the
# held-out fortunes: the exact data commands, the model's answers on
# non-fortune sentences (tests/data/langid-tryout.tsv: lines of localized man
# pages and news-like sentences written for this table), and the accuracy on
# translated program messages (scripts/data/langid-messages.py). Run from the
# repository root after `inferd train` (scripts/train-models.sh does).
set -euo pipefail
model=$1 data=$2
readme="$model/README.md"
msgs="$data/messages.tsv"
python3 scripts/data/langid-messages.py "$msgs" 2>/dev/null
{
  echo
  echo "## Data"
  echo
  echo '```'
  echo "python3 scripts/data/langid-fortunes.py $data   # train.tsv + test.tsv (every text whose MD5 is 0 mod 10)"
  echo '```'
  echo
  echo "Held-out texts per language are listed above; Slovak (289 fortunes, cs/klasik-sk) and Irish"
  echo "(155 proverbs) are the smallest collections, Bulgarian has 624 fortunes."
  echo
  echo "## Non-fortune text"
  echo
  echo "Sentences a user might try (tests/data/langid-tryout.tsv: lines from the localized man pages"
  echo "of apropos(1) and gpasswd(1), news-like sentences and greetings written for this table):"
  echo
  echo "| expected | answer (top 2) | text |"
  echo "|---|---|---|"
  while IFS=$'\t' read -r lab text; do
    ans=$(./inferd run --model "$model" "$text" | head -2 | awk '{printf "%s %.3f, ", $1, $2}' | sed 's/, $//')
    mark=""
    [ "${ans%% *}" = "$lab" ] || mark=" **(wrong)**"
    echo "| $lab | $ans$mark | $text |"
  done < tests/data/langid-tryout.tsv
  echo
  echo "\`inferd eval --model $model --data tests/data/langid-tryout.tsv\`:"
  echo
  echo '```'
  ./inferd eval --model "$model" --data tests/data/langid-tryout.tsv | head -2
  echo '```'
  echo
  echo "Translated messages of the programs on this machine (gettext catalogs, 200 per language, English"
  echo "from their msgids; short, technical, placeholders removed: harder than prose), made by"
  echo "\`python3 scripts/data/langid-messages.py $msgs\`:"
  echo
  echo '```'
  ./inferd eval --model "$model" --data "$msgs"
  echo '```'
  echo
  echo "Where it fails: Slovak is mostly taken for Czech (256 training texts against ~6,450 Czech), short"
  echo "Bulgarian for Russian (571 training texts against ~17,850 Russian), and very short texts (two or three words) in the"
  echo "small languages are guesses. The fortunes are the only training data."
} >> "$readme"
