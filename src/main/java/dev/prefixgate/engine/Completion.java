package dev.prefixgate.engine;

/**
 * Summary of one finished sequence.
 *
 * @param trailingText text released at the end (held-back bytes or a partial stop-sequence match
 *     that never completed); append it after the last token's text
 * @param queueNanos time from submit to admission into the batch
 * @param firstTokenNanos time from submit to the first token, or -1 if none was produced
 * @param totalNanos time from submit to completion
 * @param error message when {@code reason} is ERROR, else null
 */
public record Completion(
    FinishReason reason,
    String trailingText,
    int promptTokens,
    int prefixTokens,
    int completionTokens,
    long queueNanos,
    long firstTokenNanos,
    long totalNanos,
    String error) {}
