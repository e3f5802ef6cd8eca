package dev.prefixgate.engine;

import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from one row of logits. One instance per engine thread: it owns scratch
 * arrays sized to the vocabulary and is not thread-safe.
 *
 * <p>Nothing here sorts the vocabulary. Top-k finds the k-th best score with a k-sized min-heap
 * (one pass; on real logits almost every score loses against the heap's root at once) and keeps
 * every token at or above it, ties included, as Hugging Face's {@code scores < topk[..., -1]} does.
 * Top-p finds the token that crosses the threshold with a three-way partition on score (quickselect
 * on probability mass, expected linear), keeps every better token and the crossing one. The draw
 * then scans the kept tokens in id order. The reference these are tested against sorts
 * (SamplerTest).
 */
final class Sampler {
  private final int vocab;
  private final float[] scores; // (vocab) processed scores of one row
  private final double[] weight; // (vocab) exp(score - max), by token id, for candidates only
  private final int[] candidates; // (vocab) candidate ids after top-k, ascending
  private final int[] work; // (vocab) candidate ids, permuted by the top-p selection
  private final int[] kept; // (vocab) ids kept after top-p, ascending
  private final int[] penalised; // (vocab) stamp of the last pick that penalised the token
  private final int[] counted; // (vocab) stamp of the last pick that counted the token
  private final int[] counts; // (vocab) times generated so far, valid where counted is current
  private float[] heap = new float[0]; // (k) min-heap of the k best scores
  private int penaltyStamp;

  Sampler(int vocab) {
    this.vocab = vocab;
    this.scores = new float[vocab];
    this.weight = new double[vocab];
    this.candidates = new int[vocab];
    this.work = new int[vocab];
    this.kept = new int[vocab];
    this.penalised = new int[vocab];
    this.counted = new int[vocab];
    this.counts = new int[vocab];
  }

  /**
   * The outcome of one pick: the token and, when asked, its log-probability and the most likely
   * tokens with theirs (best first), all log-softmax of the model's raw logits.
   */
  record Pick(int token, float logprob, int[] topIds, float[] topLogprobs) {}

  private static final int[] NO_IDS = new int[0];
  private static final float[] NO_LOGPROBS = new float[0];

  /**
   * @param logits the model's logits, read from {@code offset} for {@code vocab} floats (not
   *     changed)
   * @param seen tokens of the prompt and output so far, for the repetition penalty (may repeat)
   * @param promptCount how many leading entries of {@code seen} are the prompt (OpenAI's penalties
   *     count generated tokens only)
   * @param seenCount how many entries of {@code seen} are valid
   * @param rng the request's generator (advanced once per sampled pick, never when greedy)
   */
  Pick pick(
      FloatBuffer logits,
      int offset,
      SamplingParams p,
      int[] seen,
      int promptCount,
      int seenCount,
      SplittableRandom rng) {
    logits.get(offset, scores, 0, vocab);
    if (p.presencePenalty() != 0 || p.frequencyPenalty() != 0) {
      // OpenAI: logit[j] -= count[j] * frequency_penalty + (count[j] > 0) * presence_penalty,
      // count over the tokens generated so far.
      int stamp = ++penaltyStamp;
      for (int i = promptCount; i < seenCount; i++) {
        int t = seen[i];
        if (t < 0 || t >= vocab) continue;
        if (counted[t] != stamp) {
          counted[t] = stamp;
          counts[t] = 0;
        }
        counts[t]++;
      }
      float presence = (float) p.presencePenalty();
      float frequency = (float) p.frequencyPenalty();
      for (int i = promptCount; i < seenCount; i++) {
        int t = seen[i];
        if (t < 0 || t >= vocab || counted[t] != stamp || counts[t] == 0) continue;
        scores[t] -= counts[t] * frequency + presence;
        counts[t] = 0; // once per distinct token
      }
    }
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
    int token = p.isGreedy() ? argmax(scores) : sample(p, rng);
    if (!p.logprobs()) return new Pick(token, Float.NaN, NO_IDS, NO_LOGPROBS);
    double logZ = logSumExp(logits, offset);
    float logprob = (float) (logits.get(offset + token) - logZ);
    if (p.topLogprobs() == 0) return new Pick(token, logprob, NO_IDS, NO_LOGPROBS);
    int[] ids = topIds(logits, offset, Math.min(p.topLogprobs(), vocab));
    float[] lps = new float[ids.length];
    for (int i = 0; i < ids.length; i++) lps[i] = (float) (logits.get(offset + ids[i]) - logZ);
    return new Pick(token, logprob, ids, lps);
  }

  static int argmax(float[] v) {
    int best = 0;
    for (int i = 1; i < v.length; i++) {
      if (v[i] > v[best]) best = i;
    }
    return best;
  }

  private int sample(SamplingParams p, SplittableRandom rng) {
    // HF's TemperatureLogitsWarper divides in float32; the order-changing steps come after it,
    // so ties that the division creates count as ties, as they do there.
    float t = (float) p.temperature();
    if (t != 1f) {
      for (int i = 0; i < vocab; i++) scores[i] = scores[i] / t;
    }
    int k = p.topK() > 0 && p.topK() < vocab ? p.topK() : 0;
    int n;
    float max;
    if (k > 0) {
      float kth = kthLargest(k);
      n = 0;
      max = Float.NEGATIVE_INFINITY;
      for (int i = 0; i < vocab; i++) {
        float s = scores[i];
        if (s >= kth) {
          candidates[n++] = i;
          if (s > max) max = s;
        }
      }
    } else {
      n = vocab;
      max = Float.NEGATIVE_INFINITY;
      for (int i = 0; i < vocab; i++) {
        candidates[i] = i;
        if (scores[i] > max) max = scores[i];
      }
    }
    // One exp per candidate; the weights serve the top-p selection and the draw.
    double total = 0;
    for (int j = 0; j < n; j++) {
      int id = candidates[j];
      double w = Math.exp(scores[id] - max);
      weight[id] = w;
      total += w;
    }
    int[] pool = candidates;
    int m = n;
    double poolTotal = total;
    if (p.topP() < 1 && n > 1) {
      m = nucleus(n, p.topP() * total);
      pool = kept;
      poolTotal = 0;
      for (int j = 0; j < m; j++) poolTotal += weight[kept[j]];
    }
    double r = rng.nextDouble() * poolTotal;
    double acc = 0;
    for (int j = 0; j < m; j++) {
      acc += weight[pool[j]];
      if (acc > r) return pool[j];
    }
    return pool[m - 1];
  }

  /**
   * The k-th largest score (1-based), from a k-sized min-heap: its root is the smallest of the best
   * k seen so far, so most scores are rejected by one comparison.
   */
  private float kthLargest(int k) {
    if (heap.length < k) heap = new float[k];
    float[] h = heap;
    System.arraycopy(scores, 0, h, 0, k);
    for (int i = k / 2 - 1; i >= 0; i--) siftDown(h, k, i);
    for (int i = k; i < vocab; i++) {
      float s = scores[i];
      if (s > h[0]) {
        h[0] = s;
        siftDown(h, k, 0);
      }
    }
    return h[0];
  }

  private static void siftDown(float[] h, int size, int i) {
    float v = h[i];
    while (true) {
      int c = 2 * i + 1;
      if (c >= size) break;
      if (c + 1 < size && h[c + 1] < h[c]) c++;
      if (h[c] >= v) break;
      h[i] = h[c];
      i = c;
    }
    h[i] = v;
  }

  /**
   * Fills {@link #kept} (ascending ids) with the nucleus of the first {@code n} candidates: in
   * descending score order (ties by ascending id), every token until the running mass reaches
   * {@code target}, the crossing token included, as HF's {@code cumsum <= 1 - top_p} removal keeps
   * it.
   *
   * @return how many ids are kept (at least one)
   */
  private int nucleus(int n, double target) {
    System.arraycopy(candidates, 0, work, 0, n);
    int lo = 0;
    int hi = n;
    double above = 0; // mass of tokens already known to score better than work[lo, hi)
    float threshold = Float.NEGATIVE_INFINITY; // keep scores > threshold ...
    int tiesKept = Integer.MAX_VALUE; // ... and this many == threshold, lowest ids first
    while (lo < hi) {
      float pivot = pivot(lo, hi);
      // Three-way partition of work[lo, hi): [lo, gt) > pivot, [gt, lt) == pivot, [lt, hi) <.
      int gt = lo;
      int lt = hi;
      int i = lo;
      double massGt = 0;
      double massEq = 0;
      while (i < lt) {
        int id = work[i];
        float s = scores[id];
        if (s > pivot) {
          massGt += weight[id];
          work[i++] = work[gt];
          work[gt++] = id;
        } else if (s < pivot) {
          work[i] = work[--lt];
          work[lt] = id;
        } else {
          massEq += weight[id];
          i++;
        }
      }
      if (gt > lo && above + massGt >= target) {
        hi = gt;
        continue;
      }
      if (above + massGt + massEq >= target) {
        threshold = pivot;
        Arrays.sort(work, gt, lt);
        double acc = above + massGt;
        tiesKept = 0;
        for (int j = gt; j < lt; j++) {
          acc += weight[work[j]];
          tiesKept++;
          if (acc >= target) break;
        }
        break;
      }
      above += massGt + massEq;
      lo = lt;
    }
    int m = 0;
    int ties = 0;
    for (int j = 0; j < n; j++) {
      int id = candidates[j];
      float s = scores[id];
      if (s > threshold || (s == threshold && ties++ < tiesKept)) kept[m++] = id;
    }
    return m;
  }

  /** Median of three scores from {@code work[lo, hi)}; deterministic, so picks are reproducible. */
  private float pivot(int lo, int hi) {
    float a = scores[work[lo]];
    float b = scores[work[lo + (hi - lo) / 2]];
    float c = scores[work[hi - 1]];
    return Math.max(Math.min(a, b), Math.min(Math.max(a, b), c));
  }

  /** log softmax of the raw logits at {@code token} (the model's own distribution). */
  /** log(sum(exp(logits))) of one row, stable (two passes over the vocabulary). */
  private double logSumExp(FloatBuffer logits, int offset) {
    double max = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < vocab; i++) max = Math.max(max, logits.get(offset + i));
    double sum = 0;
    for (int i = 0; i < vocab; i++) sum += Math.exp(logits.get(offset + i) - max);
    return max + Math.log(sum);
  }

  /**
   * The ids of the n largest raw logits, best first (ties: the lower id first), by insertion into
   * an n-sized sorted window: n is at most 20, and almost every logit loses against its last.
   */
  int[] topIds(FloatBuffer logits, int offset, int n) {
    int[] ids = new int[n];
    float[] vals = new float[n];
    int size = 0;
    for (int i = 0; i < vocab; i++) {
      float v = logits.get(offset + i);
      if (size == n && !(v > vals[n - 1])) continue;
      int at = size == n ? n - 1 : size++;
      while (at > 0 && v > vals[at - 1]) {
        vals[at] = vals[at - 1];
        ids[at] = ids[at - 1];
        at--;
      }
      vals[at] = v;
      ids[at] = i;
    }
    return size == n ? ids : java.util.Arrays.copyOf(ids, size);
  }
}
