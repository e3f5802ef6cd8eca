package dev.prefixgate.engine;

/**
 * Thrown by a {@link TokenListener} whose consumer has left (a client disconnected): the engine
 * cancels the sequence quietly, without logging a failure. Carries no stack trace.
 */
public final class ListenerGone extends RuntimeException {
  public ListenerGone(String message) {
    super(message, null, false, false);
  }
}
