#!/bin/sh
# gen-man.sh - regenerate the parameter list of man/man5/mailgw.conf.5 from
# the parameter table (lib/conf/conf_params.c), between the BEGIN/END
# GENERATED PARAMETERS markers, appending it when the markers are missing.
#
#   t/conf/gen-man.sh [BUILD_DIR]        (default: build)
#
# Uses BUILD_DIR/bin/mailgw config --man, else BUILD_DIR/t/helpers/conftool.
set -eu
cd "$(dirname "$0")/../.."
b=${1:-build}
if [ -x "$b/bin/mailgw" ]; then tool="$b/bin/mailgw"
elif [ -x "$b/t/helpers/conftool" ]; then tool="$b/t/helpers/conftool"
else echo "gen-man.sh: build $b/bin/mailgw or $b/t/helpers/conftool first" >&2; exit 1; fi
man=man/man5/mailgw.conf.5
gen=$(mktemp); out=$(mktemp)
trap 'rm -f "$gen" "$out"' EXIT
"$tool" config --man > "$gen"
if grep -q '^\.\\" BEGIN GENERATED PARAMETERS' "$man"; then
  awk -v gen="$gen" '
    /^\.\\" BEGIN GENERATED PARAMETERS/ { while ((getline l < gen) > 0) print l; skip = 1; next }
    /^\.\\" END GENERATED PARAMETERS/ { skip = 0; next }
    !skip { print }' "$man" > "$out"
else
  cat "$man" "$gen" > "$out"
fi
cat "$out" > "$man"
echo "gen-man.sh: $man updated ($(grep -c '^\.B ' "$gen") parameters)"
