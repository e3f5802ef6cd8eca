package dev.prefixgate.engine;

import java.util.List;

/**
 * How to pick each next token, with Hugging Face {@code generate} semantics: repetition penalty
 * first, then temperature, top-k and top-p, then a draw from the seeded generator. Temperature 0
 * means greedy (argmax), and then top-k/top-p/seed have no effect.
 *
 * @param maxNewTokens generation stops after this many tokens (finish reason LENGTH)
 * @param temperature 0 for greedy, otherwise in (0, 2]
 * @param topK 0 disables, otherwise keep the k most likely tokens
 * @param topP 1 disables, otherwise keep the smallest set whose probability reaches topP, in (0, 1]
 * @param repetitionPenalty 1 disables; &gt; 1 discourages tokens already in prompt or output
 * @param seed same seed and same request give the same tokens; null picks a random seed
 * @param stop stop sequences: generation ends when the text contains one; it is not returned
 * @param ignoreEos keep generating past the end-of-sequence token (benchmarks, golden tests)
 * @param logprobs report the log-probability of each chosen token
 * @param topLogprobs with {@code logprobs}, also report the this many most likely tokens (0..20)
 * @param presencePenalty OpenAI's: subtracted once from the logit of every token generated so far,
 *     in [-2, 2]
 * @param frequencyPenalty OpenAI's: subtracted from each token's logit once per time it was
 *     generated so far, in [-2, 2]
 */
public record SamplingParams(
    int maxNewTokens,
    double temperature,
    int topK,
    double topP,
    double repetitionPenalty,
    Long seed,
    List<String> stop,
    boolean ignoreEos,
    boolean logprobs,
    int topLogprobs,
    double presencePenalty,
    double frequencyPenalty) {

  public static final int MAX_STOP_SEQUENCES = 4;
  public static final int MAX_TOP_LOGPROBS = 20;

  /** Without top log-probabilities or OpenAI penalties (the Hugging Face parameters only). */
  public SamplingParams(
      int maxNewTokens,
      double temperature,
      int topK,
      double topP,
      double repetitionPenalty,
      Long seed,
      List<String> stop,
      boolean ignoreEos,
      boolean logprobs) {
    this(
        maxNewTokens,
        temperature,
        topK,
        topP,
        repetitionPenalty,
        seed,
        stop,
        ignoreEos,
        logprobs,
        0,
        0,
        0);
  }

  public SamplingParams {
    if (maxNewTokens < 1) {
      throw new IllegalArgumentException("max_new_tokens " + maxNewTokens + " must be >= 1");
    }
    if (!(temperature >= 0 && temperature <= 2)) {
      throw new IllegalArgumentException("temperature " + temperature + " not in [0, 2]");
    }
    if (topK < 0) throw new IllegalArgumentException("top_k " + topK + " must be >= 0");
    if (!(topP > 0 && topP <= 1))
      throw new IllegalArgumentException("top_p " + topP + " not in (0, 1]");
    if (!(repetitionPenalty > 0 && repetitionPenalty <= 10)) {
      throw new IllegalArgumentException(
          "repetition_penalty " + repetitionPenalty + " not in (0, 10]");
    }
    if (topLogprobs < 0 || topLogprobs > MAX_TOP_LOGPROBS) {
      throw new IllegalArgumentException(
          "top_logprobs " + topLogprobs + " not in [0, " + MAX_TOP_LOGPROBS + "]");
    }
    if (!(presencePenalty >= -2 && presencePenalty <= 2)) {
      throw new IllegalArgumentException("presence_penalty " + presencePenalty + " not in [-2, 2]");
    }
    if (!(frequencyPenalty >= -2 && frequencyPenalty <= 2)) {
      throw new IllegalArgumentException(
          "frequency_penalty " + frequencyPenalty + " not in [-2, 2]");
    }
    stop = stop == null ? List.of() : List.copyOf(stop);
    if (stop.size() > MAX_STOP_SEQUENCES) {
      throw new IllegalArgumentException(
          stop.size() + " stop sequences, at most " + MAX_STOP_SEQUENCES + " allowed");
    }
    for (String s : stop) {
      if (s.isEmpty()) throw new IllegalArgumentException("stop sequences must not be empty");
    }
  }

  public static SamplingParams greedy(int maxNewTokens) {
    return new SamplingParams(maxNewTokens, 0, 0, 1, 1, null, List.of(), false, false);
  }

  public boolean isGreedy() {
    return temperature == 0;
  }

  public SamplingParams withIgnoreEos(boolean ignore) {
    return new SamplingParams(
        maxNewTokens,
        temperature,
        topK,
        topP,
        repetitionPenalty,
        seed,
        stop,
        ignore,
        logprobs,
        topLogprobs,
        presencePenalty,
        frequencyPenalty);
  }
}
