package dev.prefixgate.engine;

/**
 * The context arithmetic, written once: a request's adapter prefix, prompt and completion together
 * must fit {@code limit} positions. The API asks it for a completion budget before it builds a
 * request; the engine checks every submitted request with it. Sums are taken in {@code long} so a
 * client's max_tokens near 2^31 cannot wrap into a pass.
 *
 * @param limit the most positions one request may take (prefix + prompt + new tokens)
 */
public record ContextWindow(int limit) {
  public ContextWindow {
    if (limit < 1) throw new IllegalArgumentException("context limit " + limit + " must be >= 1");
  }

  /** A request that does not fit; {@link #completionAlone()} when max_tokens alone is too many. */
  public static final class ExceededException extends IllegalArgumentException {
    private final boolean completionAlone;

    private ExceededException(String message, boolean completionAlone) {
      super(message);
      this.completionAlone = completionAlone;
    }

    /** True when the requested completion alone exceeds the limit, whatever the prompt. */
    public boolean completionAlone() {
      return completionAlone;
    }
  }

  /**
   * The completion tokens a request gets: {@code requested} when given and it fits, otherwise
   * {@code defaultMaxTokens} or the room left, whichever is smaller.
   *
   * @throws ExceededException when the request does not fit (a requested completion that does not
   *     fit, or a prefix and prompt that leave no room for one token)
   */
  public int completionBudget(int prefix, int prompt, Integer requested, int defaultMaxTokens) {
    if (requested != null && requested > limit) {
      throw new ExceededException(
          "max_tokens " + requested + " is over this model's context limit of " + limit + " tokens",
          true);
    }
    long room = (long) limit - prefix - prompt;
    int budget =
        requested != null ? requested : (int) Math.max(0, Math.min(defaultMaxTokens, room));
    check(prefix, prompt, budget);
    return budget;
  }

  /**
   * @throws ExceededException when prefix + prompt + completion is over the limit, or the
   *     completion is under one token
   */
  public void check(int prefix, int prompt, int completion) {
    if (completion < 1 || (long) prefix + prompt + completion > limit) {
      int asked = Math.max(completion, 1);
      throw new ExceededException(
          "This model's maximum context length is "
              + limit
              + " tokens. However, you requested "
              + ((long) prefix + prompt + asked)
              + " tokens ("
              + prefix
              + " in the adapter prefix, "
              + prompt
              + " in the prompt, "
              + asked
              + " for the completion).",
          false);
    }
  }
}
