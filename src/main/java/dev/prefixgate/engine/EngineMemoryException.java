package dev.prefixgate.engine;

/** The engine could not get a buffer within its memory budget (or from the JVM). */
public final class EngineMemoryException extends EngineException {
  public EngineMemoryException(String message) {
    super(message);
  }

  public EngineMemoryException(String message, Throwable cause) {
    super(message, cause);
  }
}
