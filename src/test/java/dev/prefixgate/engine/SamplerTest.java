package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.FloatBuffer;
import java.util.List;
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
    return s.pick(FloatBuffer.wrap(LOGITS), 0, p, seen, seen.length, new SplittableRandom(seed))
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
          s.pick(FloatBuffer.wrap(logits), 0, p, new int[0], 0, new SplittableRandom(seed))
              .token());
    }
    assertEquals(java.util.Set.of(1, 3, 6), seen);
  }
}
