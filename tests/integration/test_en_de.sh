#!/usr/bin/env bash
# test_en_de.sh — the default translator models/en-de: its held-out chrF2 and
# exact match from `inferd eval` stay above floors (what was measured when it
# was trained, minus a margin: see models/en-de/README.md), and the common
# words a person would try come out as a German speaker expects, through
# POST /v1/translations (greedy, and beam 4).
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

need_models en-de
need_done

CHRF_FLOOR=21.0      # measured 23.41
EXACT_FLOOR=0.045    # measured 0.0613

out=$("$INFERD" eval --model "$MODELS_DIR/en-de" --data "$MODELS_DIR/en-de/heldout.tsv" 2>&1)
echo "    $out"
chrf=$(sed -n 's/^chrF2 \([0-9.]*\) exact-match \([0-9.]*\) (\([0-9]*\) examples)$/\1/p' <<<"$out")
exact=$(sed -n 's/^chrF2 \([0-9.]*\) exact-match \([0-9.]*\) (\([0-9]*\) examples)$/\2/p' <<<"$out")
n=$(sed -n 's/^chrF2 \([0-9.]*\) exact-match \([0-9.]*\) (\([0-9]*\) examples)$/\3/p' <<<"$out")
check "eval prints chrF2, exact match and the count" test -n "$chrf" -a -n "$exact" -a -n "$n"
check "held-out set is not trivial ($n pairs)" test "${n:-0}" -ge 1000
check "held-out chrF2 $chrf >= $CHRF_FLOOR" awk -v v="${chrf:-0}" -v f="$CHRF_FLOOR" 'BEGIN { exit !(v >= f) }'
check "held-out exact match $exact >= $EXACT_FLOOR" awk -v v="${exact:-0}" -v f="$EXACT_FLOOR" 'BEGIN { exit !(v >= f) }'

start_daemon || { finish; exit; }
J=(-H 'Content-Type: application/json')
URL="$BASE/v1/translations"
for beam in 1 4; do
  data='{"model":"en-de","input":["house","water","dog","to sleep","good morning","cat","bread"],"beam_size":'$beam'}'
  if expect_status "common words (beam $beam)" 200 "${J[@]}" --data-binary "$data" "$URL"; then
    i=0
    for want in Haus Wasser Hund schlafen "guten Morgen" Katze Brot; do
      got=$(json_get "$BODY" ".data[$i].text")
      check "beam $beam: $(json_get "$BODY" ".data[$i].index") -> \"$got\" is \"$want\"" test "$got" = "$want"
      i=$((i + 1))
    done
  fi
done
expect_status "empty input is a 400" 400 "${J[@]}" --data-binary '{"model":"en-de","input":""}' "$URL"
long=$(printf 'a%.0s' $(seq 1 600))
expect_status "input over the model's length limit is a 400" 400 "${J[@]}" \
  --data-binary '{"model":"en-de","input":"'"$long"'"}' "$URL"
stop_daemon
finish
