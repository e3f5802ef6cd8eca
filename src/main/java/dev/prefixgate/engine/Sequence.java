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
  final int promptLength; // the leading entries of seen that are the prompt
  int seenCount;
  int generated;
  int lastToken;

  /**
   * KV columns this row occupies at the right end of the batch: prefix, prompt, generated tokens,
   * every one of them attended (mask 1). No padding lives inside a row: the padding a shared
   * prefill needs is dropped when the row joins, which is exact because BLOOM's ALiBi positions
   * come from the mask's cumulative sum, to which padding adds nothing.
   */
  int len;

  int slot; // row index in the tensor it is copied from at the next rebuild

  /** Paged layout: the pool pages holding this row's tokens, in order ([0, pageCount) are used). */
  int[] pages = new int[0];

  int pageCount;

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
    this.promptLength = prompt.length;
  }
}
