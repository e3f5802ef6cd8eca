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

  /**
   * A sampling parameter outside its range; {@link #parameter()} names it with the API's field
   * name, and the message says the range and the value. The API answers it as a 400 on that field,
   * so the ranges are written once, here.
   */
  public static final class InvalidParameterException extends IllegalArgumentException {
    private final String parameter;

    InvalidParameterException(String parameter, String range, Object value) {
      super(parameter + " must be " + range + ", got " + value);
      this.parameter = parameter;
    }

    public String parameter() {
      return parameter;
    }
  }

  /**
   * Checks every numeric range of a request (the compact constructor calls it too); the API calls
   * it right after parsing so that a bad value is refused before any tokenizing or queueing.
   *
   * @throws InvalidParameterException naming the first parameter out of range
   */
  public static void checkRanges(
      int maxNewTokens,
      double temperature,
      int topK,
      double topP,
      double repetitionPenalty,
      int topLogprobs,
      double presencePenalty,
      double frequencyPenalty) {
    if (maxNewTokens < 1)
      throw new InvalidParameterException("max_tokens", "at least 1", maxNewTokens);
    if (!(temperature >= 0 && temperature <= 2)) {
      throw new InvalidParameterException("temperature", "in [0, 2]", temperature);
    }
    if (topK < 0) throw new InvalidParameterException("top_k", ">= 0", topK);
    if (!(topP > 0 && topP <= 1)) throw new InvalidParameterException("top_p", "in (0, 1]", topP);
    if (!(repetitionPenalty > 0 && repetitionPenalty <= 10)) {
      throw new InvalidParameterException("repetition_penalty", "in (0, 10]", repetitionPenalty);
    }
    if (topLogprobs < 0 || topLogprobs > MAX_TOP_LOGPROBS) {
      throw new InvalidParameterException(
          "top_logprobs", "in [0, " + MAX_TOP_LOGPROBS + "]", topLogprobs);
    }
    if (!(presencePenalty >= -2 && presencePenalty <= 2)) {
      throw new InvalidParameterException("presence_penalty", "in [-2, 2]", presencePenalty);
    }
    if (!(frequencyPenalty >= -2 && frequencyPenalty <= 2)) {
      throw new InvalidParameterException("frequency_penalty", "in [-2, 2]", frequencyPenalty);
    }
  }

  public SamplingParams {
    checkRanges(
        maxNewTokens,
        temperature,
        topK,
        topP,
        repetitionPenalty,
        topLogprobs,
        presencePenalty,
        frequencyPenalty);
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
