package dev.prefixgate.engine;

import java.util.Arrays;

/**
 * Splits one decode step's rows into groups that run as separate ONNX Runtime runs, so that short
 * rows are not widened to the longest row's context.
 *
 * <p>One run over rows of widths {@code w} costs about {@code runCost + rows * max(w)} in
 * token-columns. The fixed part {@code runCost} is reading every weight once, which all rows of one
 * run share. The per-row part is attention over the run's widest row, because every row of a run is
 * padded to that width. On the 560m-shaped model, a run over one row costs about as much as 2,400
 * to 3,000 extra columns of attention for one row (a 90 ms run against roughly 40 µs per
 * row-column). So seven 40-token rows beside one 1,900-token row cost less as two runs than as one:
 * 7×40 + 1×1,900 columns plus one extra run, instead of 8×1,900 columns.
 *
 * <p>The split is exact: each row's attention reads only its own masked columns, so a row gets the
 * same logits in any group. Rows are grouped by width after sorting, and a dynamic program over the
 * sorted widths finds the cheapest split. Its cost is quadratic in the row count, which is tiny
 * next to a model run.
 */
final class DecodeGroups {
  private DecodeGroups() {}

  /**
   * Groups rows by width.
   *
   * @param widths each row's attention width in columns, as a run pads it
   * @param runCost the fixed cost of one run, in row-columns; 0 or less never splits
   * @return groups of row indices, each group ordered by width, groups in ascending width
   */
  static int[][] split(int[] widths, long runCost) {
    int n = widths.length;
    if (n == 0) return new int[0][];
    Integer[] order = new Integer[n];
    for (int i = 0; i < n; i++) order[i] = i;
    Arrays.sort(order, (a, b) -> Integer.compare(widths[a], widths[b]));
    if (runCost <= 0 || n == 1) return new int[][] {toInts(order, 0, n)};
    // best[i]: cheapest cost of the i narrowest rows; cut[i]: where their last group starts
    long[] best = new long[n + 1];
    int[] cut = new int[n + 1];
    for (int i = 1; i <= n; i++) {
      long widest = widths[order[i - 1]];
      best[i] = Long.MAX_VALUE;
      for (int j = 0; j < i; j++) {
        long cost = best[j] + runCost + (i - j) * widest;
        if (cost < best[i]) {
          best[i] = cost;
          cut[i] = j;
        }
      }
    }
    int groups = 0;
    for (int i = n; i > 0; i = cut[i]) groups++;
    int[][] out = new int[groups][];
    for (int i = n, g = groups - 1; i > 0; i = cut[i], g--) out[g] = toInts(order, cut[i], i);
    return out;
  }

  private static int[] toInts(Integer[] order, int from, int to) {
    int[] out = new int[to - from];
    for (int i = from; i < to; i++) out[i - from] = order[i];
    return out;
  }
}
