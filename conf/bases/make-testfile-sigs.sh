#!/bin/sh
# make-testfile-sigs.sh - regenerate the starter anti-virus signatures of
# conf/bases (see README):
#   mailgw-eicar.ndb      the EICAR test string (body signature, any file type)
#   mailgw-testfiles.hdb  MD5 hash signatures (md5:size:name) of every file of
#                         Debian's clamav-testfiles package, plus the
#                         ClamAV test program clam.exe those files wrap
#
#   conf/bases/make-testfile-sigs.sh [TESTFILES_DIR]
#        (default /usr/share/clamav-testfiles; apt-get install clamav-testfiles)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=${1:-/usr/share/clamav-testfiles}

# The 68-byte EICAR string, kept in hex so this file is no test virus itself.
eicar_hex=58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a
printf 'Mailgw.Test.EICAR:0:*:%s\n' "$eicar_hex" > "$here/mailgw-eicar.ndb.tmp"
mv "$here/mailgw-eicar.ndb.tmp" "$here/mailgw-eicar.ndb"

if [ ! -d "$src" ]; then
    echo "make-testfile-sigs.sh: $src missing: mailgw-testfiles.hdb left as it is" >&2
    exit 0
fi
out="$here/mailgw-testfiles.hdb.tmp"
: > "$out"
for f in "$src"/*; do
    [ -f "$f" ] || continue
    name=$(basename "$f" | tr -c 'A-Za-z0-9_\n' '_')
    sum=$(md5sum < "$f" | cut -d' ' -f1)
    size=$(wc -c < "$f" | tr -d ' ')
    printf '%s:%s:Mailgw.Test.File.%s\n' "$sum" "$size" "$name" >> "$out"
done
sort -u -o "$out" "$out"
mv "$out" "$here/mailgw-testfiles.hdb"
echo "make-testfile-sigs.sh: $(wc -l < "$here/mailgw-testfiles.hdb") hash signatures from $src"
