# bench/lib/median.sh - sourced by the bench scripts.
#
# median_columns N: reads lines of whitespace-separated numbers and prints
# the median of each of the first N columns (the lower middle value for
# an even count), space-separated, on one line.
median_columns() {
    awk -v ncol="$1" '
        { for (c = 1; c <= ncol; c++) v[c, NR] = $c }
        END { for (c = 1; c <= ncol; c++) {
                  for (i = 1; i <= NR; i++) a[i] = v[c, i]
                  for (i = 2; i <= NR; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
                      t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
                  printf "%s%s", a[int((NR + 1) / 2)], c < ncol ? " " : "\n" } }'
}
