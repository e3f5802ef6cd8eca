package dev.prefixgate.engine;

/**
 * Receives one sequence's output. Both methods are called on the engine thread, in order, and must
 * return quickly (hand the data to another thread; never block). {@link #onComplete} is called
 * exactly once, also for requests cancelled while queued and for engine errors. An exception thrown
 * from a callback cancels that sequence only.
 */
public interface TokenListener {
  /**
   * One generated token.
   *
   * @param text newly complete text; empty while a character or a possible stop sequence is held
   *     back, and for special tokens
   * @param logprob log-probability of the token, NaN unless requested
   */
  void onToken(int tokenId, String text, float logprob);

  /**
   * One generated token with the most likely alternatives at its position (best first), when the
   * request asked for {@code top_logprobs}; by default the same as {@link #onToken(int, String,
   * float)}.
   */
  default void onToken(int tokenId, String text, float logprob, int[] topIds, float[] topLogprobs) {
    onToken(tokenId, text, logprob);
  }

  /** The end of the sequence; {@code trailingText} is held-back text released at the end. */
  void onComplete(Completion completion);
}
