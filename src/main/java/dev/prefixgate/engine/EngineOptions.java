package dev.prefixgate.engine;

/**
 * Engine settings, validated here so a bad configuration fails at start-up with its name.
 *
 * @param intraOpThreads ONNX Runtime intra-op threads; 0 lets ORT choose (one per core)
 * @param allowSpinning let ORT threads spin between ops; off by default because spinning steals the
 *     CPU from the HTTP threads and other processes on shared machines
 * @param useCuda ask for the CUDA provider (needs the {@code gpu} build); falls back to CPU
 * @param maxBatchRows sequences decoded together in one step
 * @param maxBatchTokens KV tokens reserved by running rows (prefix + prompt + max new tokens each)
 * @param maxPrefillTokens padded prompt tokens per prefill run (bounds the logits buffer)
 * @param maxQueue requests waiting for a row; more are rejected at once
 * @param maxContext limit on prefix + prompt + max new tokens for one request
 */
public record EngineOptions(
    int intraOpThreads,
    boolean allowSpinning,
    boolean useCuda,
    int maxBatchRows,
    int maxBatchTokens,
    int maxPrefillTokens,
    int maxQueue,
    int maxContext) {

  public EngineOptions {
    positive("max_batch_rows", maxBatchRows);
    positive("max_prefill_tokens", maxPrefillTokens);
    positive("max_queue", maxQueue);
    positive("max_context", maxContext);
    if (intraOpThreads < 0) {
      throw new IllegalArgumentException("intra_op_threads " + intraOpThreads + " must be >= 0");
    }
    if (maxBatchTokens < maxContext) {
      throw new IllegalArgumentException(
          "max_batch_tokens " + maxBatchTokens + " must be >= max_context " + maxContext);
    }
  }

  public static EngineOptions defaults() {
    return new EngineOptions(0, false, false, 16, 32768, 2048, 256, 2048);
  }

  public EngineOptions withMaxBatchRows(int rows) {
    return new EngineOptions(
        intraOpThreads,
        allowSpinning,
        useCuda,
        rows,
        maxBatchTokens,
        maxPrefillTokens,
        maxQueue,
        maxContext);
  }

  public EngineOptions withMaxQueue(int queue) {
    return new EngineOptions(
        intraOpThreads,
        allowSpinning,
        useCuda,
        maxBatchRows,
        maxBatchTokens,
        maxPrefillTokens,
        queue,
        maxContext);
  }

  public EngineOptions withIntraOpThreads(int threads) {
    return new EngineOptions(
        threads,
        allowSpinning,
        useCuda,
        maxBatchRows,
        maxBatchTokens,
        maxPrefillTokens,
        maxQueue,
        maxContext);
  }

  private static void positive(String name, int v) {
    if (v < 1) throw new IllegalArgumentException(name + " " + v + " must be >= 1");
  }
}
