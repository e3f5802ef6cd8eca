package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The split of one decode step's rows into runs by width, on the splitter alone. */
class DecodeGroupsTest {
  private static long cost(int[][] groups, int[] widths, long runCost) {
    long total = 0;
    for (int[] g : groups) {
      int widest = 0;
      for (int r : g) widest = Math.max(widest, widths[r]);
      total += runCost + (long) g.length * widest;
    }
    return total;
  }

  /** Every row exactly once. */
  private static void assertPartition(int[][] groups, int n) {
    int[] seen = new int[n];
    for (int[] g : groups) {
      for (int r : g) seen[r]++;
    }
    int[] once = new int[n];
    Arrays.fill(once, 1);
    assertArrayEquals(once, seen, Arrays.deepToString(groups));
  }

  @Test
  void shortRowsBesideOneLongRowRunApart() {
    int[] widths = {49, 49, 1905, 49, 49, 49, 49, 49};
    int[][] groups = DecodeGroups.split(widths, 3072);
    assertEquals(2, groups.length, Arrays.deepToString(groups));
    assertArrayEquals(new int[] {2}, groups[1], "the long row runs alone, after the short ones");
    assertEquals(7, groups[0].length);
    assertPartition(groups, widths.length);
  }

  @Test
  void rowsOfSimilarWidthShareOneRun() {
    int[] widths = {49, 65, 201, 33, 49, 81, 49, 97};
    int[][] groups = DecodeGroups.split(widths, 3072);
    assertEquals(1, groups.length, "one more run costs more than the padding it saves");
    assertPartition(groups, widths.length);
  }

  @Test
  void noRunCostNeverSplits() {
    int[] widths = {17, 2001, 33};
    assertEquals(1, DecodeGroups.split(widths, 0).length);
    assertEquals(0, DecodeGroups.split(new int[0], 3072).length);
    assertEquals(1, DecodeGroups.split(new int[] {5000}, 3072).length);
  }

  /** Against every way to split up to seven rows (not only contiguous ones by width). */
  @Test
  void theSplitIsTheCheapestOfAllPartitions() {
    Random random = new Random(12);
    for (int trial = 0; trial < 300; trial++) {
      int n = 1 + random.nextInt(7);
      int[] widths = new int[n];
      for (int i = 0; i < n; i++) widths[i] = 1 + random.nextInt(random.nextBoolean() ? 64 : 2048);
      long runCost = random.nextInt(4000);
      int[][] groups = DecodeGroups.split(widths, runCost);
      assertPartition(groups, n);
      long best = cheapest(widths, runCost, 0, new ArrayList<>());
      assertEquals(best, cost(groups, widths, runCost), Arrays.toString(widths) + " @" + runCost);
    }
  }

  /** Brute force: row {@code i} joins one of the groups so far or starts a new one. */
  private static long cheapest(int[] widths, long runCost, int i, List<List<Integer>> groups) {
    if (i == widths.length) {
      int[][] g = new int[groups.size()][];
      for (int k = 0; k < g.length; k++) {
        g[k] = groups.get(k).stream().mapToInt(Integer::intValue).toArray();
      }
      return cost(g, widths, runCost);
    }
    long best = Long.MAX_VALUE;
    for (int k = 0, size = groups.size(); k < size; k++) {
      List<Integer> g = groups.get(k);
      g.add(i);
      best = Math.min(best, cheapest(widths, runCost, i + 1, groups));
      g.remove(g.size() - 1);
    }
    List<Integer> fresh = new ArrayList<>(List.of(i));
    groups.add(fresh);
    best = Math.min(best, cheapest(widths, runCost, i + 1, groups));
    groups.remove(groups.size() - 1);
    return best;
  }
}
