#!/bin/sh
# test_example.sh - the worked example of simile.h (examples/recognise.c),
# built against the public header alone, does what the manual says.
#
#   SIMILE=build/simile sh tests/test_example.sh   (the example is looked for
#   beside it: build/examples/recognise; make test runs the plain and ASan pair)
#
# A tiny model (three training steps on exported PNG files) enrolls one image
# of each of three classes; each enrolled image then finds its own label first
# at similarity 1.0000, the gallery lists the three, `simile search` agrees
# with the example, enrolling again is idempotent, and wrong input (no such
# image, a malformed LABEL=IMAGE, a model file that is not one, a search of a
# missing gallery) is one "recognise: ..." line on stderr and exit 1 or 2.

. "$(dirname "$0")/lib.sh"
need_data t10k-images-idx3-ubyte.gz
make_tmp example
EX=$(dirname "$SIMILE")/examples/recognise
[ -x "$EX" ] || { bad "setup" "no executable '$EX' (make builds it)"; finish; }
# ex ARGS...: runs the example as sim runs simile; its errors start "recognise"
ex() { run "$EX" "$@"; }
PROG=recognise

I=$T/img
sim export-images --data "$FMNIST:test" --out "$I" --limit 60 --threads 1
expect_ok "export 60 test images" || finish
sim train --data "$I" --epochs 1 --max-steps 3 --batch 16 --threads 1 --quiet --dim 16 --out "$T/m.safetensors"
expect_ok "train a tiny model" || finish
BAG=$(ls "$I"/Bag/*.png | head -n 1)
COAT=$(ls "$I"/Coat/*.png | head -n 1)
SHOE=$(ls "$I"/Sneaker/*.png | head -n 1)
G=$T/g.db

ex "$T/m.safetensors" "$G" enroll "bag=$BAG" "coat=$COAT" "sneaker=$SHOE"
if expect_ok "enroll three items" && [ "$(grep -c '^enrolled ' "$T/out")" = 3 ]; then ok "three lines 'enrolled'"; else
    bad "enroll output" "$(head -c 300 "$T/out")"; fi
for pair in "bag $BAG" "coat $COAT" "sneaker $SHOE"; do
    set -- $pair
    ex "$T/m.safetensors" "$G" search "$2" 3
    if expect_ok "search $1" && [ "$(head -n 1 "$T/out" | cut -d' ' -f2-3)" = "$1 1.0000" ] &&
        [ "$(wc -l <"$T/out")" = 3 ]; then ok "$1 finds itself first at 1.0000, 3 hits"; else
        bad "search $1" "$(tr '\n' '|' <"$T/out")"; fi
done
# the CLI reads the example's gallery and ranks alike
ex "$T/m.safetensors" "$G" search "$COAT" 1
mine=$(cut -d' ' -f2 "$T/out")
sim search --gallery "$G" --model "$T/m.safetensors" "$COAT" -k 1 --threads 1
if expect_ok "simile search of the example's gallery" && grep -q "	1.0000	2	$mine\$" "$T/out"; then
    ok "simile search agrees ($mine)"; else bad "simile search" "$(head -c 300 "$T/out")"; fi
sim items --gallery "$G"
if expect_ok "simile items" && [ "$(grep -vc '^#' "$T/out")" = 3 ]; then ok "the gallery lists 3 items"; else
    bad "items" "$(head -c 300 "$T/out")"; fi
ex "$T/m.safetensors" "$G" enroll "bag=$BAG"
if expect_ok "enroll again" && grep -q '^already enrolled bag as item 1 ' "$T/out"; then ok "enrolling again is idempotent"; else
    bad "enroll again" "$(head -c 300 "$T/out")"; fi

ex "$T/m.safetensors" "$G" search "$T/nope.png"
expect_err "search a missing image" 1 "^recognise: .*nope.png"
ex "$T/m.safetensors" "$G" enroll "bag"
expect_err "enroll without =IMAGE" 1 "^recognise: 'bag' is not LABEL=IMAGE"
printf 'not a model' >"$T/bad.safetensors"
ex "$T/bad.safetensors" "$G" search "$BAG"
expect_err "a model file that is not one" 1 "^recognise: .*bad.safetensors"
ex "$T/m.safetensors" "$T/none.db" search "$BAG"
expect_err "search a gallery that does not exist" 1 "^recognise: .*none.db"
ex "$T/m.safetensors" "$G" search "$BAG" 99
expect_err "K out of range" 2 "^recognise: K must be"
finish
