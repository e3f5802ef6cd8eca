package dev.prefixgate.engine;

/**
 * One sequence to generate.
 *
 * @param tenant fairness key: requests are admitted round-robin across tenants
 * @param prefix the tenant adapter's prefix KV, or null for the bare base model; the caller keeps
 *     it alive (e.g. holds a cache reference) until {@link TokenListener#onComplete} is called
 * @param promptIds tokenised prompt, at least one token
 * @param params sampling and stopping rules
 */
public record GenerationRequest(
    String tenant, PrefixKv prefix, int[] promptIds, SamplingParams params) {
  public GenerationRequest {
    if (tenant == null || tenant.isEmpty())
      throw new IllegalArgumentException("tenant is required");
    if (promptIds == null || promptIds.length == 0) {
      throw new IllegalArgumentException("the prompt must contain at least one token");
    }
    if (params == null) throw new IllegalArgumentException("sampling params are required");
  }

  public int prefixLength() {
    return prefix == null ? 0 : prefix.length();
  }

  /** KV columns this request may need: prefix + prompt + every new token. */
  public int reservedTokens() {
    return prefixLength() + promptIds.length + params.maxNewTokens();
  }
}
