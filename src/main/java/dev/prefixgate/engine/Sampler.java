package dev.prefixgate.engine;

import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from one row of logits. One instance per engine thread: it owns scratch
 * arrays sized to the vocabulary and is not thread-safe.
 */
final class Sampler {
  private final int vocab;
  private final float[] scores; // (vocab) working copy of one row's logits
  private final int[] order; // (vocab) token ids sorted by score, for top-k / top-p
  private final long[] keys; // (vocab) packed (descending score, token id) for a primitive sort
  private final int[] penalised; // (vocab) stamp of the last pick that penalised the token
  private int penaltyStamp;

  Sampler(int vocab) {
    this.vocab = vocab;
    this.scores = new float[vocab];
    this.order = new int[vocab];
    this.keys = new long[vocab];
    this.penalised = new int[vocab];
  }

  /** The outcome of one pick: the token and, when asked, its log-probability. */
  record Pick(int token, float logprob) {}

  /**
   * @param logits the model's logits, read from {@code offset} for {@code vocab} floats (not
   *     changed)
   * @param seen tokens of the prompt and output so far, for the repetition penalty (may repeat)
   * @param seenCount how many entries of {@code seen} are valid
   * @param rng the request's generator (advanced only when sampling)
   */
  Pick pick(
      FloatBuffer logits,
      int offset,
      SamplingParams p,
      int[] seen,
      int seenCount,
      SplittableRandom rng) {
    logits.get(offset, scores, 0, vocab);
    if (p.repetitionPenalty() != 1) {
      float penalty = (float) p.repetitionPenalty();
      // Penalise each distinct token once, like HF's gather/scatter over the id set.
      int stamp = ++penaltyStamp;
      for (int i = 0; i < seenCount; i++) {
        int t = seen[i];
        if (t < 0 || t >= vocab || penalised[t] == stamp) continue;
        penalised[t] = stamp;
        scores[t] = scores[t] < 0 ? scores[t] * penalty : scores[t] / penalty;
      }
    }
    int token;
    if (p.isGreedy()) {
      token = argmax(scores);
    } else {
      token = sample(p, rng);
    }
    float logprob = p.logprobs() ? logSoftmaxAt(logits, offset, token) : Float.NaN;
    return new Pick(token, logprob);
  }

  static int argmax(float[] v) {
    int best = 0;
    for (int i = 1; i < v.length; i++) {
      if (v[i] > v[best]) best = i;
    }
    return best;
  }

  private int sample(SamplingParams p, SplittableRandom rng) {
    float inv = (float) (1.0 / p.temperature());
    for (int i = 0; i < vocab; i++) scores[i] *= inv;
    int kept = vocab;
    boolean needsOrder = (p.topK() > 0 && p.topK() < vocab) || p.topP() < 1;
    if (needsOrder) {
      sortDescending();
      if (p.topK() > 0) kept = Math.min(kept, p.topK());
      if (p.topP() < 1) kept = Math.min(kept, nucleus(kept, p.topP()));
    } else {
      for (int i = 0; i < vocab; i++) order[i] = i;
    }
    double max = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < kept; i++) max = Math.max(max, scores[order[i]]);
    double total = 0;
    for (int i = 0; i < kept; i++) total += Math.exp(scores[order[i]] - max);
    double r = rng.nextDouble() * total;
    double acc = 0;
    for (int i = 0; i < kept; i++) {
      acc += Math.exp(scores[order[i]] - max);
      if (acc >= r) return order[i];
    }
    return order[kept - 1];
  }

  /**
   * Fills {@link #order} with token ids by descending score (ties by id). Each key packs the
   * score's order-reversed bits above the id, so one primitive sort does it: several times faster
   * than sorting boxed ids with a comparator, which matters at BLOOM's 250k-token vocabulary.
   */
  private void sortDescending() {
    for (int i = 0; i < vocab; i++) {
      int bits = Float.floatToIntBits(scores[i]);
      int ascending = bits ^ ((bits >> 31) & 0x7fffffff); // signed-int order equals float order
      keys[i] = ((long) ~ascending << 32) | i;
    }
    Arrays.sort(keys);
    for (int i = 0; i < vocab; i++) order[i] = (int) keys[i];
  }

  /**
   * Size of the smallest prefix of {@code order} whose probability reaches {@code topP}; HF keeps
   * the token that crosses the threshold and always at least one token.
   */
  private int nucleus(int candidates, double topP) {
    double max = scores[order[0]];
    double total = 0;
    for (int i = 0; i < candidates; i++) total += Math.exp(scores[order[i]] - max);
    double acc = 0;
    for (int i = 0; i < candidates; i++) {
      acc += Math.exp(scores[order[i]] - max) / total;
      if (acc >= topP) return i + 1;
    }
    return candidates;
  }

  /** log softmax of the raw logits at {@code token} (the model's own distribution). */
  private float logSoftmaxAt(FloatBuffer logits, int offset, int token) {
    double max = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < vocab; i++) max = Math.max(max, logits.get(offset + i));
    double sum = 0;
    for (int i = 0; i < vocab; i++) sum += Math.exp(logits.get(offset + i) - max);
    return (float) (logits.get(offset + token) - max - Math.log(sum));
  }
}
