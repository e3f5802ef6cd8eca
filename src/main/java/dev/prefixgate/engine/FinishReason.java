package dev.prefixgate.engine;

/** Why a sequence ended. */
public enum FinishReason {
  /** End-of-sequence token or a stop sequence. */
  STOP,
  /** {@code max_new_tokens} reached. */
  LENGTH,
  /** The caller cancelled (e.g. the client disconnected). */
  CANCELLED,
  /** The engine failed while running this sequence; see {@link Completion#error()}. */
  ERROR
}
