package dev.prefixgate.engine;

/** A failure inside the engine (ONNX Runtime, model files); wraps native errors once. */
public class EngineException extends RuntimeException {
  public EngineException(String message) {
    super(message);
  }

  public EngineException(String message, Throwable cause) {
    super(message, cause);
  }
}
