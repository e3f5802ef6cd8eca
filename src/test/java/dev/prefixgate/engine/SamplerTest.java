package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Logits processing with Hugging Face semantics, on hand-made logits. */
class SamplerTest {
  private static final float[] LOGITS = {1.0f, 3.0f, -2.0f, 2.5f, 0.0f};

  private static SamplingParams params(double temp, int topK, double topP, double penalty) {
    return new SamplingParams(8, temp, topK, topP, penalty, 1L, List.of(), false, true);
  }

  private static int pick(SamplingParams p, int[] seen, long seed) {
    Sampler s = new Sampler(LOGITS.length);
    return s.pick(
            FloatBuffer.wrap(LOGITS),
            0,
            p,
            seen,
            seen.length,
            seen.length,
            new SplittableRandom(seed))
        .token();
  }

  @Test
  void greedyTakesTheArgmax() {
    assertEquals(1, pick(params(0, 0, 1, 1), new int[0], 1));
  }

  @Test
  void repetitionPenaltyDividesPositiveAndMultipliesNegativeScores() {
    // 3.0 / 2 = 1.5 < 2.5: the repeated argmax loses to token 3.
    assertEquals(3, pick(params(0, 0, 1, 2.0), new int[] {1, 1}, 1));
    // Token 2 is negative: multiplying makes it even less likely, never the pick.
    assertEquals(1, pick(params(0, 0, 1, 1.5), new int[] {2}, 1));
  }

  @Test
  void topKOneAndTinyTopPAreGreedy() {
    for (long seed = 0; seed < 50; seed++) {
      assertEquals(1, pick(params(1.0, 1, 1, 1), new int[0], seed));
      assertEquals(1, pick(params(1.0, 0, 0.01, 1), new int[0], seed));
    }
  }

  @Test
  void topPKeepsTheTokenThatCrossesTheThreshold() {
    // softmax(LOGITS): token1 ≈ 0.53, token3 ≈ 0.32, so top_p 0.6 keeps {1, 3} only.
    for (long seed = 0; seed < 200; seed++) {
      int t = pick(params(1.0, 0, 0.6, 1), new int[0], seed);
      assertTrue(t == 1 || t == 3, "token " + t);
    }
  }

  @Test
  void samplingFollowsTheDistributionAndTheSeed() {
    int[] counts = new int[LOGITS.length];
    for (long seed = 0; seed < 4000; seed++) counts[pick(params(1.0, 0, 1, 1), new int[0], seed)]++;
    double z = 0;
    for (float l : LOGITS) z += Math.exp(l);
    for (int i = 0; i < LOGITS.length; i++) {
      double expected = 4000 * Math.exp(LOGITS[i]) / z;
      assertEquals(expected, counts[i], 5 * Math.sqrt(expected) + 5, "token " + i);
    }
    assertEquals(
        pick(params(1.0, 0, 1, 1), new int[0], 42), pick(params(1.0, 0, 1, 1), new int[0], 42));
  }

  @Test
  void logprobIsLogSoftmaxOfRawLogits() {
    Sampler s = new Sampler(LOGITS.length);
    Sampler.Pick p =
        s.pick(
            FloatBuffer.wrap(LOGITS),
            0,
            params(0, 0, 1, 1),
            new int[0],
            0,
            0,
            new SplittableRandom(0));
    double z = 0;
    for (float l : LOGITS) z += Math.exp(l);
    assertEquals(3.0 - Math.log(z), p.logprob(), 1e-6);
  }

  /** The packed-key sort orders like a comparator sort, negative scores and ties included. */
  @Test
  void topKKeepsExactlyTheKBestTokensAcrossSigns() {
    float[] logits = {-1.5f, 2.0f, -0.25f, 2.0f, 0.0f, -3.0f, 1.0f};
    Sampler s = new Sampler(logits.length);
    java.util.Set<Integer> seen = new java.util.HashSet<>();
    for (long seed = 0; seed < 300; seed++) {
      SamplingParams p = new SamplingParams(8, 1.0, 3, 1, 1, seed, List.of(), false, false);
      seen.add(
          s.pick(FloatBuffer.wrap(logits), 0, p, new int[0], 0, 0, new SplittableRandom(seed))
              .token());
    }
    assertEquals(java.util.Set.of(1, 3, 6), seen);
  }

