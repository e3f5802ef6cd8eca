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
 * @param maxPrefillTokens padded prompt tokens per prefill run; a longer prompt is prefilled in
 *     several runs over its columns, each extending the KV of the previous one
 * @param maxQueue requests waiting for a row; more are rejected at once, except a tenant's first
 *     waiting request, which is always queued (so one tenant's burst cannot 429 another tenant)
 * @param maxContext limit on prefix + prompt + max new tokens for one request
 * @param memoryBudgetBytes every direct buffer the engine holds (both KV arenas, prefill KV,
 *     logits, ids, mask) is planned against this; 0 derives it from the JVM's direct-memory limit
 * @param maxQueuedPerTenant requests one tenant may have waiting; 0 means {@code maxQueue}
 * @param maxRowsPerTenant rows one tenant may hold at any time; 0 means {@code maxBatchRows}
 * @param fairShare while other tenants wait, no tenant is admitted beyond this fraction of the rows
 *     (rounded down, at least one); 1 turns it off
 * @param prefillStepTokens while rows are decoding, a prefill runs at most this many prompt tokens
 *     (all newcomers together) between two decode steps, so running streams keep emitting while a
 *     long prompt goes in; 0 prefills each group of newcomers in one go
 * @param prefillStepPastTokens how the step budget counts a prompt column: one that attends over p
 *     earlier tokens (prefix and prompt columns already in) counts as 1 + p / this, so the chunks
 *     of a long prompt shrink as its past grows and every step costs about the same; 0 counts every
 *     column as 1
 */
public record EngineOptions(
    int intraOpThreads,
    boolean allowSpinning,
    boolean useCuda,
    int maxBatchRows,
    int maxBatchTokens,
    int maxPrefillTokens,
    int maxQueue,
    int maxContext,
    long memoryBudgetBytes,
    int maxQueuedPerTenant,
    int maxRowsPerTenant,
    double fairShare,
    int prefillStepTokens,
    int prefillStepPastTokens) {

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
    if (memoryBudgetBytes < 0) {
      throw new IllegalArgumentException(
          "memory_budget_bytes " + memoryBudgetBytes + " must be >= 0 (0 = derived)");
    }
    if (maxQueuedPerTenant < 0 || maxRowsPerTenant < 0) {
      throw new IllegalArgumentException(
          "max_queued_per_tenant "
              + maxQueuedPerTenant
              + " and max_rows_per_tenant "
              + maxRowsPerTenant
              + " must be >= 0 (0 = no per-tenant limit)");
    }
    if (prefillStepTokens < 0) {
      throw new IllegalArgumentException(
          "prefill_step_tokens " + prefillStepTokens + " must be >= 0 (0 = whole prompts)");
    }
    if (prefillStepPastTokens < 0) {
      throw new IllegalArgumentException(
          "prefill_step_past_tokens "
              + prefillStepPastTokens
              + " must be >= 0 (0 = every column counts as one)");
    }
    if (!(fairShare > 0 && fairShare <= 1)) {
      throw new IllegalArgumentException("fair_share " + fairShare + " not in (0, 1]");
    }
  }

  /** The original eight settings; the memory budget is derived and tenants share rows fairly. */
  public EngineOptions(
      int intraOpThreads,
      boolean allowSpinning,
      boolean useCuda,
      int maxBatchRows,
      int maxBatchTokens,
      int maxPrefillTokens,
      int maxQueue,
      int maxContext) {
    this(
        intraOpThreads,
        allowSpinning,
        useCuda,
        maxBatchRows,
        maxBatchTokens,
        maxPrefillTokens,
        maxQueue,
        maxContext,
        0,
        0,
        0,
        0.5,
        DEFAULT_PREFILL_STEP_TOKENS,
        DEFAULT_PREFILL_STEP_PAST_TOKENS);
  }

  /**
   * About one decode step's worth of compute on a 560m BLOOM on two cores: enough to keep the
   * prompt's GEMMs efficient, small enough that a stalled stream waits about one step more.
   */
  public static final int DEFAULT_PREFILL_STEP_TOKENS = 64;

  /**
   * On a 560m BLOOM on CPU (both graph layouts) a prompt column's attention over about 1300-1500
   * past tokens costs as much as the rest of its work (docs/benchmarks.md, "Prefill steps by
   * cost").
   */
  public static final int DEFAULT_PREFILL_STEP_PAST_TOKENS = 1280;

  public static EngineOptions defaults() {
    return new EngineOptions(0, false, false, 16, 32768, 2048, 256, 2048);
  }

  /** Rows one tenant may hold while another tenant waits. */
  int tenantShareRows() {
    return Math.max(1, (int) Math.floor(maxBatchRows * fairShare));
  }

  int tenantRowCap() {
    return maxRowsPerTenant == 0 ? maxBatchRows : maxRowsPerTenant;
  }

  int tenantQueueCap() {
    return maxQueuedPerTenant == 0 ? maxQueue : maxQueuedPerTenant;
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
        maxContext,
        memoryBudgetBytes,
        maxQueuedPerTenant,
        maxRowsPerTenant,
        fairShare,
        prefillStepTokens,
        prefillStepPastTokens);
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
        maxContext,
        memoryBudgetBytes,
        maxQueuedPerTenant,
        maxRowsPerTenant,
        fairShare,
        prefillStepTokens,
        prefillStepPastTokens);
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
        maxContext,
        memoryBudgetBytes,
        maxQueuedPerTenant,
        maxRowsPerTenant,
        fairShare,
        prefillStepTokens,
        prefillStepPastTokens);
  }

  public EngineOptions withMaxPrefillTokens(int tokens) {
    return new EngineOptions(
        intraOpThreads,
        allowSpinning,
        useCuda,
        maxBatchRows,
        maxBatchTokens,
        tokens,
        maxQueue,
        maxContext,
        memoryBudgetBytes,
        maxQueuedPerTenant,
        maxRowsPerTenant,
        fairShare,
        prefillStepTokens,
        prefillStepPastTokens);
  }

  public EngineOptions withMemoryBudgetBytes(long bytes) {
    return new EngineOptions(
        intraOpThreads,
        allowSpinning,
        useCuda,
        maxBatchRows,
        maxBatchTokens,
        maxPrefillTokens,
        maxQueue,
        maxContext,
        bytes,
        maxQueuedPerTenant,
        maxRowsPerTenant,
        fairShare,
        prefillStepTokens,
        prefillStepPastTokens);
  }

  public EngineOptions withTenantLimits(int queued, int rows, double share) {
    return new EngineOptions(
        intraOpThreads,
        allowSpinning,
        useCuda,
        maxBatchRows,
        maxBatchTokens,
        maxPrefillTokens,
        maxQueue,
        maxContext,
        memoryBudgetBytes,
        queued,
        rows,
        share,
        prefillStepTokens,
        prefillStepPastTokens);
  }

  public EngineOptions withPrefillStepTokens(int tokens) {
    return new EngineOptions(
        intraOpThreads,
        allowSpinning,
        useCuda,
        maxBatchRows,
        maxBatchTokens,
        maxPrefillTokens,
        maxQueue,
        maxContext,
        memoryBudgetBytes,
        maxQueuedPerTenant,
        maxRowsPerTenant,
        fairShare,
        tokens,
        prefillStepPastTokens);
  }

  public EngineOptions withPrefillStepPastTokens(int tokens) {
    return new EngineOptions(
        intraOpThreads,
        allowSpinning,
        useCuda,
        maxBatchRows,
        maxBatchTokens,
        maxPrefillTokens,
        maxQueue,
        maxContext,
        memoryBudgetBytes,
        maxQueuedPerTenant,
        maxRowsPerTenant,
        fairShare,
        prefillStepTokens,
        tokens);
  }

  private static void positive(String name, int v) {
    if (v < 1) throw new IllegalArgumentException(name + " " + v + " must be >= 1");
  }
}
