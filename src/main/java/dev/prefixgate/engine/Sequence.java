package dev.prefixgate.engine;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * One request's state while queued and while it owns a batch row. Touched only by the engine
 * thread, except {@link #cancelled}, which any thread may set.
 */
final class Sequence {
  final GenerationRequest request;
  final TokenListener listener;
  final long submitNanos;
  volatile boolean cancelled;

  long admitNanos;
  long firstTokenNanos = -1;
  boolean done;

  final Detokenizer detokenizer;
  final StopMatcher stop;
  final SplittableRandom rng;
  final int[] seen; // (prompt + max new) prompt ids then generated ids, for the repetition penalty
  int seenCount;
  int generated;
  int lastToken;

  /**
   * This row's attention-mask columns, oldest first: prefix, any padding inside the prompt batch it
   * was prefilled with, prompt, generated tokens. In the batch the row is right-aligned and the
   * columns before it are padding.
   */
  byte[] mask = new byte[64];

  int len; // valid entries in mask = KV columns this row occupies at the right end of the batch
  int slot; // row index in the tensor it is copied from at the next rebuild

  Sequence(GenerationRequest request, TokenListener listener, TextTokenizer tokenizer, long seed) {
    this.request = request;
    this.listener = listener;
    this.submitNanos = System.nanoTime();
    this.detokenizer = new Detokenizer(tokenizer);
    this.stop = new StopMatcher(request.params().stop());
    this.rng = new SplittableRandom(seed);
    int[] prompt = request.promptIds();
    this.seen = Arrays.copyOf(prompt, prompt.length + request.params().maxNewTokens());
    this.seenCount = prompt.length;
  }

  void appendMask(byte bit) {
    if (len == mask.length) mask = Arrays.copyOf(mask, mask.length * 2);
    mask[len++] = bit;
  }
}