  /**
   * The selection without sorting picks exactly what the plain sort-based reference picks, over
   * random logit vectors (smooth, peaked, and coarsely quantised so that ties at the k-th value and
   * at the top-p crossing are common), every parameter combination and many seeds.
   */
  @Test
  void thresholdSelectionPicksWhatTheSortingReferencePicks() {
    Random gen = new Random(12);
    double[] temps = {0.3, 0.8, 1.0, 1.7};
    int[] topKs = {0, 1, 2, 5, 50, 999};
    double[] topPs = {1.0, 0.95, 0.9, 0.5, 0.1};
    double[] penalties = {1.0, 1.3};
    int vocab = 1000;
    Sampler sampler = new Sampler(vocab);
    int compared = 0;
    for (int vec = 0; vec < 12; vec++) {
      float[] logits = new float[vocab];
      for (int i = 0; i < vocab; i++) {
        double x = gen.nextGaussian() * (vec % 3 == 0 ? 1 : vec % 3 == 1 ? 4 : 0.5);
        // Every third vector is quantised to steps of 0.5: many exact ties.
        logits[i] = (float) (vec % 3 == 2 ? Math.rint(x * 2) / 2 : x);
      }
      int[] seen = new int[40];
      for (int i = 0; i < seen.length; i++) seen[i] = gen.nextInt(vocab);
      for (double t : temps) {
        for (int k : topKs) {
          for (double topP : topPs) {
            for (double pen : penalties) {
              for (long seed = 0; seed < 6; seed++) {
                SamplingParams p =
                    new SamplingParams(8, t, k, topP, pen, seed, List.of(), false, false);
                int want = Reference.pick(logits, p, seen, new SplittableRandom(seed * 31 + vec));
                int got =
                    sampler
                        .pick(
                            FloatBuffer.wrap(logits),
                            0,
                            p,
                            seen,
                            seen.length,
                            seen.length,
                            new SplittableRandom(seed * 31 + vec))
                        .token();
                assertEquals(
                    want, got, "vec " + vec + " t " + t + " k " + k + " p " + topP + " pen " + pen);
                compared++;
              }
            }
          }
        }
      }
    }
    assertTrue(compared > 10_000);
  }

  /** The same at BLOOM's vocabulary size, read from an offset inside a larger buffer. */
  @Test
  void fullVocabularyPicksEqualTheReference() {
    int vocab = 250880;
    Random gen = new Random(5);
    float[] two = new float[2 * vocab];
    for (int i = 0; i < two.length; i++) two[i] = (float) (gen.nextGaussian() * 2);
    float[] row = Arrays.copyOfRange(two, vocab, 2 * vocab);
    Sampler sampler = new Sampler(vocab);
    for (long seed = 0; seed < 20; seed++) {
      for (SamplingParams p :
          List.of(
              new SamplingParams(8, 0.8, 50, 0.9, 1, seed, List.of(), false, false),
              new SamplingParams(8, 1.0, 0, 0.95, 1, seed, List.of(), false, false),
              new SamplingParams(8, 1.0, 0, 1, 1, seed, List.of(), false, false))) {
        int want = Reference.pick(row, p, new int[0], new SplittableRandom(seed));
        int got =
            sampler
                .pick(FloatBuffer.wrap(two), vocab, p, new int[0], 0, 0, new SplittableRandom(seed))
                .token();
        assertEquals(want, got, p.toString());
      }
    }
  }

  /**
   * The simple version: sort every token by (score descending, id ascending), cut top-k at the k-th
   * score (ties kept) and top-p at the crossing token, then draw over the kept ids in id order with
   * the same weights exp(score - max).
   */
  static final class Reference {
    static int pick(float[] logits, SamplingParams p, int[] seen, SplittableRandom rng) {
      int v = logits.length;
      float[] s = logits.clone();
      if (p.repetitionPenalty() != 1) {
        float penalty = (float) p.repetitionPenalty();
        boolean[] done = new boolean[v];
        for (int t : seen) {
          if (done[t]) continue;
          done[t] = true;
          s[t] = s[t] < 0 ? s[t] * penalty : s[t] / penalty;
        }
      }
      if (p.isGreedy()) return Sampler.argmax(s);
      float temp = (float) p.temperature();
      if (temp != 1f) for (int i = 0; i < v; i++) s[i] = s[i] / temp;
      Integer[] order = new Integer[v];
      for (int i = 0; i < v; i++) order[i] = i;
      Arrays.sort(order, (a, b) -> s[a] > s[b] ? -1 : s[a] < s[b] ? 1 : Integer.compare(a, b));
      boolean[] keep = new boolean[v];
      int k = p.topK() > 0 && p.topK() < v ? p.topK() : 0;
      float kth = k > 0 ? s[order[k - 1]] : Float.NEGATIVE_INFINITY;
      int count = 0;
      for (int i = 0; i < v; i++) {
        keep[i] = k == 0 || s[i] >= kth;
        if (keep[i]) count++;
      }
      float max = s[order[0]];
      double[] w = new double[v];
      double total = 0;
      for (int i = 0; i < v; i++) {
        if (!keep[i]) continue;
        w[i] = Math.exp(s[i] - max);
        total += w[i];
      }
      if (p.topP() < 1 && count > 1) {
        double target = p.topP() * total;
        boolean[] nucleus = new boolean[v];
        double acc = 0;
        for (int id : order) {
          if (!keep[id]) continue;
          nucleus[id] = true;
          acc += w[id];
          if (acc >= target) break;
        }
        keep = nucleus;
      }
      double poolTotal = 0;
      int last = -1;
      for (int i = 0; i < v; i++) {
        if (keep[i]) {
          poolTotal += w[i];
          last = i;
        }
      }
      double r = rng.nextDouble() * poolTotal;
      double acc = 0;
      for (int i = 0; i < v; i++) {
        if (!keep[i]) continue;
        acc += w[i];
        if (acc > r) return i;
      }
      return last;
    }
  }

  /**
   * OpenAI's penalties count generated tokens only: with the prompt [1] and the output [1, 1, 3],
   * token 1's logit drops by 2 * frequency + presence and token 3's by frequency + presence, so a
   * greedy pick moves from 1 (3.0) to 3 (2.5 - 0.1 - 0.2 = 2.2) to 0 (1.0) as the penalties grow.
   */
  @Test
  void presenceAndFrequencyPenaltiesFollowOpenAisDefinitionOverGeneratedTokens() {
    int[] seen = {1, 1, 1, 3}; // the prompt is the first entry
    Sampler s = new Sampler(LOGITS.length);
    java.util.function.BiFunction<Double, Double, Integer> greedy =
        (presence, frequency) ->
            s.pick(
                    FloatBuffer.wrap(LOGITS),
                    0,
                    new SamplingParams(
                        8, 0, 0, 1, 1, 1L, List.of(), false, false, 0, presence, frequency),
                    seen,
                    1,
                    seen.length,
                    new SplittableRandom(1))
                .token();
    assertEquals(1, greedy.apply(0.0, 0.0));
    // 1: 3.0 - 2*0.1 - 0.2 = 2.6 > 3: 2.5 - 0.1 - 0.2 = 2.2
    assertEquals(1, greedy.apply(0.2, 0.1));
    // 1: 3.0 - 2*0.5 - 0.5 = 1.5 and 3: 2.5 - 0.5 - 0.5 = 1.5 tie: the lower id wins
    assertEquals(1, greedy.apply(0.5, 0.5));
    // 1: 3.0 - 2*1 - 0.5 = 0.5, 3: 2.5 - 1 - 0.5 = 1.0, 0: 1.0 (not generated): 0 first at tie
    assertEquals(0, greedy.apply(0.5, 1.0));
    // Prompt tokens do not count: with only the prompt seen nothing changes.
    assertEquals(
        1,
        s.pick(
                FloatBuffer.wrap(LOGITS),
                0,
                new SamplingParams(8, 0, 0, 1, 1, 1L, List.of(), false, false, 0, 2, 2),
                seen,
                seen.length,
                seen.length,
                new SplittableRandom(1))
            .token());
    // Negative values encourage repeats.
    assertEquals(
        3,
        s.pick(
                FloatBuffer.wrap(new float[] {1.0f, 3.0f, -2.0f, 2.5f, 0.0f}),
                0,
                new SamplingParams(8, 0, 0, 1, 1, 1L, List.of(), false, false, 0, 0, -2),
                new int[] {3},
                0,
                1,
                new SplittableRandom(1))
            .token());
  }

  /** The top alternatives are the best raw logits, best first, as log-softmax of the raw row. */
  @Test
  void topLogprobsAreTheBestRawLogitsBestFirst() {
    float[] row = new float[1000];
    Random r = new Random(7);
    for (int i = 0; i < row.length; i++) row[i] = (float) r.nextGaussian() * 3;
    row[17] = row[900] = 20f; // a tie: the lower id first
    Sampler s = new Sampler(row.length);
    Sampler.Pick p =
        s.pick(
            FloatBuffer.wrap(row),
            0,
            new SamplingParams(8, 0, 0, 1, 1, 1L, List.of(), false, true, 5, 0, 0),
            new int[0],
            0,
            0,
            new SplittableRandom(1));
    Integer[] order = new Integer[row.length];
    for (int i = 0; i < order.length; i++) order[i] = i;
    Arrays.sort(order, (a, b) -> row[a] != row[b] ? Float.compare(row[b], row[a]) : a - b);
    double max = row[order[0]];
    double sum = 0;
    for (float v : row) sum += Math.exp(v - max);
    double logZ = max + Math.log(sum);
    assertEquals(5, p.topIds().length);
    for (int i = 0; i < 5; i++) {
      assertEquals(order[i], p.topIds()[i], "rank " + i);
      assertEquals(row[order[i]] - logZ, p.topLogprobs()[i], 1e-5);
    }
    assertEquals(17, p.token());
    assertEquals(p.topLogprobs()[0], p.logprob(), 0f);
  }
}
